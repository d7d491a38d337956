/**
 * Test helpers of the scheduled concurrency properties (tests/store_scheduled_test.ts): a view of
 * a real Deno KV whose every operation reaches the database, and answers, only when a
 * fast-check scheduler says; faults drawn per write (the database busy or failing, before or
 * after the write lands) and crashes (a process whose calls stop at some point); a fake clock
 * (`Date.now`, `performance.now`, `setTimeout`) that moves only when nothing else can run; and
 * the loop that drains it all.
 *
 * @module
 */
import fc from "fast-check";
import { prng } from "./util.ts";

/** What happens to one write of a client: nothing, or a fault before or after it lands. */
export type Fault = "none" | "busyBefore" | "busyAfter" | "failBefore" | "failAfter";

/** The message of a failure the database gives (not "busy": not asked again by the store). */
export const DB_FAILURE = "simulated database failure";

/**
 * A view's plan: its faults, one per write in order (then none), and those of its reads (the
 * "after" ones as the "before" ones: a read that fails changed nothing), and where it crashes.
 */
export interface ClientPlan {
  readonly faults: readonly Fault[];
  readonly readFaults?: readonly Fault[];
  /** The index of the call (read or write) at which it stops: that call and all after hang. */
  readonly crashAt?: number;
  /** Whether the call it stops at reaches the database first (its answer is never given). */
  readonly crashAfter?: boolean;
  /**
   * Whether the test's `hooks.beforeHead` runs just before its first write that makes a version
   * current (see {@linkcode WriteHooks}): a sweep that follows no head change, another
   * process's submit of the id it commits.
   */
  readonly beforeHead?: boolean;
  /**
   * The faults of its writes that make a version current, one per such write in order (then
   * those of `faults`): drawn apart, the first always one, so that a write that lands and then
   * answers an error meets the store's judgement of whether it landed in most runs.
   */
  readonly headFaults?: readonly Fault[];
}

/** What a test does at a view's atomic writes, given the keys each sets. */
export interface WriteHooks {
  /** Whether a write makes a version current (`plan.headFaults`, `plan.beforeHead`). */
  readonly isHead?: (set: readonly Deno.KvKey[]) => boolean;
  /**
   * Runs (unscheduled: nothing else moves meanwhile, and it must wait on no timer) before the
   * first such write, where `plan.beforeHead` says.
   */
  readonly beforeHead?: (set: readonly Deno.KvKey[]) => Promise<void>;
}

/** A write's or read's fault: none mostly, else one of the four. */
const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 12, arbitrary: fc.constant("none" as const) },
  {
    weight: 4,
    arbitrary: fc.constantFrom<Fault>("busyBefore", "busyAfter", "failBefore", "failAfter"),
  },
);

/**
 * A client's plan: up to 8 faults of writes and of reads, a crash at a call up to `crashMax` (in
 * 1 − 1/`freq` of the plans), and its writes that make a version current: up to 3 faults (the
 * first always one) and, in half the plans, the test's hook before the first.
 */
export const planArb = (crashMax: number, freq = 3): fc.Arbitrary<ClientPlan> =>
  fc.record({
    faults: fc.array(faultArb, { maxLength: 8 }),
    readFaults: fc.array(faultArb, { maxLength: 8 }),
    crashAt: fc.option(fc.nat(crashMax), { nil: undefined, freq }),
    crashAfter: fc.boolean(),
    beforeHead: fc.boolean(),
    headFaults: fc.tuple(
      fc.constantFrom<Fault>("busyAfter", "busyAfter", "busyAfter", "failAfter"),
      fc.array(fc.constantFrom<Fault>("busyAfter", "failAfter", "none"), { maxLength: 2 }),
    ).map(([first, rest]) => [first, ...rest]),
  });

