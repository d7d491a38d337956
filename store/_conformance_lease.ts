/**
 * The clauses of {@linkcode TrainingStore} the conformance kit checks about the lease, the
 * waiting notes, `maxFold`, and what expires as time passes (checked only on the caller's
 * clock, or the stores' own that the option `now` reads: see `advance` and `now` in
 * store/conformance.ts).
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";
import type { Lease, TrainingStore } from "./training.ts";
import {
  answer,
  asJournal,
  asRecord,
  bytesOf,
  checkpointOf,
  type Clause,
  expect,
  expectSame,
  type KitContext,
  race,
  show,
} from "./_conformance_kit.ts";
import { commitOf, firstCommit, submitNew } from "./_conformance_calls.ts";

type Store = TrainingStore;
const TERM = 60_000;

/** The clock a lease's end is stamped with: the option `now`, else this process's `Date.now`. */
async function clock(now: KitContext["now"]): Promise<number> {
  if (now === undefined) return Date.now();
  const ms = await now();
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new TypeError(`Option now must give a number of ms since the epoch, got ${show(ms)}`);
  }
  return ms;
}

/** What a lease's end is judged by, in the words of a broken clause. */
const clockWords = (now: KitContext["now"]) =>
  now === undefined
    ? "this process's clock (Date.now: a lease's end is stamped by the caller's wall clock, " +
      "which the kit reads as Date.now, and its option advance must move; not the database's " +
      "own clock, nor another injected one, unless the option now reads it)"
    : "the stores' clock (as the option now reads it, and the option advance moves it)";

/** Acquires for `token`, throwing unless it got the lease, ending `ms` after by `now`. */
async function take(
  store: Store,
  now: KitContext["now"],
  token: string,
  after = "",
  ms = TERM,
): Promise<Lease> {
  const did = `acquire("${token}", ${ms})${after}`;
  const before = await clock(now);
  const lease = await answer(did, () => store.acquire(token, ms));
  // Its end by the clock of its holder: this process's, or the one the stores keep.
  const ends = typeof lease?.expires === "number" && lease.expires >= before + ms &&
    lease.expires <= await clock(now) + ms;
  expect(
    lease?.token === token && ends,
    did,
    `a lease of "${token}" that ends in ${ms} ms by ${clockWords(now)}`,
    lease,
  );
  return lease!;
}

/** Throws unless `token` is refused the lease. */
async function refused(store: Store, token: string, after: string, queue = true): Promise<void> {
  const did = `acquire("${token}", ${TERM}${queue ? "" : ", false"}) ${after}`;
  expectSame(did, await answer(did, () => store.acquire(token, TERM, queue)), null);
}

/** Throws unless `waiting(lease)` names `token`. */
async function waits(store: Store, lease: Lease, token: string | null, after: string) {
  const did = `waiting(lease of "${lease.token}") ${after}`;
  expectSame(did, await answer(did, () => store.waiting(lease)), token);
}

/**
 * Commits, under a lease taken for it (and released by it), a checkpoint at `step` on
 * `version` settling `stored` contributions submitted now and `fresh` ones of the committer's
 * own (ids from the `from`-th on): the version it made, failing the clause unless it did.
 */
async function commitFold(
  store: Store,
  at: { version: string; step: number },
  stored: number,
  fresh: number,
  from: number,
): Promise<string> {
  const id = (i: number) => `r${String(from + i).padStart(6, "0")}`;
  for (let i = 0; i < stored; i++) await submitNew(store, id(i), 1, bytesOf(from + i, 64));
  const taken = await answer(`pending(${stored})`, () => store.pending(stored));
  const submits = `pending(${stored}) after ${stored} submits`;
  expect(taken.length === stored, submits, `${stored} contributions`, taken.length);
  const lease = await answer("acquire(t, 60000)", () => store.acquire("t", TERM));
  expect(lease !== null, "acquire(t, 60000) with no lease held", "a lease", lease);
  const ids = Array.from({ length: fresh }, (_, i) => id(stored + i));
  const local = ids.map((id) => ({ id, base: 1, samples: 1 }));
  const did = `a commit of a checkpoint under a lease applying ${stored} stored ` +
    `contributions and ${fresh} fresh ones`;
  const done = await answer(did, async () =>
    store.commit(commitOf({
      checkpoint: await checkpointOf(at.step),
      expected: at.version,
      step: at.step,
      seq: at.step,
      lease: lease!,
      applied: [...taken, ...local],
      fresh: ids,
    })));
  expect(typeof done?.version === "string", did, "{ version: a string, lease: null }", done);
  return done!.version!;
}

