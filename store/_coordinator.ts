/**
 * The data-parallel mode's work in one process: the contributions waiting here, the lease,
 * and the last state this process committed. Private to store/. (A contribution's checks and
 * local record: _contribution.ts; the answers of submits: _answers.ts.)
 *
 * @module
 */
import { contributionFailed, ContributionRefusedError, staleReason } from "./errors.ts";
import { CLOSED_TRAINER_MESSAGE } from "./_checks.ts";
import { answerOf, readFailed, type StoreFailure, unanswered } from "./_answers.ts";
import { Watchers } from "./_watchers.ts";
import { checkInfo, makeLocal } from "./_contribution.ts";
import type { CheckedOptions, Contribution, SubmitResult } from "./parallel.ts";
import { foldOnce, isolatingSteps } from "./_fold.ts";
import { type Cached, type Fold, initialize, type Local, renewed } from "./_fold_state.ts";
import type { Lease, RequestRecord, StoredParams, TrainingStore } from "./training.ts";
import { dispose } from "../mod.ts";
import { deadlineIn, sleep, until } from "./_time.ts";
import { instant, monotonic } from "./_lease.ts";
import { flatten, takeGradient, type TakenGradient } from "./_gradient.ts";
import { checkModel, checkTrainerInitNames } from "./_model.ts";

/** See {@linkcode Coordinator}'s module. */
export class Coordinator implements Fold {
  readonly token: string = crypto.randomUUID();
  queue: Local[] = [];
  cache: Cached | null = null;
  lease: Lease | null = null;
  leaseSince = 0;
  /** Until when (the monotonic clock) this process does not ask for the lease. */
  backoffUntil = 0;
  isolate = 0;
  suspects: Set<string> = new Set();
  storedTurn = false;
  snapshot: StoredParams | null = null;
  scratch: { flat: Float32Array; acc: Float64Array } | null = null;
  /** The requests waiting here for the outcome of contributions the store holds. */
  readonly #watchers = new Watchers();
  #inflight = new Map<string, Promise<SubmitResult>>();
  /**
   * The local contributions that may yet be handed off: since when they wait (the monotonic
   * clock), and how.
   */
  #handoffs = new Map<Local, { since: number; fire(): void }>();
  /** Local contributions taken out of the queue whose storing is not answered yet. */
  #storing = 0;
  /**
   * Contributions handed off from here whose submits wait for their step: work of this
   * process's own, for which it queues for the lease (so that the holder hands it on in turn,
   * and a holder whose own contributions fill its folds does not leave them waiting).
   */
  #handedOff = 0;
  /**
   * Until when (the monotonic clock) this process counts as serving more than `handoffLimit`
   * submits at once.
   */
  #crowdedUntil = 0;
  #loading: Promise<StoredParams | null> | null = null;
  #pump: Promise<void> | null = null;
  #foldEnd: Promise<void> = Promise.resolve();
  #closed = false;
  /** Set once close() has seen the last fold loop end: nothing may start one after. */
  #stopped = false;

  constructor(readonly store: TrainingStore, readonly options: CheckedOptions) {}