/** The real asynchronous work in flight (database calls, digests), for the loop to wait on. */
export class InFlight {
  readonly #pending = new Set<Promise<unknown>>();
  track<T>(p: Promise<T>): Promise<T> {
    const settled = p.then(() => {}, () => {});
    this.#pending.add(settled);
    settled.then(() => this.#pending.delete(settled));
    return p;
  }
  get size(): number {
    return this.#pending.size;
  }
  async drained(): Promise<void> {
    while (this.#pending.size > 0) await Promise.race(this.#pending);
  }
}

const never = <T>(): Promise<T> => new Promise<T>(() => {});

/**
 * `kv` as one client (a process) sees it: each call waits for the scheduler before it reaches
 * the database, and its answer waits for it again; writes meet `plan`'s faults; from the call
 * `plan.crashAt` on (or from `crash()`, the process killed), nothing answers (and nothing more
 * reaches the database). The writes that `hooks.isHead` names meet `plan.headFaults` first, and
 * the first is preceded by `hooks.beforeHead` where `plan.beforeHead` says.
 */
export function scheduledKv(
  kv: Deno.Kv,
  s: fc.Scheduler,
  inflight: InFlight,
  name: string,
  plan: ClientPlan = { faults: [] },
  hooks: WriteHooks = {},
): Deno.Kv & { crashed: boolean; crash(): void } {
  let calls = 0;
  let writes = 0;
  let reads = 0;
  const state = { crashed: false };
  let heads = 0;
  const call = async <T>(
    what: string,
    write: boolean,
    run: () => Promise<T>,
    set?: readonly Deno.KvKey[],
  ): Promise<T> => {
    const index = calls++;
    if (state.crashed) return never();
    await s.schedule(Promise.resolve(), `${name} ${what}`);
    if (state.crashed) return never();
    const crashing = plan.crashAt !== undefined && index >= plan.crashAt;
    if (crashing && !plan.crashAfter) {
      state.crashed = true;
      return never();
    }
    const head = set !== undefined && hooks.isHead?.(set) === true ? heads++ : -1;
    const fault = head >= 0 && head < (plan.headFaults?.length ?? 0)
      ? plan.headFaults![head]
      : write
      ? plan.faults[writes++] ?? "none"
      : plan.readFaults?.[reads++] ?? "none";
    if (fault === "busyBefore") throw new TypeError("database is locked");
    if (fault === "failBefore") throw new Error(DB_FAILURE);
    if (head === 0 && plan.beforeHead && hooks.beforeHead) {
      await inflight.track(hooks.beforeHead(set!));
    }
    const result = await inflight.track(run());
    if (crashing) {
      state.crashed = true;
      return never();
    }
    if (fault === "busyAfter") throw new TypeError("database is locked");
    if (fault === "failAfter") throw new Error(DB_FAILURE);
    return await s.schedule(Promise.resolve(result), `${name} ${what} answered`);
  };
  const view = {
    get: (key: Deno.KvKey, options?: { consistency?: Deno.KvConsistencyLevel }) =>
      call("get", false, () => kv.get(key, options)),
    getMany: (keys: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) =>
      call("getMany", false, () => kv.getMany(keys, options)),
    list: (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
      // Read in pages of 2, each page a call: writes of others land between them, as they may
      // between the pages of a long listing.
      const it = kv.list(selector, { ...options, batchSize: 2 });
      return (async function* () {
        for (;;) {
          const next = await call("list", false, () => it.next());
          if (next.done) return;
          yield next.value;
        }
      })();
    },
    set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) =>
      call("set", true, () => kv.set(key, value, options)),
    delete: (key: Deno.KvKey) => call("delete", true, () => kv.delete(key)),
    atomic: () => {
      const op = kv.atomic();
      const set: Deno.KvKey[] = [];
      const wrapped = {
        check: (...checks: Deno.AtomicCheck[]) => (op.check(...checks), wrapped),
        set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) => (
          set.push(key), op.set(key, value, options), wrapped
        ),
        delete: (key: Deno.KvKey) => (op.delete(key), wrapped),
        commit: () => call("commit", true, () => op.commit(), set),
      };
      return wrapped;
    },
    close: () => {},
  };
  Object.defineProperty(view, "crashed", { get: () => state.crashed });
  Object.assign(view, { crash: () => void (state.crashed = true) });
  return view as unknown as Deno.Kv & { crashed: boolean; crash(): void };
}

interface Timer {
  at: number;
  seq: number;
  f: () => void;
}

/**
 * A clock that moves only when told: `Date.now`, `performance.now`, `setTimeout` and
 * `clearTimeout` replaced while installed (and `Math.random` seeded); {@linkcode FakeClock.fireNext} moves it to the
 * earliest timer and fires it. SHA-256 digests are tracked in `inflight` meanwhile.
 */
export class FakeClock {
  now = Date.UTC(2026, 0, 1);
  readonly #timers = new Map<number, Timer>();
  #ids = 0;
  #restore: (() => void) | null = null;
  readonly start = this.now;

