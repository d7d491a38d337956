/**
 * A progress bar on stderr. On a terminal it redraws one line in place; piped or redirected it
 * prints a plain line at every tenth of the work instead, so logs stay readable.
 *
 * @module
 */

/** Something to write progress text to. */
export interface ProgressSink {
  writeSync(bytes: Uint8Array): number;
  isTerminal(): boolean;
}

/** A progress bar over a known amount of work. */
export interface ProgressBar {
  /** Records `amount` more units done. */
  advance(amount: number): void;
  /** Ends the bar (the terminal line is finished with a newline). */
  finish(): void;
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** A bar for `total` units of work labelled `unit`, written to `sink` (default stderr). */
export function progressBar(
  total: number,
  unit: string,
  sink: ProgressSink = Deno.stderr,
  now: () => number = () => performance.now(),
): ProgressBar {
  const encoder = new TextEncoder();
  const terminal = sink.isTerminal();
  const started = now();
  let done = 0, lastDraw = -Infinity, lastTenth = 0, finished = false;
  const write = (text: string) => {
    let bytes = encoder.encode(text);
    while (bytes.length > 0) bytes = bytes.subarray(sink.writeSync(bytes));
  };
  const line = () => {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const elapsed = (now() - started) / 1000;
    const left = fraction > 0 ? elapsed * (1 - fraction) / fraction : NaN;
    const eta = Number.isFinite(left) ? `, ~${clock(left)} left` : "";
    return `${(fraction * 100).toFixed(0).padStart(3)}% ${done}/${total} ${unit}, ` +
      `${clock(elapsed)} elapsed${eta}`;
  };
  const draw = (force: boolean) => {
    if (terminal) {
      if (!force && now() - lastDraw < 100) return;
      lastDraw = now();
      const width = 30, filled = Math.round(width * Math.min(1, done / (total || 1)));
      write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${line()}\x1b[K`);
    } else {
      const tenth = Math.floor(10 * done / (total || 1));
      if (tenth > lastTenth || force) {
        lastTenth = tenth;
        write(`progress: ${line()}\n`);
      }
    }
  };
  return {
    advance(amount: number) {
      if (finished) return;
      done += amount;
      draw(false);
    },
    finish() {
      if (finished) return;
      finished = true;
      if (terminal) {
        draw(true);
        write("\n");
      } else if (lastTenth < 10) draw(true);
    },
  };
}
