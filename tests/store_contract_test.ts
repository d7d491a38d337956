/**
 * The contract of a training store (store/training.ts), held by both stores alike: the
 * in-process one and the Deno KV one answer the same calls the same way.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { saveState, sgd } from "../mod.ts";
import {
  kvCheckpointStore,
  type Lease,
  memoryCheckpointStore,
  type TrainingStore,
  type VersionedCheckpointStore,
} from "../kv.ts";
import { PREFIX } from "./kv_fakes.ts";
import { onEachStore as eachStore } from "./each_store.ts";

/** Runs `fn` on each store: the in-process one, and one on a new Deno KV database. */
const onEachStore = (fn: (store: TrainingStore) => Promise<void>): Promise<void> =>
  eachStore(fn, { memory: { name: "in memory" }, prefix: PREFIX });

/**
 * Runs `fn` with `Date.now` answering `clock.now` (a clock the test moves), and the monotonic
 * clock (`performance.now`, on which a process judges another's lease over) moving with it, so
 * that both stores see the same times whatever the machine's load.
 */
async function withClock<T>(clock: { now: number }, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  const start = clock.now;
  Date.now = () => clock.now;
  Object.defineProperty(performance, "now", { value: () => clock.now - start, configurable: true });
  try {
    return await fn();
  } finally {
    Date.now = real;
    delete (performance as { now?: unknown }).now;
  }
}

Deno.test("store contract: pending lists by base step, then by id as Deno KV orders strings, whatever the storing clocks, in both stores", async () => {
  // Both stores listed contributions by the millisecond each was stored, on the clock of the
  // process that stored it, and those of one millisecond by id. Now no clock decides: by base
  // step, then by id in the order of UTF-8 bytes ("\uff00" before "\u{1f600}", which UTF-16
  // orders the other way), the same in both stores.
  const gradient = new Uint8Array(8);
  const orders: string[][] = [];
  await onEachStore(async (store) => {
    const clock = { now: 1_700_000_000_000 };
    await withClock(clock, async () => {
      for (const id of ["b", "\u{1f600}", "a", "\uff00", "B"]) {
        assert.equal(await store.submit({ id, base: 1, samples: 1 }, gradient), null, id);
      }
      clock.now += 3_600_000; // a process whose clock is an hour ahead
      assert.equal(await store.submit({ id: "0-ahead", base: 1, samples: 1 }, gradient), null);
      clock.now -= 7_200_000; // and one an hour behind
      assert.equal(await store.submit({ id: "z-behind", base: 2, samples: 1 }, gradient), null);
      assert.equal(await store.submit({ id: "y-older", base: 0, samples: 1 }, gradient), null);
    });
    const listed = (await store.pending(100)).map((p) => p.id);
    assert.deepEqual(
      listed,
      ["y-older", "0-ahead", "B", "a", "b", "\uff00", "\u{1f600}", "z-behind"],
      store.name,
    );
    assert.deepEqual((await store.pending(3)).map((p) => p.id), listed.slice(0, 3), store.name);
    orders.push(listed);
  });
  assert.deepEqual(orders[0], orders[1]);
});

Deno.test("store contract: a contribution stored by a process whose clock is ahead is folded within a few folds while more wait than one fold takes, in both stores", async () => {
  // Listed by the storing process's clock, a contribution stored by a process an hour ahead
  // came after every one stored within that hour: with more stored each fold than a fold
  // takes, it waited the whole hour (and was then refused as too stale).
  const checkpoint = await saveState(await sgd().init({ w: new Float32Array(2) }));
  const gradient = new Uint8Array(8);
  await onEachStore(async (store) => {
    const clock = { now: 1_700_000_000_000 };
    const folded = await withClock(clock, async () => {
      clock.now += 3_600_000;
      assert.equal(await store.submit({ id: "ahead", base: 0, samples: 1 }, gradient), null);
      clock.now -= 3_600_000;
      let version: string | null = null;
      for (let step = 0; step < 6; step++) {
        // Three new ones at the current step, two taken by each fold.
        for (const n of [0, 1, 2]) {
          const id = `s${step}-${n}`;
          assert.equal(await store.submit({ id, base: step, samples: 1 }, gradient), null);
        }
        clock.now += 10;
        const taken = await store.pending(2);
        const c = { checkpoint, expected: version, step: step + 1, seq: step + 1, fresh: [] };
        const done = await store.commit({ ...c, applied: taken, refused: [] });
        version = done!.version;
        if (taken.some((p) => p.id === "ahead")) return step;
      }
      return null;
    });
    assert.equal(folded, 0, store.name); // base 0: first in the first fold
  });
});

