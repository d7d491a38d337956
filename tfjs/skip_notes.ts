/**
 * What a TensorFlow.js optimizer notes of the steps it skipped for a non-finite gradient: the
 * one-time warning at the first one seen (option `warnOnSkip`), and the count never going back at
 * a `loadState` (which takes the checkpoint's), which `skippedStepsCallback` reads (skipped.ts).
 *
 * @module
 */

/** The warning printed (once per optimizer) at its first skipped step. */
const SKIP_WARNING =
  'RadamTfOptimizer skipped a step: a gradient held NaN or ±Infinity (option nonFinite: "skip", the default), so no variable or moment changed. optimizer.skippedSteps counts such steps, and skippedStepsCallback(optimizer) writes them into model.fit\'s logs. Use nonFinite: "throw" to stop at the first, or tfOptimizer(optimizer, { warnOnSkip: false }) to silence this warning.';

/** An optimizer's notes of its skipped steps (its count, `skippedSteps`, is given each call). */
export class SkipNotes {
  /** Skipped steps as last seen, and whether the one-time warning was given. */
  #mark = 0;
  #warned = false;
  /** The skipped steps counted before each `loadState`, less its checkpoint's. */
  #replaced = 0;

  /** After a step: the one-time warning at the first skipped step seen, if `warn`. */
  afterStep(skipped: number, warn: boolean): void {
    if (skipped > this.#mark && warn && !this.#warned) {
      this.#warned = true;
      console.warn(SKIP_WARNING);
    }
    this.#mark = skipped;
  }

  /** At a load: the count goes from `skipped` to `loaded`. */
  replaced(skipped: number, loaded: number): void {
    this.#replaced += skipped - loaded;
    this.#mark = loaded;
  }

  /** The steps skipped, `skipped` now, as never going back at a `loadState`. */
  seen(skipped: number): number {
    return skipped + this.#replaced;
  }
}
