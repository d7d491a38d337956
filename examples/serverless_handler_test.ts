import assert from "node:assert/strict";
import { readParams, step } from "../mod.ts";
import {
  type Batch,
  batchGradient,
  initialParams,
  makeHandler,
  memoryStore,
  optimizer,
} from "./serverless_handler.ts";

function batches(count: number, features: number): Batch[] {
  let a = 99;
  const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 4294967296) * 2 - 1;
  return Array.from({ length: count }, () => {
    const x = Array.from({ length: 8 }, () => Array.from({ length: features }, rand));
    const y = x.map((row) => row.reduce((s, v, j) => s + v * (j + 1), 0.5));
    return { x, y };
  });
}

Deno.test("serverless handler over loopback: checkpointed steps equal one process's steps", async () => {
  const data = batches(150, 4);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    makeHandler(memoryStore()),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const losses: number[] = [];
    for (const batch of data) {
      const res = await fetch(`${base}/step`, { method: "POST", body: JSON.stringify(batch) });
      assert.equal(res.status, 200);
      losses.push((await res.json()).loss);
    }
    const bad = await fetch(`${base}/step`, { method: "POST", body: '{"x": 1}' });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const served = await (await fetch(`${base}/params`)).json();

    // The same steps in one process, state kept in memory throughout.
    let state = await optimizer.init(initialParams(4));
    for (const batch of data) {
      batchGradient(state.params, batch, state.grads);
      state = step(state);
    }
    const local = await readParams(state);
    assert.equal(state.step, data.length);
    assert.deepEqual(served.w, Array.from(local.w), "bit-identical weights");
    assert.deepEqual(served.b, Array.from(local.b));
    const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
    const [early, late] = [mean(losses.slice(0, 10)), mean(losses.slice(-10))];
    assert.ok(late < 0.2 * early, `loss ${early} -> ${late}`);
  } finally {
    await server.shutdown();
  }
});