/** A store's calls, and what the differential test compares of their answers. */
type Call =
  | { k: "submit"; id: string; base: number; samples: number; bytes: number }
  | { k: "pending"; limit: number }
  | { k: "request"; id: string }
  | { k: "acquire"; token: string; ms: number; queue: boolean }
  | { k: "release"; token: string; byToken: boolean }
  | { k: "waiting"; token: string }
  | { k: "commit"; take: number; refuse: number; lease: string | null; next: string | null }
    & { fresh: string[]; step: boolean }
  | { k: "journal"; from: number; limit: number }
  | { k: "tick"; ms: number };

const IDS = ["a", "b", "B", "é", "\uff00", "\u{1f600}"];
const TOKENS = ["t1", "t2", "t3"];
const calls: fc.Arbitrary<Call> = fc.oneof(
  fc.record({
    k: fc.constant("submit" as const),
    id: fc.constantFrom(...IDS),
    base: fc.nat(3),
    samples: fc.integer({ min: 1, max: 3 }),
    bytes: fc.constantFrom(0, 4, 8),
  }),
  fc.record({ k: fc.constant("pending" as const), limit: fc.nat(5) }),
  fc.record({ k: fc.constant("request" as const), id: fc.constantFrom(...IDS) }),
  fc.record({
    k: fc.constant("acquire" as const),
    token: fc.constantFrom(...TOKENS),
    ms: fc.constantFrom(5, 1000),
    queue: fc.boolean(),
  }),
  fc.record({
    k: fc.constant("release" as const),
    token: fc.constantFrom(...TOKENS),
    byToken: fc.boolean(),
  }),
  fc.record({ k: fc.constant("waiting" as const), token: fc.constantFrom(...TOKENS) }),
  fc.record({
    k: fc.constant("commit" as const),
    take: fc.nat(4),
    refuse: fc.nat(2),
    lease: fc.option(fc.constantFrom(...TOKENS)),
    next: fc.option(fc.constantFrom(...TOKENS)),
    fresh: fc.subarray(IDS, { maxLength: 2 }),
    step: fc.boolean(),
  }),
  fc.record({
    k: fc.constant("journal" as const),
    from: fc.nat(6),
    limit: fc.integer({ min: 1, max: 4 }),
  }),
  // A clock set back too: as the call of a process whose clock is behind.
  fc.record({ k: fc.constant("tick" as const), ms: fc.constantFrom(1, 10, 2000, -2000) }),
);

/** One store under the differential test: the leases it gave, by token. */
class Client {
  readonly leases = new Map<string, Lease>();
  constructor(readonly store: TrainingStore, readonly checkpoint: Uint8Array) {}

  /** The answer to `c`, as compared (versions and refs differ by store, and are left out). */
  async call(c: Call): Promise<unknown> {
    const s = this.store;
    switch (c.k) {
      case "submit":
        return await s.submit(c, new Uint8Array(c.bytes));
      case "pending":
        return (await s.pending(c.limit)).map(({ id, base, samples }) => ({ id, base, samples }));
      case "request":
        return await s.request(c.id);
      case "acquire": {
        const lease = await s.acquire(c.token, c.ms, c.queue);
        if (lease) this.leases.set(c.token, lease);
        return lease?.token ?? null;
      }
      case "release": {
        const lease = this.leases.get(c.token);
        return await s.release(c.byToken || !lease ? c.token : lease);
      }
      case "waiting": {
        const lease = this.leases.get(c.token);
        return lease ? await s.waiting(lease) : "no lease";
      }
      case "commit":
        return await this.commit(c);
      case "journal":
        return await s.journal(c.from, c.limit);
      case "tick":
        return null;
    }
  }

