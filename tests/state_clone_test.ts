/**
 * A state stored or sent by structured clone (`kv.set(key, state)`, `structuredClone(state)`,
 * `postMessage(state)`) was copied as `{}`, silently: V8's serializer takes a class instance's
 * own enumerable properties only, and a state has none. The user found out when loading failed,
 * or when training restarted from scratch. Each now throws at the point of storing, saying to
 * store `await saveState(state)` and resume with `await loadState(bytes)`; the state is as it
 * was, and shows nothing new (its inspection, its keys).
 */
import assert from "node:assert/strict";
import { dispose, loadState, type OptimizerState, radam, saveState, step } from "../mod.ts";
import { kvCheckpointStore, optimisticStep } from "../kv.ts";
import { withScheduledKv } from "./kv_scheduled.ts";
import { saying } from "./util.ts";

const NOT_CLONED = "An optimizer state cannot be cloned (structuredClone, postMessage and Deno " +
  "KV would copy it as {}, which holds nothing: its tensors live in its backend): store its " +
  "checkpoint, const bytes = await saveState(state), a Uint8Array (one Deno KV value holds 64 " +
  "KiB at most: kvCheckpointStore of @optim/radam/kv stores any size), and resume with await " +
  "loadState(bytes); to store an object that holds one, leave the state out first, " +
  "const { state, ...rest } = result";

/** A state one step on, and its checkpoint. */
async function stepped(): Promise<{ state: OptimizerState; bytes: Uint8Array }> {
  const state = step(await radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) }), {
    w: new Float32Array([1, -1]),
  });
  return { state, bytes: await saveState(state) };
}

/** A DOMException named DataCloneError carrying the hint (what structuredClone throws). */
function dataCloneError(e: Error): true {
  assert.ok(e instanceof DOMException, `${e.constructor.name}: ${e.message}`);
  assert.equal(e.name, "DataCloneError");
  assert.equal(e.message, NOT_CLONED);
  return true;
}

Deno.test("kv.set of a state, or of what holds one, is a TypeError saying to store its checkpoint; nothing is stored", async () => {
  const { state, bytes } = await stepped();
  await withScheduledKv(async (kv) => {
    await assert.rejects(() => kv.set(["run"], state), saying(TypeError, NOT_CLONED));
    await assert.rejects(() => kv.set(["run"], { run: "a", state }), saying(TypeError, NOT_CLONED));
    assert.throws(() => kv.atomic().set(["run"], [state]), saying(TypeError, NOT_CLONED));
    await assert.rejects(() => kv.enqueue({ state }), saying(TypeError, NOT_CLONED));
    assert.equal((await kv.get(["run"])).versionstamp, null);
    // What it says works: the checkpoint stored, loaded back.
    await kv.set(["run"], await saveState(state));
    const stored = (await kv.get<Uint8Array>(["run"])).value!;
    assert.deepEqual(stored, bytes);
    const resumed = await loadState(stored);
    assert.equal(resumed.step, 1);
    dispose(resumed);
  });
  assert.equal(state.step, 1);
});

Deno.test("structuredClone of a state, live, consumed or disposed, or of what holds one, is a DataCloneError saying to store its checkpoint", async () => {
  const { state } = await stepped();
  assert.throws(() => structuredClone(state), dataCloneError);
  assert.throws(() => structuredClone({ run: "a", states: [state] }), dataCloneError);
  const next = step(state, { w: new Float32Array(2) });
  assert.throws(() => structuredClone(state), dataCloneError); // consumed
  dispose(next);
  assert.throws(() => structuredClone(next), dataCloneError); // disposed
  // What an object that holds one does, as it says: the state left out first.
  const { state: _, ...rest } = { run: "a", state: next };
  assert.deepEqual(structuredClone(rest), { run: "a" });
});

Deno.test("postMessage of a state is a TypeError saying to store its checkpoint; nothing is sent", async () => {
  const { state } = await stepped();
  const { port1, port2 } = new MessageChannel();
  try {
    const received: unknown[] = [];
    port2.onmessage = (event) => received.push(event.data);
    assert.throws(() => port1.postMessage(state), saying(TypeError, NOT_CLONED));
    assert.throws(() => port1.postMessage({ state }, []), saying(TypeError, NOT_CLONED));
    // What it says works: the checkpoint sent, loaded on the other side.
    const arrived = new Promise<unknown>((resolve) => port2.onmessage = (e) => resolve(e.data));
    port1.postMessage(await saveState(state));
    const resumed = await loadState(await arrived as Uint8Array);
    assert.equal(resumed.step, 1);
    assert.deepEqual(received, []);
    dispose(resumed);
  } finally {
    port1.close();
    port2.close();
  }
});

Deno.test("a state refusing clones shows nothing new: no keys, the same inspection, its reads and JSON's error as before", async () => {
  const { state } = await stepped();
  assert.deepEqual(Object.keys(state), []);
  assert.deepEqual(Reflect.ownKeys(state), []);
  assert.deepEqual({ ...state }, {});
  assert.match(Deno.inspect(state), /^OptimizerState \{\n\s+optimizer: "radam",/);
  assert.ok(!Deno.inspect(state).includes("hostObject"));
  assert.equal(state.step, 1);
  assert.throws(() => JSON.stringify(state), saying(TypeError, "An optimizer state is not JSON"));
});

Deno.test("the KV store and optimisticStep, which store checkpoints, still run", async () => {
  await withScheduledKv(async (kv) => {
    const store = kvCheckpointStore(kv, ["clone"]);
    const { state } = await optimisticStep(store, {
      optimizer: radam({ lr: 0.1 }),
      init: () => ({ w: new Float32Array([1, 2]) }),
      gradient: (s) => void s.grads.w.fill(1),
    });
    assert.equal(state.step, 1);
    assert.throws(() => structuredClone(state), dataCloneError);
    dispose(state);
  });
});
