/**
 * The clauses of {@linkcode TrainingStore} the conformance kit checks about requests and
 * steps: head, params, request records, submit, pending's order and commit.
 *
 * @module
 */
import type { StepCommit, TrainingStore } from "./training.ts";
import { compareUtf8 } from "../base/_utf8.ts";
import {
  answer,
  asHead,
  asJournal,
  asRecord,
  asResult,
  bytesOf,
  checkpointOf,
  type Clause,
  expect,
  expectRejects,
  expectSame,
  pick,
  race,
} from "./_conformance_kit.ts";
import { commitOf, firstCommit, listed, seen, submitNew } from "./_conformance_calls.ts";

type Store = TrainingStore;

/** The contract's order of pending contributions: base step, then id by UTF-8 bytes. */
function contractOrder(a: { id: string; base: number }, b: { id: string; base: number }): number {
  if (a.base !== b.base) return a.base - b.base;
  return compareUtf8(a.id, b.id);
}

/** The clauses of requests and steps. */
export const TRAINING_CLAUSES: readonly Clause<Store>[] = [
  {
    id: "head.params",
    promise: "head() and loadParams() are null on a new store, then give the version (and " +
      "step, and parameters) a commit made current",
    async run(make) {
      const store = await make();
      expectSame(
        "head() on a new store",
        await answer("head()", () => store.head().then(asHead)),
        null,
      );
      expectSame(
        "loadParams() on a new store",
        await answer("loadParams()", () => store.loadParams()),
        null,
      );
      const version = await firstCommit(store);
      expectSame(
        "head() after a commit at step 1",
        await answer("head()", () => store.head().then(asHead)),
        {
          version,
          step: 1,
        },
      );
      const did = "loadParams() after a commit of w = [1, 2]";
      const p = await answer(did, () => store.loadParams());
      expectSame(did, p && { names: p.names, w: [...p.params.w ?? []], version: p.version }, {
        names: ["w"],
        w: [1, 2],
        version,
      });
      const loaded = await answer("load()", () => store.load());
      expectSame("load()'s version after a commit", loaded?.version, version);
    },
  },
  {
    id: "submit.record",
    promise: "submit of a new id stores it (null), its request record is pending, and its " +
      "gradient is kept as submitted, in the store's own copy",
    async run(make) {
      const store = await make();
      expectSame(
        "request() of an unknown id",
        await answer("request()", () => store.request("r").then(asRecord)),
        null,
      );
      const gradient = bytesOf(7, 12);
      await submitNew(store, "r", 0, gradient);
      gradient.fill(0);
      expectSame(
        'request("r") after its submit',
        await answer("request()", () => store.request("r").then(asRecord)),
        {
          state: "pending",
        },
      );
      const [p] = await answer("pending(1)", () => store.pending(1));
      expectSame("pending(1) after a submit", p && { id: p.id, base: p.base, samples: p.samples }, {
        id: "r",
        base: 0,
        samples: 1,
      });
      const did = "gradient(pending) after the submitted array was overwritten";
      expectSame(did, await answer(did, () => store.gradient(p)), bytesOf(7, 12));
    },
  },
  {
    id: "submit.known",
    promise: "submit of a known id stores nothing and returns its record (pending, applied)",
    async run(make) {
      const store = await make();
      const version = await firstCommit(store);
      await submitNew(store, "r", 1);
      let did = 'submit("r") again while pending';
      expectSame(
        did,
        await answer(
          did,
          () => store.submit({ id: "r", base: 1, samples: 1 }, bytesOf(2, 8)).then(asRecord),
        ),
        {
          state: "pending",
        },
      );
      expectSame(`pending(Infinity) after ${did}`, await listed(store), [{
        id: "r",
        base: 1,
        samples: 1,
      }]);
      const taken = await answer("pending(1)", () => store.pending(1));
      const checkpoint = await checkpointOf(2);
      did = 'commit applying "r" at step 2';
      const done = await answer(
        did,
        () =>
          store.commit(
            commitOf({ checkpoint, expected: version, step: 2, seq: 2, applied: taken }),
          ),
      );
      expect(done !== null, did, "a result", done);
      did = 'submit("r") again once applied';
      expectSame(
        did,
        await answer(
          did,
          () => store.submit({ id: "r", base: 2, samples: 1 }, bytesOf(3, 8)).then(asRecord),
        ),
        {
          state: "applied",
          step: 2,
        },
      );
      expectSame(`pending(Infinity) after ${did}`, await listed(store), []);
    },
  },
  {
    id: "submit.race",
    promise: "of submits of one id made at once, exactly one stores it (null), the others get " +
      "its record, and it is pending once",
    async run(make, { racers }) {
      const store = await make();
      const did = `${racers} submits of "r" at once`;
      const got = await answer(
        did,
        () => race(racers, (i) => store.submit({ id: "r", base: 0, samples: 1 }, bytesOf(i, 8))),
      );
      expect(
        got.filter((r) => r === null).length === 1,
        did,
        "exactly one null, the others a record",
        got,
      );
      expect(
        got.every((r) => r === null || r.state === "pending"),
        did,
        'the others { state: "pending" }',
        got,
      );
      expectSame(`pending(Infinity) after ${did}`, await listed(store), [{
        id: "r",
        base: 0,
        samples: 1,
      }]);
    },
  },
  {
    id: "pending.order",
    promise: "pending lists the lowest base step first, those of one step by id in the order " +
      "of UTF-8 bytes, and a limit takes the first",
    async run(make) {
      const store = await make();
      // "\uff00" before "\u{1f600}" by UTF-8 bytes (UTF-16 units order them the other way).
      const sent = ([
        ["b", 1],
        ["\u{1f600}", 0],
        ["a", 1],
        ["\uff00", 0],
        ["B", 0],
        ["a\u0000", 1],
        [
          "é",
          0,
        ],
        ["aa", 1],
        ["0", 2],
      ] as const).map(([id, base]) => ({ id, base, samples: 1 }));
      for (const c of sent) await submitNew(store, c.id, c.base);
      const order = [...sent].sort(contractOrder);
      expectSame("pending(Infinity)", await listed(store), order);
      expectSame("pending(4)", await listed(store, 4), order.slice(0, 4));
    },
  },
  {
    id: "listing.arguments",
    promise: "pending and journal take a limit that is an integer ≥ 0 or Infinity and a number " +
      "`from` (not NaN): else they reject, a RangeError, or a TypeError for what is no number",
    async run(make) {
      const store = await make();
      await submitNew(store, "r", 0);
      expectSame("pending(0)", await listed(store, 0), []);
      expectSame("journal(0, 0)", await answer("journal(0, 0)", () => store.journal(0, 0)), []);
      for (const limit of [-1, 1.5, NaN, -Infinity]) {
        await expectRejects(`pending(${limit})`, RangeError, () => store.pending(limit));
        await expectRejects(`journal(0, ${limit})`, RangeError, () => store.journal(0, limit));
      }
      await expectRejects('pending("2")', TypeError, () => store.pending("2" as unknown as number));
      await expectRejects(
        'journal(0, "2")',
        TypeError,
        () => store.journal(0, "2" as unknown as number),
      );
      await expectRejects("journal(NaN, 1)", RangeError, () => store.journal(NaN, 1));
      await expectRejects(
        'journal("0", 1)',
        TypeError,
        () => store.journal("0" as unknown as number, 1),
      );
    },
  },
  {
    id: "commit.applies",
    promise: "a commit makes its checkpoint current, records each applied and refused request " +
      "(with its step, and reason), removes them from pending, and journals the applied in order " +
      "(a commit that applies none, as a first checkpoint's, journals nothing)",
    async run(make) {
      const store = await make();
      const version = await firstCommit(store);
      for (const id of ["a", "b", "c", "d"]) await submitNew(store, id, 1);
      const [a, b, c] = await answer("pending(3)", () => store.pending(3));
      const did = "commit at step 2 applying b, a, and a fresh f, refusing c";
      const f = { id: "f", base: 1, samples: 2 };
      const done = await answer(did, async () =>
        store.commit(commitOf({
          checkpoint: await checkpointOf(2),
          expected: version,
          meta: "step 2",
          step: 2,
          seq: 3,
          applied: [b, a, f],
          refused: [{ id: c.id, reason: "too stale", ref: c.ref }],
          fresh: ["f"],
        })));
      expect(
        typeof done?.version === "string" && done.version !== version && done.lease === null,
        did,
        "{ version: a new one, lease: null }",
        done,
      );
      expectSame(`head() after ${did}`, await answer("head()", () => store.head().then(asHead)), {
        version: done!.version,
        step: 2,
      });
      const loaded = await answer("load()", () => store.load());
      expectSame(
        `load()'s version and meta after ${did}`,
        loaded && pick(loaded, "version", "meta"),
        {
          version: done!.version,
          meta: "step 2",
        },
      );
      const records = await answer(
        "request()",
        () => Promise.all(["a", "b", "c", "d", "f"].map((id) => store.request(id).then(asRecord))),
      );
      const applied = { state: "applied", step: 2 };
      expectSame(`request() of a, b, c, d, f after ${did}`, records, [
        applied,
        applied,
        { state: "refused", step: 2, reason: "too stale" },
        { state: "pending" },
        applied,
      ]);
      expectSame(`pending(Infinity) after ${did}`, await listed(store), [{
        id: "d",
        base: 1,
        samples: 1,
      }]);
      const entries = [b, a, f].map(({ id, base, samples }) => ({ id, base, samples }));
      expectSame(
        `journal(0, Infinity) after ${did}`,
        await answer("journal()", () => store.journal(0, Infinity).then(asJournal)),
        [{ step: 2, seq: 3, entries }],
      );
    },
  },
  {
    id: "commit.checks",
    promise: "a commit whose expected version is not current, or one of whose fresh ids is " +
      "known, returns null and changes nothing",
    async run(make) {
      const store = await make();
      const version = await firstCommit(store);
      await submitNew(store, "a", 1);
      const ids = ["a", "f"];
      const before = await seen(store, ids);
      const [a] = await answer("pending(1)", () => store.pending(1));
      const checkpoint = await checkpointOf(2);
      const step = { checkpoint, step: 2, seq: 2, applied: [a], refused: [] };
      const cases: [string, StepCommit][] = [
        ["a commit expecting null on a non-empty store", commitOf({ ...step, expected: null })],
        [
          "a commit expecting a version never given",
          commitOf({ ...step, expected: `${version}x` }),
        ],
        [
          'a commit whose fresh "a" is pending',
          commitOf({ ...step, expected: version, fresh: ["a"] }),
        ],
        [
          "a commit without checkpoint expecting null",
          commitOf({ expected: null, refused: [{ id: "f", reason: "no" }], fresh: ["f"] }),
        ],
      ];
      for (const [did, commit] of cases) {
        expectSame(did, await answer(did, () => store.commit(commit)), null);
        expectSame(
          `head, pending, requests and journal after ${did}`,
          await seen(store, ids),
          before,
        );
      }
    },
  },
  {
    id: "commit.outcomes",
    promise: "a commit without a checkpoint records its outcomes and keeps the current version",
    async run(make) {
      const store = await make();
      const version = await firstCommit(store);
      const did = "a commit without checkpoint refusing a fresh f";
      const done = await answer(
        did,
        () =>
          store.commit(
            commitOf({
              expected: version,
              step: 1,
              seq: 2,
              refused: [{ id: "f", reason: "bad" }],
              fresh: ["f"],
            }),
          ),
      );
      expectSame(did, asResult(done), { version, lease: null });
      expectSame(
        `request("f") after ${did}`,
        await answer("request()", () => store.request("f").then(asRecord)),
        {
          state: "refused",
          step: 1,
          reason: "bad",
        },
      );
      expectSame(`head() after ${did}`, await answer("head()", () => store.head().then(asHead)), {
        version,
        step: 1,
      });
    },
  },
  {
    id: "commit.race",
    promise: "of commits made at once on one version, exactly one succeeds, and only its " +
      "outcomes are recorded",
    async run(make, { racers }) {
      const store = await make();
      const version = await firstCommit(store);
      const checkpoint = await checkpointOf(2);
      const did =
        `${racers} commits at once on the current version, each applying its own fresh id`;
      const got = await answer(
        did,
        () =>
          race(racers, (i) =>
            store.commit(
              commitOf({
                checkpoint,
                expected: version,
                step: 2,
                seq: 2,
                applied: [{ id: `f${i}`, base: 1, samples: 1 }],
                fresh: [`f${i}`],
              }),
            )),
      );
      const won = got.flatMap((r, i) => (r === null ? [] : [i]));
      expect(won.length === 1, did, "exactly one result, the others null", got);
      const records = await answer(
        "request()",
        () => race(racers, (i) => store.request(`f${i}`).then(asRecord)),
      );
      const expected = got.map((r) => (r === null ? null : { state: "applied", step: 2 }));
      expectSame(`request() of each fresh id after ${did}`, records, expected);
    },
  },
];