  /** A commit of the oldest pending contributions (and `fresh` ones), some refused. */
  async commit(c: Extract<Call, { k: "commit" }>): Promise<unknown> {
    const head = await this.store.head();
    const pending = await this.store.pending(c.take + c.refuse);
    const fresh = c.fresh.filter((id) => !pending.some((p) => p.id === id));
    const lease = c.lease === null ? undefined : this.leases.get(c.lease);
    const stepped = c.step || head === null;
    const step = stepped ? (head?.step ?? 0) + 1 : head.step ?? 0;
    const result = await this.store.commit({
      checkpoint: stepped ? this.checkpoint : null,
      expected: head?.version ?? null,
      step,
      seq: step,
      ...(lease ? { lease } : {}),
      ...(lease && c.next ? { next: { token: c.next, ms: 1000 } } : {}),
      applied: [...pending.slice(0, c.take), ...fresh.map((id) => ({ id, base: 0, samples: 1 }))],
      refused: pending.slice(c.take).map(({ id, ref }) => ({ id, reason: "stale", ref })),
      fresh,
    });
    if (result?.lease) this.leases.set(result.lease.token, result.lease);
    return result && { lease: result.lease?.token ?? null };
  }
}

Deno.test("store contract: random calls get the same answers from both stores", async () => {
  const checkpoint = await saveState(await sgd().init({ w: new Float32Array(2) }));
  const clock = { now: 1_800_000_000_000 };
  let run = 0;
  await withClock(clock, () =>
    fc.assert(
      fc.asyncProperty(
        fc.array(calls, { minLength: 20, maxLength: 80, size: "max" }),
        async (list) => {
          const kv = await Deno.openKv(":memory:");
          try {
            const memory = new Client(memoryCheckpointStore(), checkpoint);
            const onKv = new Client(kvCheckpointStore(kv, ["contract", run++]), checkpoint);
            for (const [i, c] of list.entries()) {
              if (c.k === "tick") clock.now += c.ms;
              // Who has waited longest, of two that asked in the same millisecond, is not said.
              if (c.k === "acquire") clock.now += 1;
              const answers = [];
              for (const client of [memory, onKv]) {
                answers.push(await client.call(c).catch((e: Error) => `${e.name}: ${e.message}`));
              }
              assert.deepEqual(answers[1], answers[0], `call ${i}: ${JSON.stringify(c)}`);
            }
          } finally {
            kv.close();
          }
        },
      ),
      { numRuns: 150 },
    ));
});

Deno.test("store contract: metadata loads as it was saved, and text that UTF-8 cannot hold is refused, nothing saved", async () => {
  // Deno KV's store keeps long metadata as UTF-8, where a lone surrogate (a string sliced
  // between the two halves of a pair) became U+FFFD: such metadata loaded as another string.
  await onEachStore(async (store) => {
    for (const n of [10, 20_000]) {
      const meta = "x\ud83d" + "a".repeat(n);
      await assert.rejects(
        store.save(new Uint8Array([1]), null, meta),
        (e: Error) =>
          e instanceof TypeError && /must be text: .*lone surrogate at 1/.test(e.message),
      );
      assert.equal(await store.head(), null, store.name);
    }
    const meta = "x\u{1f600}€" + "a".repeat(20_000); // long, and text: kept exactly
    await store.save(new Uint8Array([1]), null, meta);
    assert.equal((await store.load())?.meta, meta, store.name);
  });
});

Deno.test("store contract: a commit with metadata too long rejects its promise, nothing changed", async () => {
  // The in-process store threw at the call instead (a caller's .catch never saw it).
  const checkpoint = await saveState(await sgd().init({ w: new Float32Array(2) }));
  await onEachStore(async (store) => {
    let answer: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      answer = store.commit({
        checkpoint,
        expected: null,
        meta: "m".repeat(40_000),
        step: 0,
        seq: 0,
        applied: [],
        refused: [],
        fresh: [],
      });
    }, store.name);
    await assert.rejects(answer!, RangeError);
    assert.equal(await store.head(), null, store.name);
  });
});