  install(inflight: InFlight): void {
    const saved = {
      dateNow: Date.now,
      perfNow: performance.now,
      setTimeout: globalThis.setTimeout,
      clearTimeout: globalThis.clearTimeout,
      digest: crypto.subtle.digest,
      random: Math.random,
    };
    Math.random = prng(7); // the store's jitter, the same at each replay of a run
    Date.now = () => this.now;
    performance.now = () => this.now - this.start;
    // deno-lint-ignore no-explicit-any
    const g = globalThis as any;
    g.setTimeout = (f: () => void, ms = 0) => {
      const id = ++this.#ids;
      this.#timers.set(id, { at: this.now + Math.max(0, Number(ms) || 0), seq: id, f });
      return id;
    };
    g.clearTimeout = (id: number) => void this.#timers.delete(id);
    const digest = saved.digest;
    // deno-lint-ignore no-explicit-any
    (crypto.subtle as any).digest = (...args: Parameters<SubtleCrypto["digest"]>) =>
      inflight.track(digest.apply(crypto.subtle, args));
    this.#restore = () => {
      Date.now = saved.dateNow;
      performance.now = saved.perfNow;
      g.setTimeout = saved.setTimeout;
      g.clearTimeout = saved.clearTimeout;
      Math.random = saved.random;
      // deno-lint-ignore no-explicit-any
      delete (crypto.subtle as any).digest;
    };
  }

  uninstall(): void {
    this.#restore?.();
    this.#restore = null;
    this.#timers.clear();
  }

  /** Moves the clock to the earliest timer and fires it; false when there is none. */
  fireNext(): boolean {
    let first: [number, Timer] | null = null;
    for (const entry of this.#timers) {
      const t = entry[1];
      if (first === null || t.at < first[1].at || (t.at === first[1].at && t.seq < first[1].seq)) {
        first = entry;
      }
    }
    if (first === null) return false;
    this.#timers.delete(first[0]);
    this.now = Math.max(this.now, first[1].at);
    first[1].f();
    return true;
  }
}

const realTimeout = globalThis.setTimeout;
const tick = () => new Promise((resolve) => realTimeout(resolve, 0));

/** Waits until no real work is in flight and the microtasks it queued have run. */
async function quiet(inflight: InFlight): Promise<void> {
  do {
    await inflight.drained();
    await tick();
  } while (inflight.size > 0);
}

/**
 * Runs the scheduler's tasks and, when none is left and no real work is in flight, the fake
 * clock's next timer, until `done()` holds. Throws (a hang) when nothing is left to run, or
 * when the clock passes `limitMs` past its start.
 */
export async function drain(
  s: fc.Scheduler,
  clock: FakeClock,
  inflight: InFlight,
  done: () => boolean,
  limitMs: number,
): Promise<void> {
  for (;;) {
    await quiet(inflight);
    if (s.count() > 0) {
      await s.waitOne();
      continue;
    }
    if (done()) return;
    if (clock.now - clock.start > limitMs) {
      throw new Error(`hang: not settled ${limitMs} ms (fake clock) in`);
    }
    if (!clock.fireNext()) throw new Error("hang: nothing scheduled, no timer, calls unsettled");
  }
}

/** A promise's outcome, as seen once it settles. */
export type Outcome<T> =
  | { readonly settled: false }
  | { readonly settled: true; readonly ok: true; readonly value: T }
  | { readonly settled: true; readonly ok: false; readonly error: unknown };

/** Watches `p`: its outcome so far (read it after draining). */
export function watch<T>(p: Promise<T>): { outcome: Outcome<T> } {
  const w: { outcome: Outcome<T> } = { outcome: { settled: false } };
  p.then(
    (value) => w.outcome = { settled: true, ok: true, value },
    (error) => w.outcome = { settled: true, ok: false, error },
  );
  return w;
}

/**
 * How many runs a property makes: `n`, or the environment's `SCHED_RUNS` where it is readable
 * (a longer hunt: `SCHED_RUNS=300 deno test -A tests/store_scheduled_test.ts`).
 */
export function runsOf(n: number): number {
  try {
    const given = Number(Deno.env.get("SCHED_RUNS") ?? n);
    return Number.isInteger(given) && given > 0 ? given : n;
  } catch {
    return n; // no permission to read it
  }
}

/**
 * Runs `fn` on a real Deno KV: a database file in a temporary folder where this process may
 * write one (`deno test -A`), else `:memory:` (the core tests run with no permissions).
 */
export async function withScheduledKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const file = Deno.permissions.querySync({ name: "write" }).state === "granted";
  const dir = file ? await Deno.makeTempDir() : null;
  const kv = await Deno.openKv(dir === null ? ":memory:" : `${dir}/scheduled.sqlite3`);
  try {
    await fn(kv);
  } finally {
    kv.close();
    if (dir !== null) await Deno.remove(dir, { recursive: true });
  }
}
