/**
 * Edge cases of the training records, on Deno KV and in one process: a contribution's base step
 * of −0 (a key of its own to Deno KV), refusal reasons of any length (a request record is one
 * value, at most 64 KiB), and a commit that releases the lease or hands it on, answered busy after
 * it went through, once another process has taken the lease.
 */
import assert from "node:assert/strict";
import { CheckpointError, radam } from "../mod.ts";
import {
  type CommitResult,
  ContributionRefusedError,
  dataParallel,
  kvCheckpointStore,
  type Lease,
  type PendingContribution,
  type RequestRecord,
  type StepCommit,
  type TrainingStore,
} from "../kv.ts";
import { checkpointOf } from "../store/_conformance_kit.ts";
import { commitOf, firstCommit } from "../store/_conformance_calls.ts";
import { busyAfterKv, PREFIX, withKv } from "./kv_fakes.ts";
import { onEachStore as eachStore, storeView } from "./each_store.ts";

const init = () => ({ w: new Float32Array(2) });
const optimizer = radam({ lr: 0.1 });

/** Each store of the library, on a fresh database: `run` with it. */
const onEachStore = (run: (store: TrainingStore, name: string) => Promise<void>) =>
  eachStore(run, { prefix: PREFIX });

Deno.test("training stores: a contribution stored with a base of −0 is one of base 0, listed in the fold order among those", async () => {
  await onEachStore(async (store, name) => {
    await firstCommit(store);
    // Keyed by −0, "z" listed before "a": a fold of one took it, where the order says "a".
    assert.equal(await store.submit({ id: "z", base: -0, samples: 1 }, new Uint8Array(8)), null);
    assert.equal(await store.submit({ id: "a", base: 0, samples: 1 }, new Uint8Array(8)), null);
    const [first] = await store.pending(1);
    assert.equal(first.id, "a", `${name}: the lowest base, then by id`);
    const all = await store.pending(2);
    assert.deepEqual(all.map((p) => p.id), ["a", "z"]);
    assert.ok(all.every((p) => Object.is(p.base, 0)), `${name}: base 0, not −0`);
  });
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX);
    await firstCommit(store);
    await store.submit({ id: "z", base: -0, samples: 1 }, new Uint8Array(8));
    for await (const e of kv.list({ prefix: [...PREFIX, "pending"] })) {
      assert.ok(Object.is(e.key[PREFIX.length + 1], 0), `key ${String(e.key)}`);
    }
  });
});

Deno.test("data parallel: a contribution submitted with a base of −0 is applied and journaled as one of base 0", async () => {
  await onEachStore(async (store, name) => {
    const trainer = dataParallel(store, { optimizer, init });
    await trainer.params();
    const answer = await trainer.submit({
      id: "n",
      base: -0,
      gradient: { w: new Float32Array(2) },
    });
    assert.equal(answer.status, "applied");
    const entries = (await store.journal(0, 10)).flatMap((r) => r.entries);
    assert.equal(entries.length, 1);
    assert.ok(Object.is(entries[0].base, 0), `${name}: journaled as ${entries[0].base}`);
    await trainer.close();
  });
});

Deno.test("training stores: a commit applying an entry of base −0 journals it as of base 0", async () => {
  // (A caller's own fold, whose entries are not those `pending` lists: the journal is replayed
  // and compared, where −0 is not 0 to Object.is.)
  await onEachStore(async (store, name) => {
    const version = await firstCommit(store);
    const applied = [{ id: "n", base: -0, samples: 1 }];
    const checkpoint = await checkpointOf(2);
    await store.commit(commitOf({ expected: version, checkpoint, step: 2, seq: 2, applied }));
    const entries = (await store.journal(0, 10)).flatMap((r) => r.entries);
    assert.equal(entries.length, 1);
    assert.ok(Object.is(entries[0].base, 0), `${name}: journaled as ${entries[0].base}`);
  });
});

const LONG = 100_000;

Deno.test("training stores: a refusal's reason longer than 512 characters is kept cut to 512, saying how long it was; a Deno KV value holds it", async () => {
  // (The last, of pairs from an odd place, has one across the cut: it ends before that pair.)
  const reasons = ["x".repeat(LONG), "😀".repeat(LONG / 2), `x${"😀".repeat(LONG / 2 - 1)}x`];
  for (const reason of reasons) {
    await onEachStore(async (store, name) => {
      const version = await firstCommit(store);
      await store.submit({ id: "r", base: 0, samples: 1 }, new Uint8Array(8));
      const [r] = await store.pending(1);
      const done = await store.commit(
        commitOf({ expected: version, refused: [{ id: "r", reason, ref: r.ref }] }),
      );
      assert.notEqual(done, null, name);
      const record = await store.request("r");
      assert.equal(record?.state, "refused");
      const kept = record?.state === "refused" ? record.reason : "";
      assert.ok(kept.length <= 512, `${name}: ${kept.length} units`);
      assert.ok(kept.endsWith(`… (${LONG} characters in all)`), kept.slice(-40));
      assert.ok(reason.startsWith(kept.slice(0, kept.indexOf("…"))), "its beginning");
      assert.ok(kept.isWellFormed(), `${name}: no surrogate pair cut in two`);
      assert.deepEqual(await store.pending(1), [], "removed, as refused");
    });
  }
  // One of 512 is kept whole.
  await onEachStore(async (store, name) => {
    const version = await firstCommit(store);
    const reason = "y".repeat(512);
    await store.commit(commitOf({ expected: version, refused: [{ id: "f", reason }] }));
    assert.deepEqual(await store.request("f"), { state: "refused", step: 1, reason }, name);
  });
});

