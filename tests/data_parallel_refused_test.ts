/**
 * What a refusal of the data-parallel mode leaves behind, as `ContributionRefusedError` and the
 * README say: recorded with its id where the store held the contribution (any process sent the
 * id again gets the same answer), not where it never left the process it was submitted to
 * (only its submit is told; the id is unknown to the store, and sent again a new contribution).
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import { ContributionRefusedError, dataParallel, type TrainingStore } from "../kv.ts";
import { dataParallelCase } from "./data_parallel_harness.ts";
import { heldStore, onEachStore } from "./each_store.ts";

const optimizer = radam({ lr: 0.05 });
const { init, gradientAt } = dataParallelCase(6, optimizer);

/**
 * `shared` as a process sees it whose lease requests wait until `open()` (so that both its
 * contributions are queued first) and whose commits of a step applying contribution "fresh" fail
 * with `failure` ("database is locked").
 */
function heldFailing(shared: TrainingStore) {
  const failure = new TypeError("database is locked");
  const { held, open } = heldStore(shared, {
    commit: (c) => c.fresh.includes("fresh") ? Promise.reject(failure) : shared.commit(c),
  });
  return { store: held, open };
}

/** A gradient at `params` so large that the step on it alone gives a state no checkpoint holds. */
function tooLarge(params: Readonly<Record<string, Float32Array>>) {
  const g = gradientAt(1, params);
  g.w[0] = 1e30;
  return g;
}

/** Waits until `store` holds a record of `id`. */
async function recorded(store: TrainingStore, id: string): Promise<void> {
  while (await store.request(id) === null) await new Promise((r) => setTimeout(r, 2));
}

Deno.test("data parallel: a contribution refused by the fold of the process it was submitted to is not recorded: only its submit is told, and sent again through another process it is a new contribution", async () => {
  await onEachStore(async (store, name, other) => {
    const trainer = dataParallel(store, { optimizer, init, pollMs: 2 });
    const { step, params } = await trainer.params();
    const refusal = await trainer.submit({ id: "x", base: step, gradient: tooLarge(params) })
      .then(() => null, (error) => error);
    assert.ok(refusal instanceof ContributionRefusedError, `${name}: ${refusal}`);
    assert.match(refusal.reason, /no checkpoint holds/);
    assert.equal(await store.request("x"), null, `${name}: not recorded`);
    await trainer.close();
    // Another process knows nothing of it: the id sent again, computed again, is applied.
    const second = dataParallel(other, { optimizer, init, pollMs: 2 });
    const again = await second.submit({ id: "x", base: step, gradient: gradientAt(1, params) });
    assert.deepEqual(again, { status: "applied", id: "x", step: step + 1, duplicate: false });
    await second.close();
  });
});

Deno.test("data parallel: a contribution refused by the submit's own check (too stale) is not recorded", async () => {
  await onEachStore(async (store, name) => {
    const trainer = dataParallel(store, { optimizer, init, pollMs: 2, staleness: 0 });
    const { step, params } = await trainer.params();
    await trainer.submit({ id: "a", base: step, gradient: gradientAt(0, params) });
    await assert.rejects(
      trainer.submit({ id: "late", base: step, gradient: gradientAt(1, params) }),
      ContributionRefusedError,
    );
    assert.equal(await store.request("late"), null, name);
    await trainer.close();
  });
});