  /** The ids of the contributions watched here. */
  get watched(): ReadonlyMap<string, unknown> {
    return this.#watchers.byId;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Records `params` as the latest known, unless it is older than the one known. */
  see(params: StoredParams): void {
    if (this.snapshot === null || params.step >= this.snapshot.step) this.snapshot = params;
  }

  /**
   * The current parameters; `failed` words the error of a failing call to the store (what
   * failed, the database's error), when given, and `initFailed` that of making the first
   * checkpoint (`init`'s own errors among them): `failed` unless given, as they are if null.
   */
  async params(
    failed?: StoreFailure,
    initFailed: StoreFailure | null | undefined = failed,
  ): Promise<StoredParams> {
    if (this.#closed) throw new TypeError(CLOSED_TRAINER_MESSAGE);
    const call = <T>(
      what: string,
      promise: Promise<T>,
      words: StoreFailure | null | undefined = failed,
    ): Promise<T> =>
      words == null ? promise : promise.catch((error) => {
        throw words(what, error);
      });
    for (let tries = 0;; tries++) {
      const head = await call("reading the store's head", this.store.head());
      if (head === null) {
        if (tries >= 3) throw new Error(`Store ${this.store.name} holds no checkpoint`);
        await call("making the first checkpoint", initialize(this), initFailed);
        continue;
      }
      if (this.snapshot?.version === head.version) return this.snapshot;
      this.#loading ??= this.store.loadParams().finally(() => this.#loading = null);
      const loaded = await call("reading the current parameters", this.#loading);
      if (loaded !== null) {
        checkModel(loaded, this.options, this.store.name);
        await checkTrainerInitNames(loaded.names, this.options, this.store);
        this.see(loaded);
        return loaded;
      }
    }
  }

  submit(contribution: Contribution): Promise<SubmitResult> {
    if (this.#closed) return Promise.reject(new TypeError(CLOSED_TRAINER_MESSAGE));
    let info: Local["info"];
    try {
      info = checkInfo(contribution);
    } catch (error) {
      return Promise.reject(error);
    }
    const running = this.#inflight.get(info.id);
    if (running) {
      return running.then((r) => r.status === "applied" ? { ...r, duplicate: true } : r);
    }
    let gradient: TakenGradient;
    try {
      // Taken now, before any await: the caller may refill its arrays as soon as this returns.
      gradient = takeGradient(contribution.gradient, this.snapshot?.names);
    } catch (error) {
      return Promise.reject(error); // a getter or Proxy that throws
    }
    const promise = this.#submitNew(info, gradient)
      .finally(() => this.#inflight.delete(info.id));
    this.#inflight.set(info.id, promise);
    if (this.#inflight.size > this.options.handoffLimit) {
      this.#crowdedUntil = deadlineIn(this.options.leaseMs);
    }
    return promise;
  }

  /**
   * What `call` (made by a submit itself) answers, given a lease's time: one that takes longer
   * than a fold may is hung. Else the error that says so (`stored`: see `unanswered`).
   */
  async #hung<T>(call: Promise<T>, id: string, stored: boolean): Promise<T> {
    const { leaseMs } = this.options;
    const answer = await until(call.then((value) => ({ value })), deadlineIn(leaseMs), null);
    if (answer === null) throw unanswered(id, `leaseMs (${leaseMs} ms)`, stored);
    return answer.value;
  }

  async #submitNew(info: Local["info"], gradient: TakenGradient) {
    const deadline = deadlineIn(this.options.waitMs);
    const { id } = info;
    // Nothing of it is stored before these reads: a failing one says so.
    const known = await this.#hung(
      this.store.request(id).catch((error) => {
        throw readFailed(id)("looking up its id", error);
      }),
      id,
      false,
    );
    if (known !== null) return this.#answerKnown(id, known, deadline);
    const params = await this.#hung(this.params(readFailed(id)), id, false);
    const flat = flatten(gradient, params);
    if (info.base > params.step) {
      throw new RangeError(
        `Contribution ${JSON.stringify(info.id)} says it was computed at step ${info.base}, ` +
          `after the current step ${params.step}`,
      );
    }
    const reason = staleReason(info.base, params.step, this.options.staleness);
    if (reason !== null) throw new ContributionRefusedError(info.id, params.step, reason);
    // Refused as a new one would be (nothing of it stored): close() may be past its last fold.
    if (this.#closed) throw new TypeError(CLOSED_TRAINER_MESSAGE);
    const local = makeLocal(info, flat);
    this.queue.push(local);
    this.#kick();
    return await this.#wait(local, deadline);
  }

  /** The answer for a known id: at once, or once the store settles it, or `"pending"`. */
  #answerKnown(id: string, record: RequestRecord, deadline: number): Promise<SubmitResult> {
    const answer = answerOf(id, record);
    if (answer instanceof Error) return Promise.reject(answer);
    if (answer !== null) return Promise.resolve(answer);
    return this.watch(id, deadline);
  }

  /** Waits for the outcome of a contribution the store holds, until `deadline`. */
  watch(id: string, deadline: number): Promise<SubmitResult> {
    // Stored: it will be settled by another process's fold; none will run here to see it.
    if (this.#stopped) return Promise.resolve({ status: "pending", id });
    const outcome = this.#watchers.watch(id, deadline);
    this.#kick();
    return outcome;
  }

  /** Settles the requests watching `id` with its record. */
  settleWatched(id: string, record: RequestRecord): void {
    this.#watchers.settle(id, record);
  }

  /**
   * Waits for a local contribution's fold; stores it when `deadline` comes first, or earlier
   * when handed off (see `#handOff`), and then waits for its outcome until `deadline`.
   */
  async #wait(local: Local, deadline: number): Promise<SubmitResult> {
    let handed: Promise<"handoff"> | null = new Promise((resolve) => {
      this.#handoffs.set(local, { since: monotonic(), fire: () => resolve("handoff") });
    });
    try {
      for (;;) {
        const woken = await until(
          handed ? Promise.race([local.done, handed]) : local.done,
          deadline,
          null,
        );
        if (woken !== null && woken !== "handoff") return woken;
        if (local.settled) return await local.done;
        const early = woken === "handoff";
        handed = null;
        this.#handoffs.delete(local);
        const { id } = local.info;
        if (local.taken) {
          if (early) continue; // taken by a fold here after all: its outcome, until deadline
          // The fold settles it, or gives it back: unless a call of it is not answered in time.
          const ended = await until(this.#foldEnd.then(() => true), deadline, false);
          if (!ended && !local.settled) {
            local.abandoned = true;
            throw unanswered(id, `waitMs (${this.options.waitMs} ms)`, true);
          }
          continue;
        }
        const at = this.queue.indexOf(local);
        if (at >= 0) this.queue.splice(at, 1);
        return await this.#store(local, early, deadline);
      }
    } finally {
      this.#handoffs.delete(local);
    }
  }

  /**
   * Stores a local contribution taken out of the queue (`early`: handed off, then watched until
   * `deadline`; else at `deadline`, answered `"pending"`). Counted in `#storing` until it is
   * watched or answered: the fold loop, and so close(), wait for it meanwhile.
   */
  async #store(local: Local, early: boolean, deadline: number): Promise<SubmitResult> {
    const { id } = local.info;
    // Handed off, it stays work of this process's own until answered (see `#handedOff`).
    if (early) this.#handedOff++;
    try {
      let answer: Promise<SubmitResult>;
      this.#storing++;
      try {
        const bytes = new Uint8Array(local.gradient.buffer);
        const storing = this.store.submit(local.info, bytes);
        const record = await this.#hung(
          storing.catch((error) => {
            throw contributionFailed(id, "storing it for the lease holder's fold", error, "stored");
          }),
          id,
          true,
        );
        if (record === null && !early) return { status: "pending", id };
        // Stored by this submit (atomically with its id's record): the step that applies it
        // applies this submission, not an earlier one.
        answer = record === null
          ? this.watch(id, deadline).then((r) =>
            r.status === "applied" ? { ...r, duplicate: false } : r
          )
          : this.#answerKnown(id, record, early ? deadline : monotonic());
      } finally {
        this.#storing--; // watched now (a watch is registered at its call), or answered
      }
      return await answer;
    } finally {
      if (early) this.#handedOff--;
    }
  }

  /**
   * Hands off the contributions queued here for `handoffMs` or longer, when another process
   * holds the lease, if this process has had at most `handoffLimit` submits in flight within
   * the last `leaseMs`: each is stored (by its own submit) for that holder's next fold. A
   * process that serves more at once fills its folds with its own, writing no gradient (and
   * one of them alone for a moment, between its folds, is no lone request).
   */
  #handOff(): void {
    const { handoffMs, handoffLimit } = this.options;
    const now = monotonic();
    if (this.#inflight.size > handoffLimit || now < this.#crowdedUntil) return;
    for (const local of this.queue) {
      const handoff = this.#handoffs.get(local);
      if (!local.taken && handoff && now - handoff.since >= handoffMs) handoff.fire();
    }
  }

  /**
   * Stores the contributions queued here that would pass `staleness` before a fold of this
   * process takes them, where a fold takes fewer of its own (`maxLocal`: a store whose commit
   * checks few fresh ids, `maxFresh`) than `maxFold`; `from`: the step the next fold folds on.
   * While this process holds the lease (`holding`), each fold takes at least `perFold` of them,
   * in their order, and makes at most one step, but the folds that look for whose gradient gave
   * a step no checkpoint could hold take that step's contributions first, in at most
   * `isolatingSteps` steps: the one at place `i` is folded at most those and `⌊i / perFold⌋`
   * steps past `from`; the others stay, and no gradient of theirs is written (with `handoffMs:
   * Infinity` too: a burst that the next steps take in time costs no write). Once its fold
   * handed the lease on to another process, they wait for its turn to come back while the
   * others' folds step: all are stored. Stored (each by its own submit, as one handed off), they
   * fill the next folds as the others' do, with no check each. One already too stale is not
   * (refused by the next fold, stored or not).
   */
  #storeSurplus(from: number, holding: boolean): void {
    const { maxLocal, maxFold, staleness } = this.options;
    if (maxLocal >= maxFold) return;
    // The fewest of its own a fold takes, stored ones taking their half (maxFold ≥ 2 here).
    const perFold = Math.min(maxLocal, Math.floor(maxFold / 2));
    const isolating = isolatingSteps(this);
    this.queue.forEach((local, i) => {
      const behind = from - local.info.base;
      const reached = holding ? behind + isolating + Math.floor(i / perFold) : Infinity;
      if (behind <= staleness && reached > staleness) this.#handoffs.get(local)?.fire();
    });
  }