/**
 * `store`, whose stored gradients read as damaged: a CheckpointError of a message `LONG` long
 * (as a store of a long key, or one of its own words, may throw).
 */
function damaging(store: TrainingStore): TrainingStore {
  return storeView(store, {
    gradient: (_p: PendingContribution) =>
      Promise.reject(new CheckpointError(`Damaged: ${"d".repeat(LONG)}`)),
  });
}

Deno.test("data parallel: a stored contribution refused for an error of a long message is recorded, and answered, with its reason cut to 512 characters", async () => {
  await onEachStore(async (inner, name) => {
    const store = damaging(inner);
    const trainer = dataParallel(store, { optimizer, init, pollMs: 2 });
    const { step } = await trainer.params();
    await store.submit({ id: "s", base: step, samples: 1 }, new Uint8Array(8));
    // This process's own goes into the fold that refuses the stored one.
    const own = await trainer.submit({ id: "o", base: step, gradient: init() });
    assert.equal(own.status, "applied", name);
    const record = await store.request("s");
    assert.equal(record?.state, "refused", name);
    const reason = record?.state === "refused" ? record.reason : "";
    assert.ok(reason.startsWith("its stored gradient is damaged: Damaged: ddd"), reason);
    assert.ok(reason.length <= 512 && reason.endsWith(" characters in all)"), reason.slice(-40));
    await assert.rejects(
      trainer.submit({ id: "s", base: step, gradient: init() }),
      (e: Error) => e instanceof ContributionRefusedError && e.reason === reason,
    );
    await trainer.close();
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A commit by A under its lease (`fields` beside it) handing the lease on to B (`handOn`; else
 * releasing it), answered busy after it went through, B taking the lease a few ms later, before
 * A looks again: what A's commit answered, B's lease, and the record of request "x".
 */
async function leftBusy(fields: Partial<StepCommit>, handOn: boolean) {
  const seen: { answer: CommitResult | null; taken: Lease | null; x: RequestRecord | null } = {
    answer: null,
    taken: null,
    x: null,
  };
  await withKv(async (kv) => {
    const b = kvCheckpointStore(kv, PREFIX);
    const version = await firstCommit(b);
    const held = (await b.acquire("A", 60_000, false))!;
    const a = kvCheckpointStore(
      busyAfterKv(kv, [0], async () => {
        await sleep(3); // (a lease of another end than the one A wrote)
        seen.taken = await b.acquire("B", 60_000, false);
      }),
      PREFIX,
    );
    const next = handOn ? { next: { token: "B", ms: 60_000 } } : {};
    seen.answer = await a.commit(commitOf({ expected: version, lease: held, ...next, ...fields }));
    const now = await kv.get<{ token: string }>([...PREFIX, "lease"]);
    assert.equal(now.value?.token, "B", "B holds the lease");
    seen.x = await b.request("x");
  });
  return seen;
}

Deno.test("kv store: a commit releasing the lease or handing it on, answered busy after it went through, is answered as made, its lease not the caller's, though another took the lease before it looked", async () => {
  // A checkpoint: judged by the head; refusals: by the first one's record; neither: by the
  // lease alone, where the new holder's taking replaced the record the commit wrote, or another
  // took the lease it released: a conflict was answered, though the commit was made (and when
  // the new holder took it within the same millisecond, made: the answer was a matter of time).
  const cases: [string, Partial<StepCommit>][] = [
    ["a checkpoint", { checkpoint: await checkpointOf(2), step: 2 }],
    ["refusals", { refused: [{ id: "x", reason: "too stale" }] }],
    ["nothing else", {}],
  ];
  for (const handOn of [true, false]) {
    for (const [what, fields] of cases) {
      const seen = await leftBusy(fields, handOn);
      const how = `${what}, ${handOn ? "handed on" : "released"}`;
      assert.equal(seen.taken?.token, "B", how);
      assert.notEqual(seen.answer, null, `${how}: made`);
      assert.equal(seen.answer!.lease, null, how);
      if (fields.refused) {
        assert.deepEqual(seen.x, { state: "refused", step: 1, reason: "too stale" }, how);
      }
    }
  }
});