Deno.test("data parallel: a contribution refused once stored is recorded: sent again through any process, with any gradient, it gets the same answer", async () => {
  await onEachStore(async (store, name, other) => {
    const trainer = dataParallel(store, { optimizer, init, pollMs: 2, handoffMs: 0 });
    const { step, params } = await trainer.params();
    // Another process holds the lease: the contribution is handed off (stored) for its fold.
    const held = (await store.acquire("another process", 60_000))!;
    const submit = trainer.submit({ id: "y", base: step, gradient: tooLarge(params) })
      .then(() => null, (error) => error);
    await recorded(store, "y");
    assert.deepEqual(await store.request("y"), { state: "pending" }, name);
    await store.release(held); // this process takes the lease, and folds the stored one
    const refusal = await submit;
    assert.ok(refusal instanceof ContributionRefusedError, `${name}: ${refusal}`);
    const record = await store.request("y");
    assert.deepEqual(record, { state: "refused", step: refusal.step, reason: refusal.reason });
    await trainer.close();
    const second = dataParallel(other, { optimizer, init, pollMs: 2 });
    const again = await second.submit({ id: "y", base: step, gradient: gradientAt(1, params) })
      .then(() => null, (error) => error);
    assert.ok(again instanceof ContributionRefusedError, `${name}: ${again}`);
    assert.deepEqual([again.step, again.reason], [refusal.step, refusal.reason], name);
    assert.deepEqual(await store.journal(0, 10), [], `${name}: nothing applied`);
    await second.close();
  });
});

Deno.test("data parallel: a contribution its fold refused (too stale) is told its refusal where the commit of that fold's step fails, not that it may have been applied", async () => {
  // It was rejected as the applied ones were: "the commit of the step applying it failed (…);
  // it may have been applied", though the fold had refused it, and nothing of it was written.
  await onEachStore(async (shared, name, other) => {
    const { store, open } = heldFailing(shared);
    const another = dataParallel(other, { optimizer, init, pollMs: 2 });
    const first = await another.params();
    const trainer = dataParallel(store, {
      optimizer,
      init,
      pollMs: 2,
      staleness: 0,
      handoffMs: 60_000,
    });
    const late = trainer.submit({
      id: "late",
      base: first.step,
      gradient: gradientAt(0, first.params),
    })
      .then(() => null, (error) => error);
    // Another process steps meanwhile: "late" is too stale once this process folds.
    await another.submit({ id: "b", base: first.step, gradient: gradientAt(1, first.params) });
    await another.close();
    const now = await trainer.params();
    assert.equal(now.step, first.step + 1, name);
    const fresh = trainer.submit({
      id: "fresh",
      base: now.step,
      gradient: gradientAt(2, now.params),
    })
      .then(() => null, (error) => error);
    await new Promise((resolve) => setTimeout(resolve, 50));
    open();
    const [refusal, failed] = await Promise.all([late, fresh]);
    assert.ok(refusal instanceof ContributionRefusedError, `${name}: ${refusal}`);
    assert.equal(refusal.id, "late");
    assert.match(refusal.reason, /behind/);
    assert.ok(failed instanceof Error && !(failed instanceof ContributionRefusedError), name);
    assert.match(
      failed.message,
      /^Contribution "fresh": the commit of the step applying it failed \(database is locked\); it may have been applied/,
    );
    assert.equal(await store.request("late"), null, `${name}: not recorded`);
    await trainer.close();
  });
});

Deno.test("data parallel: a contribution its fold refused (too large to step on) is told its refusal where the commit of the others' step fails", async () => {
  await onEachStore(async (shared, name) => {
    const { store, open } = heldFailing(shared);
    const first = dataParallel(shared, { optimizer, init, pollMs: 2 });
    const { step, params } = await first.params();
    await first.close();
    const trainer = dataParallel(store, { optimizer, init, pollMs: 2, handoffMs: 60_000 });
    const settled = (p: Promise<unknown>) => p.then(() => null, (error) => error);
    const big = settled(trainer.submit({ id: "big", base: step, gradient: tooLarge(params) }));
    const fresh = settled(
      trainer.submit({ id: "fresh", base: step, gradient: gradientAt(1, params) }),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    open();
    const [refusal, failed] = await Promise.all([big, fresh]);
    assert.ok(refusal instanceof ContributionRefusedError, `${name}: ${refusal}`);
    assert.equal(refusal.id, "big");
    assert.match(refusal.reason, /no checkpoint holds/);
    assert.ok(failed instanceof Error && !(failed instanceof ContributionRefusedError), name);
    assert.match(
      failed.message,
      /^Contribution "fresh": the commit of the step applying it failed/,
    );
    assert.equal(await store.request("big"), null, `${name}: not recorded`);
    await trainer.close();
  });
});