  /**
   * A fold of this process, holding the lease, took its contributions and steps from `step`,
   * the store's (not the last this process saw: others may have stepped since it last held the
   * lease): see `#storeSurplus`.
   */
  folding(step: number): void {
    this.#storeSurplus(step + 1, true);
  }

  /** Its fold handed the lease on to another process: see `#storeSurplus`. */
  handedOn(): void {
    // (Known before any contribution is queued.)
    if (this.snapshot !== null) this.#storeSurplus(this.snapshot.step, false);
  }

  /** Whether work waits here: queued, being stored, or watched. */
  #busy(): boolean {
    return this.queue.length > 0 || this.#storing > 0 || this.watched.size > 0;
  }

  #kick(): void {
    if (this.#pump !== null || this.#stopped) return;
    this.#pump = this.#run().finally(() => {
      this.#pump = null;
      if (this.#busy()) this.#kick();
    });
  }

  /** Folds while this process holds the lease and has work; waits for it otherwise. */
  async #run(): Promise<void> {
    // (Stopped here only by a close() that gave up waiting for it: no fold after the one held.)
    while (!this.#stopped && this.#busy()) {
      try {
        if (this.lease === null && monotonic() >= this.backoffUntil) {
          // Queued for it with work of its own; else taken only if free (another may fold).
          const queue = this.queue.length > 0 || this.#handedOff > 0;
          const asked = instant();
          // Its term runs from when the store granted it, not from when its answer came.
          renewed(this, await this.store.acquire(this.token, this.options.leaseMs, queue), asked);
          if (this.lease === null) this.#handOff(); // another process holds it
        }
        if (this.lease !== null) {
          let ended!: () => void;
          this.#foldEnd = new Promise((resolve) => ended = resolve);
          if (await foldOnce(this).finally(ended)) continue;
          await this.dropLease(); // nothing to fold: let another process fold its own
        }
        await sleep(this.options.pollMs * (0.5 + Math.random()));
        await this.#pollWatched();
      } catch {
        // A failing database: each waiting request ends at its deadline.
        await sleep(this.options.pollMs);
      }
    }
    await this.dropLease();
  }

  /** Asks the store for the outcome of every contribution watched here. */
  async #pollWatched(): Promise<void> {
    for (const id of [...this.watched.keys()]) {
      const record = await this.store.request(id);
      if (record !== null) this.settleWatched(id, record);
    }
  }

  /** Gives the lease up, if held (or handed on to this process), and leaves its queue. */
  async dropLease(): Promise<void> {
    const lease = this.lease;
    this.lease = null;
    try {
      await this.store.release(lease ?? this.token);
    } catch {
      // It expires.
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Every submit waiting here settles by waitMs, a fold's call by leaseMs unless it hangs.
    const { waitMs, leaseMs } = this.options;
    const deadline = deadlineIn(waitMs + leaseMs);
    // A loop that ends starts another when work came meanwhile (while it gave the lease up):
    // wait for each, until none runs.
    for (let pump = this.#pump; pump !== null; pump = this.#pump) {
      if (!await until(pump.then(() => true), deadline, false)) {
        // A call of the fold the database does not answer: the state it steps is freed only
        // once it returns (that fold ends, and the loop with it, giving the lease up).
        this.#stopped = true;
        pump.then(() => this.#free());
        throw this.#hungClose(
          "a call of its fold",
          "nothing more is folded, and the trainer's state is freed once it answers",
        );
      }
    }
    this.#stopped = true;
    this.#free(); // no fold runs now
    if (!await until(this.dropLease().then(() => true), deadline, false)) {
      throw this.#hungClose("the release of its lease", "the lease expires by itself");
    }
  }

  /** Frees the state this process folds on. */
  #free(): void {
    if (this.cache !== null) dispose(this.cache.state);
    this.cache = null;
  }

  /** The error of a close() that gave up waiting for `what` to be answered; `then`: what now. */
  #hungClose(what: string, then: string): Error {
    const { waitMs, leaseMs } = this.options;
    return new Error(
      `close(): store ${this.store.name} did not answer ${what} within waitMs + leaseMs ` +
        `(${waitMs + leaseMs} ms); ${then}`,
    );
  }
}
