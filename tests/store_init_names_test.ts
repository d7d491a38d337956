/**
 * Without the option `tensors`, the store checks a stored model's tensor names against those
 * `init` gives, calling `init` once per store object. `kvCheckpointStore` gives one store object
 * per database and key prefix, so a trainer with a wrong `init` (refused, rightly) left its
 * names behind, and every later trainer of that store in the process, its `init` right, was
 * refused with the wrong one's names ("the parameters init gives have "weight"") until the
 * process restarted. Names learned from another `init` are now asked again of this one before
 * refusing.
 */
import assert from "node:assert/strict";
import { CheckpointError, radam } from "../mod.ts";
import { dataParallel, kvCheckpointStore, optimisticStep } from "../kv.ts";
import { busyKv, PREFIX, withKv } from "./kv_fakes.ts";

const init = () => ({ w: new Float32Array(4), b: new Float32Array(1) });
const renamed = () => ({ weight: new Float32Array(4), b: new Float32Array(1) });
const ones = (state: { grads: Record<string, Float32Array> }) => {
  for (const g of Object.values(state.grads)) g.fill(1);
};
const another = (e: Error) => {
  assert.ok(e instanceof CheckpointError, `${e.name}: ${e.message}`);
  assert.match(e.message, /the parameters init gives have "weight", "b"$/);
  return true;
};

Deno.test("store init names: a wrong init refused leaves no names that refuse a right one, optimistic", async () => {
  await withKv(async (kv) => {
    await optimisticStep(kvCheckpointStore(kv, PREFIX), {
      optimizer: radam(),
      init,
      gradient: ones,
    });
    // A new process (its own Deno.Kv): its first request's init is wrong, its next one's right.
    const store = kvCheckpointStore(busyKv(kv, 0), PREFIX);
    const wrong = { optimizer: radam(), init: renamed, gradient: ones };
    await assert.rejects(() => optimisticStep(store, wrong), another);
    const done = await optimisticStep(store, { optimizer: radam(), init, gradient: ones });
    assert.equal(done.step, 2);
    assert.deepEqual(done.state.names, ["w", "b"]);
  });
});

Deno.test("store init names: a wrong init refused leaves no names that refuse a right one, data-parallel", async () => {
  await withKv(async (kv) => {
    await optimisticStep(kvCheckpointStore(kv, PREFIX), {
      optimizer: radam(),
      init,
      gradient: ones,
    });
    const process = busyKv(kv, 0);
    const wrong = dataParallel(kvCheckpointStore(process, PREFIX), {
      optimizer: radam(),
      init: renamed,
    });
    await assert.rejects(() => wrong.params(), another);
    await wrong.close();
    // The same store object (one per database and prefix), a trainer with the right init.
    const right = dataParallel(kvCheckpointStore(process, PREFIX), { optimizer: radam(), init });
    try {
      const { step, params } = await right.params();
      assert.equal(step, 1);
      assert.deepEqual(Object.keys(params), ["w", "b"]);
      const gradient = { w: new Float32Array(4).fill(1), b: new Float32Array(1) };
      const answer = await right.submit({ id: "a", base: step, samples: 1, gradient });
      assert.equal(answer.status, "applied");
      assert.equal(answer.step, 2);
    } finally {
      await right.close();
    }
  });
});

Deno.test("store init names: init is still called once per store object when its names match", async () => {
  await withKv(async (kv) => {
    await optimisticStep(kvCheckpointStore(kv, PREFIX), {
      optimizer: radam(),
      init,
      gradient: ones,
    });
    const store = kvCheckpointStore(busyKv(kv, 0), PREFIX);
    let calls = 0;
    for (let i = 0; i < 3; i++) {
      // A new init function each request, as an inline arrow in a handler makes one.
      const each = () => (calls++, init());
      await optimisticStep(store, { optimizer: radam(), init: each, gradient: ones });
    }
    assert.equal(calls, 1);
  });
});

Deno.test("store init names: a trainer's renamed init is refused after a right one taught the store its names", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX);
    let calls = 0;
    const counted = () => (calls++, init());
    const right = dataParallel(store, { optimizer: radam(), init: counted });
    const { step } = await right.params();
    const gradient = { w: new Float32Array(4).fill(1), b: new Float32Array(1) };
    await right.submit({ id: "a", base: step, gradient });
    await right.params();
    await right.close();
    assert.equal(calls, 1, "the right trainer's init was asked once");
    // The same store object: the wrong trainer's own init is asked, not the names learned.
    const wrong = dataParallel(kvCheckpointStore(kv, PREFIX), {
      optimizer: radam(),
      init: renamed,
    });
    try {
      await assert.rejects(() => wrong.params(), (e: Error) => {
        assert.ok(e instanceof CheckpointError, `${e.name}: ${e.message}`);
        assert.match(
          e.message,
          /it has a tensor "w", the parameters init gives have "weight", "b"$/,
        );
        return true;
      });
    } finally {
      await wrong.close();
    }
  });
});
