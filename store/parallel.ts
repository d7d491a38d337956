/**
 * The public types of the data-parallel mode (see `dataParallel`).
 *
 * @module
 */
import type { LoadOptions, Optimizer, Params } from "../mod.ts";
import type { StoredParams, TrainingStore } from "./training.ts";

/**
 * Options of `dataParallel`.
 *
 * @example
 * ```ts
 * import { radam } from "@optim/radam";
 * import type { DataParallelOptions } from "@optim/radam/store";
 *
 * const options: DataParallelOptions = {
 *   optimizer: radam({ lr: 1e-3 }),
 *   init: () => ({ w: new Float32Array(1024) }),
 *   staleness: 4,
 * };
 * ```
 */
export interface DataParallelOptions {
  /**
   * The optimizer of a new state, and the one a stored checkpoint must be of (by name). A
   * stored checkpoint resumes with its own hyperparameters and training-loop options, a
   * constant lr included (as PyTorch's `load_state_dict` restores them; `loadOptions.lr`
   * replaces it; the others, `groups` and `clipGradNorm` among them, are not compared with the
   * optimizer's and cannot change on resume), and with the optimizer's learning-rate schedule
   * when it has one (a checkpoint cannot hold a function; the optimizer's constant lr where the
   * checkpoint was saved with a schedule). How the state is held and runs is the optimizer's:
   * its `states` (a checkpoint of another moments' format is converted, as
   * `loadState({ states })` converts it), `backend`, `threads` and `threadThreshold`, unless
   * `loadOptions` gives them.
   */
  optimizer: Optimizer;
  /**
   * The initial parameters, for when the store holds no checkpoint yet. Without `tensors`, the
   * names of its tensors are also those a stored checkpoint must have: a trainer calls it
   * once to learn them (not at all where the store object learned them from this very
   * function; give `tensors` to avoid the call, e.g. when it fetches weights), and a
   * checkpoint of other names is refused with a CheckpointError naming the first that
   * differs, by `params()` as by `submit`.
   */
  init: () => Params | Promise<Params>;
  /**
   * The tensors a checkpoint must have: name → number of values. A stored checkpoint with
   * others (of another model) is refused with a CheckpointError naming the store, by
   * `params()` as by `submit`; parameters from `init` with others, with a RangeError.
   */
  tensors?: Readonly<Record<string, number>>;
  /**
   * Options of `loadState` for a stored checkpoint (`lr`, `states`, `backend`, `threads`, …):
   * what they give wins over the optimizer's (see `optimizer`).
   */
  loadOptions?: LoadOptions;
  /**
   * The bounded staleness S: a contribution computed at step `base` is applied by a step
   * whose state was at most S steps past `base` (S = 0: only at the parameters it was computed
   * at); one further behind is refused with a {@linkcode ContributionRefusedError}, never
   * applied. Default {@linkcode DEFAULT_STALENESS} (8).
   */
  staleness?: number;
  /**
   * How long `submit` waits for the step that applies its contribution, in ms (default
   * 30 000); then the contribution is stored (if it was not yet) and `submit` answers
   * `"pending"`: it will be applied or refused later; ask again with the same id. A database
   * that does not answer holds no submit longer: at `waitMs` one whose contribution a fold
   * still holds rejects with an Error that says it may yet be applied (send it again, with the
   * same id, to learn its outcome); a call the submit makes itself (to learn whether the id is
   * known, to read the parameters, to store the contribution) that takes longer than `leaseMs`
   * rejects it so too (or, before it is stored, saying that nothing of it was).
   */
  waitMs?: number;
  /**
   * How long the lease lasts, in ms (default 10 000): longer than a fold takes. A process that
   * dies holding it stops the others' folds for about this long: another process takes it
   * once it has seen it unchanged this long on its own clock (so a process waiting for it
   * takes it at most a poll late). A lease handed on lasts ten `pollMs` (at least 200 ms)
   * until the process it is handed on to takes it. A process started again after it died (a
   * serverless function's new instance) is another process to the lease, of a new random
   * token, and waits out its predecessor's lease as anyone's: nothing tells a dead predecessor
   * from a live instance of the same function, and two live processes of one token would each
   * take the lease from the other (its holder takes it again at once), each's commits failing in
   * turn. A trainer that `close()` ends gives its lease up.
   */
  leaseMs?: number;
  /**
   * The most contributions one step folds (default 64; at most the store's `maxFold`: what
   * one atomic write of its database settles; of this process's own, at most 90 and the store's
   * `maxFresh`: what that write can check). While this process's own and those stored by others
   * could each fill a step, each has half of it. Where this process's own are bounded below
   * `maxFold` (a small `maxFresh`: the self-hosted Deno KV server's), the process that holds the
   * lease stores those of its own that its next steps, taking so few a step, would reach only
   * past `staleness` (each a write of its gradient, as `handoffMs`'s hand-off, whatever
   * `handoffMs`), and its next steps take them as stored ones, up to `maxFold` a step: kept
   * waiting, they would be refused. Those its steps reach in time wait for them, and no gradient
   * of theirs is written, until it hands the lease on to another process waiting for it: the
   * others' steps come before its next, and it stores those still waiting here.
   */
  maxFold?: number;
  /**
   * How long a contribution waits in a process that finds the lease held by another process
   * before it is stored for that holder's next fold, in ms (default 0: at once, so that a fold
   * takes the contributions of every process, not only the holder's), when that process has
   * served at most `handoffLimit` submits at once lately; the submit then waits for the
   * step that applies it, until `waitMs`, as for one stored at `waitMs`. Storing costs a write
   * of the gradient to the store and a read by the holder; `Infinity`: only at `waitMs` (a
   * process folds its own contributions when the lease comes to it). Contributions of the
   * process that holds the lease go straight into its folds (but for a burst that its folds,
   * bounded by what its commit checks, would reach only past `staleness`: see `maxFold`).
   */
  handoffMs?: number;
  /**
   * The most submits a process may have had in flight at once within the last `leaseMs` for it to
   * hand its contributions off (see `handoffMs`); a process that served more waits for the lease
   * and fills its fold with its own, which writes no gradient (but see `maxFold`). Default 1: a
   * process hands off the requests it serves one at a time (a serverless isolate), where folding
   * with the other processes' pays, and keeps those it serves several at once for its own folds,
   * where the gradients' writes cost more than the larger folds bring. `Infinity`: whatever it has
   * in flight.
   */
  handoffLimit?: number;
  /** How often a process that waits for the lease or for a result asks again, in ms (20). */
  pollMs?: number;
  /**
   * The metadata to save with each new checkpoint, from the previous one's and the new step;
   * default: none.
   */
  meta?: (previous: string | undefined, step: number) => string | undefined;
}