Deno.test("store contract: an id sent again once its record expired is a new contribution, stored beside the one still waiting, in both stores, also within the same millisecond", async () => {
  // The in-process store kept one contribution an id: the second took the place of the
  // first, still waiting, which was never folded. The Deno KV store keyed them by the storing
  // process's millisecond and id: one sent again within the same millisecond (a clock that
  // stepped back, or another process's clock behind) overwrote the one waiting, whose update
  // was lost (and its gradient's chunks left behind). Now each submission has its own key.
  const first = new Uint8Array([1, 0, 0, 0]);
  const second = new Uint8Array([2, 0, 0, 0]);
  const checkpoint = await saveState(await sgd().init({ w: new Float32Array(1) }));
  for (const laterMs of [1, 0]) {
    const clock = { now: 1_900_000_000_000 };
    const kv = await Deno.openKv(":memory:");
    try {
      const stores = [
        // Its record expires by the clock the test moves.
        {
          store: memoryCheckpointStore({ rememberMs: 1000 }),
          expire: () => clock.now += 1000 + laterMs,
        },
        // Deno KV removes an expired record in its own time: removed here as it would be.
        {
          store: kvCheckpointStore(kv, PREFIX, { rememberMs: 1000 }),
          expire: () => (clock.now += laterMs, kv.delete([...PREFIX, "requests", "x"])),
        },
      ];
      const answers = [];
      for (const { store, expire } of stores) {
        answers.push(
          await withClock(clock, async () => {
            assert.equal(await store.submit({ id: "x", base: 0, samples: 1 }, first), null);
            await expire();
            assert.equal(await store.request("x"), null, store.name);
            assert.equal(await store.submit({ id: "x", base: 0, samples: 2 }, second), null);
            const pending = await store.pending(10);
            const gradients = new Map<number, number[]>();
            for (const p of pending) gradients.set(p.samples, [...await store.gradient(p)]);
            // A commit that settles the first leaves the second waiting.
            const done = await store.commit({
              checkpoint,
              expected: null,
              step: 1,
              seq: 1,
              applied: pending.filter((p) => p.samples === 1),
              refused: [],
              fresh: [],
            });
            assert.notEqual(done, null, store.name);
            const left = await store.pending(10);
            return {
              pending: pending.length,
              gradients: [...gradients].sort(([a], [b]) => a - b),
              left: left.map(({ id, samples }) => ({ id, samples })),
              gradient: [...await store.gradient(left[0])],
            };
          }),
        );
      }
      assert.deepEqual(answers[0], {
        pending: 2,
        gradients: [[1, [1, 0, 0, 0]], [2, [2, 0, 0, 0]]],
        left: [{ id: "x", samples: 2 }],
        gradient: [2, 0, 0, 0],
      }, `${laterMs} ms later`);
      assert.deepEqual(answers[1], answers[0], `${laterMs} ms later`);
    } finally {
      kv.close();
    }
  }
});

Deno.test("store contract: stored contributions of one id (sent again once its record expired) are listed in the order they were submitted, in both stores, also within one millisecond or after the clock stepped back", async () => {
  // Both stores ordered them by a random UUID each: the later submission folded first about
  // one time in two.
  for (const back of [0, 5]) {
    const clock = { now: 1_900_000_000_000 };
    const kv = await Deno.openKv(":memory:");
    try {
      const stores = [
        { store: memoryCheckpointStore({ rememberMs: 1000 }), expire: () => clock.now += 1001 },
        {
          store: kvCheckpointStore(kv, PREFIX, { rememberMs: 1000 }),
          expire: (id: string) => (clock.now -= back, kv.delete([...PREFIX, "requests", id])),
        },
      ];
      for (const { store, expire } of stores) {
        await withClock(clock, async () => {
          for (let i = 0; i < 16; i++) {
            const id = `x${i}`;
            assert.equal(await store.submit({ id, base: 0, samples: 1 }, new Uint8Array(4)), null);
            await expire(id);
            assert.equal(await store.submit({ id, base: 0, samples: 2 }, new Uint8Array(4)), null);
          }
          const listed = await store.pending(100);
          assert.equal(listed.length, 32, store.name);
          for (let i = 0; i < 16; i++) {
            const samples = listed.filter((p) => p.id === `x${i}`).map((p) => p.samples);
            assert.deepEqual(samples, [1, 2], `${store.name}, x${i}, the clock ${back} ms back`);
          }
        });
      }
    } finally {
      kv.close();
    }
  }
});

