/**
 * The in-process store's memory of request ids and journal records: each is remembered for
 * `rememberMs` and forgotten after, as before; and a commit forgets what expired without
 * visiting every record it remembers (it scanned them all at each commit: O(records) a step
 * over a long run).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { saveState, sgd } from "../mod.ts";
import { memoryCheckpointStore, type TrainingStore } from "../store.ts";
import { ExpiryQueue } from "../store/_expiry.ts";

/** Runs `fn` with `Date.now` reading `clock.now`. */
async function withClock<T>(clock: { now: number }, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => clock.now;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

const checkpoint = await saveState(await sgd().init({ w: new Float32Array(1) }));

/** A commit of `ids` (each new to the store) as step `seq`, from `version`. */
function commitOf(version: string | null, seq: number, ids: string[]) {
  const applied = ids.map((id) => ({ id, base: 0, samples: 1 }));
  return { checkpoint, expected: version, step: seq, seq, applied, refused: [], fresh: ids };
}

/** One operation of the property: submit an id, commit ids, or let time pass. */
type Op =
  | { kind: "submit"; id: number }
  | { kind: "commit"; ids: number[] }
  | { kind: "wait"; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("submit" as const), id: fc.nat(7) }),
  fc.record({
    kind: fc.constant("commit" as const),
    ids: fc.uniqueArray(fc.nat(7), { maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant("wait" as const), ms: fc.oneof(fc.nat(1200), fc.constant(1000)) }),
);

Deno.test("memory store: ids and journal records are remembered rememberMs and forgotten after, as the records say", async () => {
  // The model: each id's record expires rememberMs after it was last set (submitted: pending;
  // committed: applied), and is known while it has not; a journal record is listed until the
  // first commit at or after its expiry forgets it.
  await fc.assert(
    fc.asyncProperty(
      fc.array(op, { maxLength: 40 }),
      fc.integer({ min: 1, max: 1500 }),
      async (ops, rememberMs) => {
        const clock = { now: 1_900_000_000_000 };
        await withClock(clock, async () => {
          const store: TrainingStore = memoryCheckpointStore({ rememberMs });
          const ids = new Map<string, { state: string; until: number }>();
          const journal = new Map<number, number>(); // seq → until
          let version: string | null = null, seq = 0;
          for (const o of ops) {
            if (o.kind === "wait") clock.now += o.ms;
            else if (o.kind === "submit") {
              const id = `r${o.id}`;
              const known = ids.get(id);
              const answer = await store.submit({ id, base: 0, samples: 1 }, new Uint8Array(4));
              if (known !== undefined && known.until > clock.now) assert.notEqual(answer, null);
              else {
                assert.equal(answer, null);
                ids.set(id, { state: "pending", until: clock.now + rememberMs });
              }
            } else {
              const fresh = o.ids.map((i) => `r${i}`).filter((id) => {
                const known = ids.get(id);
                return known === undefined || known.until <= clock.now;
              });
              if (fresh.length === 0) continue;
              const done = await store.commit(commitOf(version, ++seq, fresh));
              assert.notEqual(done, null);
              version = done!.version;
              for (const [s, until] of journal) if (until <= clock.now) journal.delete(s);
              journal.set(seq, clock.now + rememberMs);
              for (const id of fresh) {
                ids.set(id, { state: "applied", until: clock.now + rememberMs });
              }
            }
            for (const [id, r] of ids) {
              const record = await store.request(id);
              assert.equal(record?.state ?? null, r.until > clock.now ? r.state : null, id);
            }
            const listed = (await store.journal(0, Infinity)).map((r) => r.seq);
            assert.deepEqual(listed, [...journal.keys()].sort((a, b) => a - b));
          }
        });
      },
    ),
    { numRuns: 300 },
  );
});

/** Counts the entries visited by iterating a Map, and the records looked up, while `fn` runs. */
async function mapVisits(fn: () => Promise<unknown>): Promise<number> {
  const proto = Map.prototype;
  const saved = { entries: proto.entries, values: proto.values, keys: proto.keys, get: proto.get };
  const iter = proto[Symbol.iterator];
  let visits = 0;
  const counted = <T>(it: MapIterator<T>): MapIterator<T> => {
    const next = it.next.bind(it);
    return Object.assign(it, { next: () => (visits++, next()) });
  };
  proto.entries = function () {
    return counted(saved.entries.call(this));
  };
  proto.values = function () {
    return counted(saved.values.call(this));
  };
  proto.keys = function () {
    return counted(saved.keys.call(this));
  };
  proto[Symbol.iterator] = proto.entries;
  proto.get = function (key: unknown) {
    visits++;
    return saved.get.call(this, key);
  };
  try {
    await fn();
  } finally {
    Object.assign(proto, saved);
    proto[Symbol.iterator] = iter;
  }
  return visits;
}

Deno.test("memory store: a commit does not visit every id and journal record it remembers", async () => {
  const store = memoryCheckpointStore();
  let version: string | null = null;
  for (let seq = 1; seq <= 100; seq++) {
    const ids = Array.from({ length: 100 }, (_, i) => `s${seq}-${i}`);
    version = (await store.commit(commitOf(version, seq, ids)))!.version;
  }
  // 10,000 ids and 100 journal records remembered: one more commit of one id.
  const visits = await mapVisits(() => store.commit(commitOf(version, 101, ["last"])));
  assert.ok(visits < 100, `a commit visited ${visits} entries of the store's maps`);
  assert.deepEqual(await store.request("s1-0"), { state: "applied", step: 1 });
  assert.equal((await store.journal(0, Infinity)).length, 101);
});

Deno.test("memory store: the expiry queue gives exactly the entries due, soonest first, whatever order they came in", () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constant(-1)), { maxLength: 80 }),
      (steps) => {
        const queue = new ExpiryQueue<number>();
        const held: number[] = [];
        let now = 0;
        for (const [i, s] of steps.entries()) {
          if (s >= 0) queue.push(i, s), held.push(s);
          else {
            now += 7;
            const due: number[] = [];
            queue.popDue(now, (_, until) => due.push(until));
            const expected = held.filter((u) => u <= now).sort((a, b) => a - b);
            assert.deepEqual(due, expected);
            held.splice(0, held.length, ...held.filter((u) => u > now));
            assert.equal(queue.size, held.length);
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("memory store: a latencyMs past setTimeout's longest delay (2³¹ − 1 ms) is waited for, where its calls answered at once", async () => {
  // setTimeout fires a delay past 2³¹ − 1 ms at once: the store's calls answered at once. Timers
  // are stood in for here, as the runtime does with such a delay: others are never fired.
  const real = globalThis.setTimeout;
  const armed: number[] = [];
  globalThis.setTimeout = ((f: () => void, ms = 0) => {
    armed.push(ms);
    return ms > 2 ** 31 - 1 ? real(f, 0) : 0;
  }) as typeof setTimeout;
  let answered = false;
  try {
    const store = memoryCheckpointStore({ latencyMs: 2 ** 31 });
    store.head().then(() => answered = true);
  } finally {
    globalThis.setTimeout = real;
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(answered, false, `timers set: ${armed}`);
});