/** The clauses of the lease and of expiry. */
export const LEASE_CLAUSES: readonly Clause<Store>[] = [
  {
    id: "lease.exclusive",
    promise: "a lease held is refused to other tokens until released (by the lease, or by its " +
      "token), and a release of a lease no longer held frees nothing",
    async run(make, { now }) {
      const store = await make();
      const t1 = await take(store, now, "t1");
      await refused(store, "t2", 'while "t1" holds it');
      await answer("release(lease of t1)", () => store.release(t1));
      await take(store, now, "t2", ' after "t1" released it');
      await answer('release(the old lease of "t1")', () => store.release(t1));
      await refused(store, "t3", 'after a release of "t1"\'s old lease, while "t2" holds it');
      await answer('release("t2")', () => store.release("t2"));
      await take(store, now, "t3", ' after release("t2")');
    },
  },
  {
    id: "lease.race",
    promise: "of acquires by different tokens made at once, exactly one gets the lease",
    async run(make, { racers }) {
      const store = await make();
      const did = `${racers} acquires at once by different tokens`;
      const got = await answer(did, () => race(racers, (i) => store.acquire(`t${i}`, TERM)));
      expect(
        got.filter((l) => l !== null).length === 1,
        did,
        "exactly one lease, the others null",
        got,
      );
    },
  },
  {
    id: "lease.again",
    promise: "acquire by the token that holds the lease takes it again: a new lease of that " +
      "token for a fresh term (a commit under the one before then fails), still refused to others",
    async run(make, { now }) {
      const store = await make();
      const version = await firstCommit(store);
      const first = await take(store, now, "t1");
      // A trainer whose release failed asks again with its own token: it must not wait out its
      // own lease as if another held it.
      const again = await take(store, now, "t1", ' while "t1" holds it');
      await refused(store, "t2", 'after "t1" took it again');
      let did = 'a commit under "t1"\'s lease taken before it took it again';
      expectSame(
        did,
        await answer(did, () => store.commit(commitOf({ expected: version, lease: first }))),
        null,
      );
      did = 'a commit under "t1"\'s lease taken again';
      const done = await answer(
        did,
        () => store.commit(commitOf({ expected: version, lease: again })),
      );
      expect(done !== null, did, "a result", done);
    },
  },
  {
    id: "gradient.gone",
    promise: "gradient() of a contribution a commit has since settled answers its bytes as " +
      "submitted or rejects with a CheckpointError (a fold takes any other rejection as the " +
      "database failing)",
    async run(make) {
      const store = await make();
      const version = await firstCommit(store);
      await submitNew(store, "a", 1, bytesOf(5, 8));
      const [a] = await answer("pending(1)", () => store.pending(1));
      const did = "a commit at step 2 applying a";
      const done = await answer(
        did,
        async () =>
          store.commit(
            commitOf({
              checkpoint: await checkpointOf(2),
              expected: version,
              step: 2,
              seq: 2,
              applied: [a],
            }),
          ),
      );
      expect(done !== null, did, "a result", done);
      const asked = `gradient() of "a", listed by pending() before ${did}`;
      let got: unknown;
      try {
        got = await store.gradient(a);
      } catch (error) {
        if (error instanceof CheckpointError) return;
        expect(false, asked, "its bytes, or a rejection with a CheckpointError", error);
      }
      expectSame(asked, got, bytesOf(5, 8));
    },
  },
  {
    id: "commit.lease",
    promise: "a commit under a lease fails once the lease is not current; it releases the lease, " +
      "renews it (next: its own token) or hands it on (next: another token)",
    async run(make, { now }) {
      const store = await make();
      let version = await firstCommit(store);
      const old = await take(store, now, "t1");
      await answer("release", () => store.release(old));
      let lease = await take(store, now, "t1", " again");
      let did = "a commit under a lease released since";
      expectSame(
        did,
        await answer(did, () => store.commit(commitOf({ expected: version, lease: old }))),
        null,
      );
      did = "a commit under the current lease, next: its own token";
      const before = await clock(now);
      const renewed = await answer(
        did,
        () => store.commit(commitOf({ expected: version, lease, next: { token: "t1", ms: TERM } })),
      );
      const renewedBy = await clock(now);
      const ends = renewed?.lease?.expires;
      expect(
        renewed?.lease?.token === "t1" && typeof ends === "number" && ends >= before + TERM &&
          ends <= renewedBy + TERM,
        did,
        `{ lease: a lease of "t1" that ends in ${TERM} ms by ${clockWords(now)} }`,
        renewed,
      );
      version = renewed!.version!;
      await refused(store, "t2", `after ${did}`);
      lease = renewed!.lease!;
      did = 'a commit under the renewed lease, next: "t2"';
      const handed = await answer(
        did,
        () => store.commit(commitOf({ expected: version, lease, next: { token: "t2", ms: TERM } })),
      );
      expect(handed !== null && handed.lease === null, did, "{ lease: null }", handed);
      await refused(store, "t3", `after ${did}`);
      lease = await take(store, now, "t2", ` after ${did}`);
      did = "a commit under a lease, no next";
      expect(
        (await answer(did, () => store.commit(commitOf({ expected: version, lease })))) !== null,
        did,
        "a result",
        null,
      );
      await take(store, now, "t3", ` after ${did}`);
    },
  },
  {
    id: "lease.waiting",
    promise: "waiting names the token refused the lease that waited longest (not the holder); " +
      "acquire with queue false, and release by token, remove its note",
    async run(make, { now }) {
      const store = await make();
      const lease = await take(store, now, "t1");
      await waits(store, lease, null, "with no one refused");
      await refused(store, "t2", 'while "t1" holds it');
      await waits(store, lease, "t2", 'after "t2" was refused');
      await refused(store, "t3", 'while "t1" holds it');
      await waits(store, lease, "t2", 'after "t3" was refused too');
      await refused(store, "t4", "with queue false", false);
      await refused(store, "t2", "with queue false", false);
      await waits(store, lease, "t3", 'after "t2" asked with queue false');
      await answer('release("t3")', () => store.release("t3"));
      await waits(store, lease, null, 'after release("t3")');
    },
  },
  {
    id: "journal.range",
    promise: "journal(from, limit) gives the records of seq ≥ from, by seq, at most limit",
    async run(make) {
      const store = await make();
      let version: string | null = await firstCommit(store);
      const seqs = [2, 3, 5, 6];
      for (const seq of seqs) {
        const id = `r${seq}`;
        const did = `a commit at seq ${seq} applying a fresh ${id}`;
        const applied = [{ id, base: 1, samples: 1 }];
        const done = await answer(
          did,
          () => store.commit(commitOf({ expected: version, step: 1, seq, applied, fresh: [id] })),
        );
        expect(done !== null, did, "a result", done);
        version = done!.version;
      }
      const record = (seq: number) => ({
        step: 1,
        seq,
        entries: [{ id: `r${seq}`, base: 1, samples: 1 }],
      });
      for (const [from, limit] of [[0, Infinity], [3, Infinity], [4, 1], [2.5, 2], [7, 3]]) {
        const did = `journal(${from}, ${limit}) of records at seq ${seqs.join(", ")}`;
        const got = await answer(did, () => store.journal(from, limit).then(asJournal));
        expectSame(did, got, seqs.filter((s) => s >= from).slice(0, limit).map(record));
      }
    },
  },
  {
    id: "store.maxFold",
    needs: "maxFold",
    promise: "maxFold and maxFresh, when given, are integers ≥ 1, and a commit of a checkpoint " +
      "under a lease settling maxFold stored contributions goes through, as does one settling " +
      "maxFold of which maxFresh are fresh, the others stored",
    async run(make) {
      const store = await make();
      const { maxFold, maxFresh } = store;
      for (const [name, n] of [["maxFold", maxFold], ["maxFresh", maxFresh]] as const) {
        const ok = n === undefined || Number.isInteger(n) && n >= 1;
        expect(ok, `reading ${name}`, "an integer ≥ 1 (or undefined)", n);
      }
      const fresh = Math.min(maxFresh ?? 0, maxFold ?? Infinity);
      // A fold of stored contributions alone (none of the holder's own waits), and one of as
      // many of the holder's own as its commit checks, stored ones for the rest.
      const folds: [number, number][] = [];
      if (maxFold !== undefined) folds.push([maxFold, 0]);
      if (fresh > 0) folds.push([(maxFold ?? fresh) - fresh, fresh]);
      let version = await firstCommit(store);
      let from = 0;
      for (const [i, [stored, own]] of folds.entries()) {
        version = await commitFold(store, { version, step: 2 + i }, stored, own, from);
        from += stored + own;
      }
    },
  },
  {
    id: "lease.expiry",
    needs: "advance",
    promise: "a lease another token has seen unchanged for its whole term (not less) is taken " +
      "by it, and a waiting note not renewed for over a second no longer asks",
    async run(make, { advance, now }) {
      const store = await make();
      // A term of 5 s, refused again 4 s into it: a second to spare for a slow machine's
      // pauses between the calls, which the clock counts on top of what the kit advances.
      const lease = await take(store, now, "t1", "", 5000);
      await refused(store, "t2", 'while "t1" holds it');
      await waits(store, lease, "t2", 'after "t2" was refused');
      await advance!(4000);
      await refused(store, "t2", '4 s after it first saw "t1"\'s lease of 5 s');
      await waits(store, lease, "t2", 'after "t2" was refused again');
      await advance!(1100);
      await waits(store, lease, null, "1.1 s after the last note");
      await take(store, now, "t2", ' 5.1 s after it first saw "t1"\'s lease of 5 s');
    },
  },
  {
    id: "lease.long-dead",
    needs: "advance",
    promise: "a lease whose recorded end is more than a minute past, by the caller's clock, is " +
      "taken by a token that reads it for the first time, and not one ended less long ago",
    async run(make, { advance, now }) {
      const store = await make();
      await take(store, now, "t1", "", 1000);
      await advance!(30_000);
      await refused(store, "t2", 'read first 29 s after the end of "t1"\'s lease');
      await advance!(32_001);
      await take(store, now, "t3", ' read first 61 s after the end of "t1"\'s lease');
    },
  },
  {
    id: "request.expiry",
    needs: "advance and rememberMs",
    promise: "a request record is forgotten after rememberMs, the id is then taken as new, and " +
      "those of one id pend in the order they were submitted",
    async run(make, { advance, rememberMs }) {
      const store = await make();
      await submitNew(store, "r", 0, bytesOf(1, 8));
      await advance!(rememberMs! + 1);
      expectSame(
        'request("r") after rememberMs',
        await answer("request()", () => store.request("r").then(asRecord)),
        null,
      );
      await submitNew(store, "r", 0, bytesOf(2, 8));
      const did = 'pending(Infinity) after "r" was submitted twice, rememberMs apart';
      const got = await answer(did, () => store.pending(Infinity));
      const gradients = await answer(
        "gradient()",
        () => Promise.all(got.map((p) => store.gradient(p))),
      );
      expectSame(`the gradients of ${did}`, gradients, [bytesOf(1, 8), bytesOf(2, 8)]);
    },
  },
];