Deno.test("store contract: journal and pending refuse a limit or start that is not one with the same error, nothing listed, in both stores", async () => {
  // The in-process store took a negative limit as "all but that many" (journal(0, -1) gave
  // every record but the last) and a fraction as its floor; Deno KV's threw errors of its own
  // ("batchSize must be a positive integer", "Start key is greater than end key").
  const checkpoint = await saveState(await sgd().init({ w: new Float32Array(2) }));
  const answers: unknown[] = [];
  await onEachStore(async (store) => {
    let version: string | null = null;
    for (let step = 1; step <= 3; step++) {
      const applied = [{ id: `r${step}`, base: step - 1, samples: 1 }];
      const fresh = [`r${step}`];
      const c = { checkpoint, expected: version, step, seq: step, applied, refused: [], fresh };
      const done: { version: string | null } | null = await store.commit(c);
      version = done!.version;
    }
    await store.submit({ id: "p", base: 0, samples: 1 }, new Uint8Array(8));
    const answer = (p: Promise<{ seq?: number; id?: string }[]>) =>
      p.then((r) => r.map((x) => x.seq ?? x.id), (e: Error) => `${e.name}: ${e.message}`);
    const got = [];
    for (const [from, limit] of [[0, -1], [2, 1.5], [0, NaN], [NaN, 2], [0, "2"], [Infinity, 2]]) {
      got.push(await answer(store.journal(from as number, limit as number)));
    }
    for (const limit of [-1, 0.5, NaN, null]) {
      got.push(await answer(store.pending(limit as number)));
    }
    got.push(await answer(store.journal(-Infinity, Infinity)), await answer(store.pending(5)));
    answers.push(got);
  });
  assert.deepEqual(answers[0], [
    "RangeError: journal's limit must be an integer ≥ 0 or Infinity, got -1",
    "RangeError: journal's limit must be an integer ≥ 0 or Infinity, got 1.5",
    "RangeError: journal's limit must be an integer ≥ 0 or Infinity, got NaN",
    "RangeError: journal's from must be a number, got NaN",
    'TypeError: journal\'s limit must be an integer ≥ 0 or Infinity, got a string "2" ' +
    "(a number as text: convert it, Number(value))",
    [],
    "RangeError: pending's limit must be an integer ≥ 0 or Infinity, got -1",
    "RangeError: pending's limit must be an integer ≥ 0 or Infinity, got 0.5",
    "RangeError: pending's limit must be an integer ≥ 0 or Infinity, got NaN",
    "TypeError: pending's limit must be an integer ≥ 0 or Infinity, got null",
    [1, 2, 3],
    ["p"],
  ]);
  assert.deepEqual(answers[1], answers[0]);
});

Deno.test("store contract: the library's stores load bytes over an ArrayBuffer of their own, which new Response takes as they are (TypeScript 5.7+), and a store of yours may give any", async () => {
  const bytes = await saveState(await sgd().init({ w: new Float32Array([1, 2, 3]) }));
  const kv = await Deno.openKv(":memory:");
  try {
    const stores = [memoryCheckpointStore(), kvCheckpointStore(kv, PREFIX)] as const;
    for (const store of stores) {
      await store.save(bytes, null);
      const stored = await store.load();
      // Type-checked with this file: plain Uint8Array bytes were a type error here.
      const own: Uint8Array<ArrayBuffer> = stored!.bytes;
      assert.equal(Object.prototype.toString.call(own.buffer), "[object ArrayBuffer]");
      const response = new Response(stored!.bytes);
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes, store.name);
    }
  } finally {
    kv.close();
  }
  // A store of your own keeps its type: its loads may give bytes over any buffer.
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  shared.set(bytes);
  const yours: VersionedCheckpointStore = {
    name: "yours",
    load: () => Promise.resolve({ bytes: shared, version: "1" }),
    save: (_bytes: Uint8Array) => Promise.resolve(null),
  };
  assert.equal((await yours.load())!.bytes.length, bytes.length);
});
