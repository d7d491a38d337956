/**
 * The Deno KV store when the database answers "database is locked" before a commit of outcomes
 * without a checkpoint went through (as a file shared by processes does while another holds its
 * lock): the commit is judged done only by what it wrote, never by the same outcome that
 * another process, holding the lease since, recorded.
 */
import assert from "node:assert/strict";
import { commitOf, firstCommit } from "../store/_conformance_calls.ts";
import { kvCheckpointStore, type StepCommit } from "../kv.ts";
import { busyBeforeKv, PREFIX, withKv } from "./kv_fakes.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("kv store: a commit renewing the lease with refusals, answered busy before it went through, is a conflict once another process holding the lease since refused the same, not that process's lease", async () => {
  // It was judged done by the first refusal's record, which the other process's commit wrote
  // (the same outcome at the same step): it answered a lease of its token with the other's
  // versionstamp, which the next commit's check of the lease passed, the other still holding it.
  await withKv(async (kv) => {
    const b = kvCheckpointStore(kv, PREFIX);
    const version = await firstCommit(b);
    await b.submit({ id: "x", base: 0, samples: 1 }, new Uint8Array(8));
    const [x] = await b.pending(1);
    const a = kvCheckpointStore(busyBeforeKv(kv, [1]), PREFIX);
    const held = (await a.acquire("A", 50))!;
    // B sees A's lease unchanged for its whole term, takes it, and refuses x at the same step.
    assert.equal(await b.acquire("B", 60_000, false), null);
    await sleep(80);
    const taken = (await b.acquire("B", 60_000, false))!;
    assert.equal(taken?.token, "B");
    const refusal = (lease: typeof held, token: string): StepCommit =>
      commitOf({
        expected: version,
        seq: 2,
        lease,
        next: { token, ms: 60_000 },
        refused: [{ id: "x", reason: "stale", ref: x.ref }],
      });
    const byB = await b.commit(refusal(taken, "B"));
    assert.equal(byB?.lease?.token, "B");
    // A's commit, answered busy before it went through.
    const byA = await a.commit(refusal(held, "A"));
    assert.equal(byA, null, "a conflict: A's commit was not made, and B holds the lease");
    const now = await kv.get<{ token: string }>([...PREFIX, "lease"]);
    assert.equal(now.value?.token, "B");
    assert.equal(now.versionstamp, byB!.lease!.ref);
  });
});
