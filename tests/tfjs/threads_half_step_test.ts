/**
 * The TensorFlow.js adapter on worker threads (`threads: 2`) whose step failed half way (a
 * worker's share of the update trapped): its state may hold part of that step, which `saveState`
 * refuses to save. `getWeights` (so `model.save` with `includeOptimizer`) refuses it too, with a
 * TypeError naming the failure, and a step over another set of variables does not carry it into
 * the state it makes; the adapter's `loadState` of a checkpoint saved before it goes on with the
 * bits of a run that never failed.
 */
import assert from "node:assert/strict";
import type { ThreadWorkerInit } from "../../cpu/thread_worker.ts";
import { radam, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { randoms, tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("half_step");
const N = 4096;

/** Runs `body` with the workers it starts given their arena descriptor past the memory's end. */
async function stepTraps<T>(body: () => Promise<T>): Promise<T> {
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    // deno-lint-ignore no-explicit-any
    override postMessage(message: any, transfer?: any): void {
      const init = message as ThreadWorkerInit;
      super.postMessage(
        typeof message?.start === "number"
          ? { ...init, arena: init.memory.buffer.byteLength }
          : message,
        transfer,
      );
    }
  } as typeof Worker;
  try {
    return await body();
  } finally {
    globalThis.Worker = Original;
  }
}

/** Whether `e` is the TypeError of a half-stepped state, naming the worker's trap. */
function halfStepped(e: Error): boolean {
  assert.ok(e instanceof TypeError, String(e));
  assert.match(e.message, /failed half way \(a kernel worker failed \(RuntimeError: /);
  // (Worded as saveState's and init's from's refusals.)
  assert.match(e.message, HALF_WAY_REFUSAL);
  return true;
}

/** Whether `e` is the adapter's own refusal ({@linkcode halfStepped}). */
function adapterRefused(e: Error): boolean {
  assert.match(e.message, /^The optimizer's state \(on worker threads\) is refused: /);
  return halfStepped(e);
}

/** The words of every refusal of a state whose step failed half way (tests/threads_half_step). */
const HALF_WAY_REFUSAL =
  /: a step of it failed half way \(.*\), so it may hold part of that step, which .* would keep\. Nothing was \w+: resume from the last checkpoint saved before that step \(loadState\)/;

Deno.test("tfjs: an optimizer on threads whose step failed half way refuses getWeights and carries nothing into a new state; loadState goes on", async () => {
  await useBackend("cpu");
  const a = tf.variable(tf.tensor(randoms(N, 1)), true, name("a"));
  const b = tf.variable(tf.tensor(randoms(N, 2)), true, name("b"));
  const grads = [0, 1, 2].map((t) => tf.tensor(randoms(N, 10 + t)));
  const make = () => tfOptimizer(radam({ lr: 1e-2, threads: 2, threadThreshold: 0 }));
  const opt = make();
  const clean = tfOptimizer(radam({ lr: 1e-2 }));
  const twin = tf.variable(a.clone(), true, name("twin"));
  try {
    const checkpoint = await stepTraps(async () => {
      opt.applyGradients({ [a.name]: grads[0] }); // on one thread, the workers starting
      await opt.ready();
      return await saveState(opt.state!);
    });
    clean.applyGradients({ [twin.name]: grads[0] });
    assert.throws(() => opt.applyGradients({ [a.name]: grads[1] }), /may be half stepped/);
    // The worker's own message (why its job threw), delivered now.
    for (let i = 0; i < 100; i++) {
      const said = await saveState(opt.state!).then(() => "", (e: Error) => e.message);
      if (said.includes("RuntimeError")) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await assert.rejects(opt.getWeights(), adapterRefused);
    // Another set of variables: no new state is made from the half-stepped one.
    assert.throws(
      () => opt.applyGradients({ [a.name]: grads[1], [b.name]: grads[1] }),
      adapterRefused,
    );
    await assert.rejects(saveState(opt.state!), halfStepped);
    // Resumed from the checkpoint saved before: as a run that never failed.
    a.assign(twin);
    await opt.loadState(checkpoint);
    opt.applyGradients({ [a.name]: grads[2] });
    clean.applyGradients({ [twin.name]: grads[2] });
    assert.deepEqual(a.dataSync(), twin.dataSync());
    const weights = await opt.getWeights();
    assert.equal(weights.length, 3); // iter, m, v
  } finally {
    opt.dispose();
    clean.dispose();
    tf.dispose([a, b, twin, ...grads]);
  }
});