/**
 * The default bound on the staleness of a contribution, in steps: 8.
 *
 * @example
 * ```ts
 * import { DEFAULT_STALENESS } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * assert.equal(DEFAULT_STALENESS, 8);
 * ```
 */
export const DEFAULT_STALENESS = 8;

/**
 * A contribution: a request's gradient, computed at the parameters of step `base`. A field of
 * another name (a misspelled `samples`) is refused with a TypeError.
 *
 * @example
 * ```ts
 * import type { Contribution } from "@optim/radam/store";
 *
 * const c: Contribution = { id: "r1", base: 0, samples: 32, gradient: { w: new Float32Array(4) } };
 * ```
 */
export interface Contribution {
  /** The request id: its idempotency key (1 to 64 characters of text: no lone surrogate). */
  readonly id: string;
  /** The step of the parameters the gradient was computed at (`params().step`). */
  readonly base: number;
  /** How many samples the gradient is the mean over; default 1. */
  readonly samples?: number;
  /** The gradient, by tensor name: exactly the model's tensors, finite values. */
  readonly gradient: Readonly<Record<string, Float32Array>>;
}

/**
 * What {@linkcode DataParallelTrainer.submit} answers: the step that applied the contribution
 * (`duplicate`: by an earlier submission of the same id, not this one), or `"pending"` when
 * `waitMs` passed first (the contribution is stored: send the id again to learn its step).
 *
 * @example
 * ```ts
 * import type { SubmitResult } from "@optim/radam/store";
 *
 * const http = (r: SubmitResult) => r.status === "applied" ? 200 : 202;
 * ```
 */
export type SubmitResult =
  | {
    readonly status: "applied";
    readonly id: string;
    readonly step: number;
    readonly duplicate: boolean;
  }
  | { readonly status: "pending"; readonly id: string };

/**
 * A process's handle on a store in the data-parallel mode; see `dataParallel`.
 *
 * @example
 * ```ts
 * import type { DataParallelTrainer } from "@optim/radam/store";
 *
 * async function once(trainer: DataParallelTrainer, id: string) {
 *   const { step, params } = await trainer.params();
 *   const gradient = { w: params.w.map((w) => w - 1) }; // of ½‖w − 1‖²
 *   return await trainer.submit({ id, base: step, gradient });
 * }
 * ```
 */
export interface DataParallelTrainer {
  /** The store. */
  readonly store: TrainingStore;
  /**
   * The current parameters (read-only copies shared by the callers: do not modify them), their
   * step and version: only the parameters are read from the store, not the moments, and not
   * at all when this process committed or read that version last. Makes the first checkpoint
   * (from `init`) when the store holds none. A call to the store that fails rejects with an
   * Error naming the store and the call, the database's error its `cause`: call it again.
   */
  params(): Promise<StoredParams>;
  /**
   * Submits a contribution and waits for the step that applies it (see
   * {@linkcode SubmitResult}). Throws a {@linkcode ContributionRefusedError} when it is refused
   * (too stale, or a gradient so large that the step on it alone gives moments past float32's
   * range, which no checkpoint holds), a TypeError or RangeError for a gradient that does not
   * fit the model (the promise rejects). A refusal is recorded with the id only where the
   * contribution was stored (see {@linkcode ContributionRefusedError}). The gradient's values
   * are copied at the call, before it returns: the caller may refill its arrays at once,
   * without awaiting.
   */
  submit(contribution: Contribution): Promise<SubmitResult>;
  /**
   * Folds the contributions already waiting here (or lets their `waitMs` pass), gives the
   * lease up and frees the state; nothing of the trainer runs once it resolves. A submit made
   * after the call, or still reading the store when it came, is refused with a TypeError,
   * nothing of it stored (send it again to another trainer, with the same id), as is a call of
   * `params()` made after it. Where the database does not answer a call of a fold (or the
   * lease's release) within `waitMs + leaseMs`, it rejects with an Error saying so: nothing more
   * is folded, and the state is freed once that call returns.
   */
  close(): Promise<void>;
}

/** The options, checked, with their defaults. */
export interface CheckedOptions extends DataParallelOptions {
  readonly staleness: number;
  readonly waitMs: number;
  readonly leaseMs: number;
  readonly maxFold: number;
  /**
   * The most contributions of this process one fold takes: `MAX_LOCAL` of store/_fold.ts, or
   * the store's `maxFresh` where lower.
   */
  readonly maxLocal: number;
  readonly pollMs: number;
  readonly handoffMs: number;
  readonly handoffLimit: number;
}
