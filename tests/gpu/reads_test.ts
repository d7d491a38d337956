/**
 * What the reads of a WebGPU state (`readParams`, `readMoments`, `readSlowWeights`, `saveState`)
 * hold and when: the state at the call, though steps follow before they resolve (each read
 * copies what it reads in one submission at the call); a checkpoint is never of two steps; a
 * read pending at `dispose` rejects. Without an adapter these tests fail, unless RADAM_NO_GPU=1
 * says the machine has none.
 */
import assert from "node:assert/strict";
import {
  adam,
  dispose,
  type GpuTensor,
  loadState,
  type OptimizerState,
  ranger,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../../mod.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";
import { DISPOSED_STATE_MESSAGE } from "../../base/_state_errors.ts";

Deno.test({
  name:
    "webgpu: a read or checkpoint pending at dispose rejects saying the state was disposed, and nothing touches its freed buffers",
  ignore,
  async fn() {
    const host = new Float32Array(4096 + 300).fill(0.5);
    const reads: [string, (s: OptimizerState<GpuTensor>) => Promise<unknown>][] = [
      ["readParams", readParams],
      ["readMoments", readMoments],
      ["readSlowWeights", readSlowWeights],
      ["saveState", saveState],
    ];
    for (const states of ["32bit", "8bit"] as const) {
      for (const [what, read] of reads) {
        // Disposed at once (the read has not reached the GPU), after the read has begun, or, the
        // step counts settled, after a few microtasks (its buffers mapped: it threw an
        // OperationError, the buffers destroyed under it).
        for (const wait of [false, true, 4, 8]) {
          await noGpuErrors(async () => {
            let s = await ranger({ lr: 1e-2, states, k: 2 }).init({ w: host, b: host.slice(7) }, {
              device: device!,
            });
            for (let i = 0; i < 3; i++) s = step(s, { w: host, b: host.slice(7) });
            if (typeof wait === "number") await readParams(s); // (the counts settled)
            const pending = read(s);
            if (wait === true) await new Promise((r) => setTimeout(r, 0));
            for (let i = 0; i < Number(wait); i++) await null;
            dispose(s);
            await assert.rejects(
              pending,
              (e: Error) => e instanceof TypeError && e.message === DISPOSED_STATE_MESSAGE,
              `${states} ${what}${wait ? ` (begun, ${wait})` : ""}`,
            );
          });
        }
      }
    }
  },
});

Deno.test({
  name:
    "webgpu: a checkpoint is never of two steps: of the state at the call, or refused where a step comes before it reads",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const g = (x: number) => ({ w: new Float32Array(5000).fill(x) });
      const make = () => ranger({ lr: 0.1, k: 2 }).init(g(1), { device: device! });
      let s = step(await make(), g(0.5));
      // A step at once: the save has not read the state yet (it waits for the step counts).
      await assert.rejects(
        (async () => {
          const saving = saveState(s);
          s = step(s, g(-3));
          return await saving;
        })(),
        (e: Error) =>
          e instanceof TypeError && /stepped before saveState\(\) read it/.test(e.message),
      );
      // A step once a read started after the save has resolved: the save has read the state.
      s = step(s, g(0.5));
      s = step(s, g(0.5));
      const at = await readParams(s);
      const saving = saveState(s);
      await readParams(s);
      s = step(s, g(-3));
      const resumed = await loadState(await saving, { backend: "js" });
      assert.equal(resumed.step, 4);
      assert.deepEqual(await readParams(resumed), at);
      dispose(s);
    });
  },
});

Deno.test({
  name:
    "webgpu: readParams, readMoments and readSlowWeights hold the state at the call, though steps follow before they resolve",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const g = (n: number, x: number) => ({ w: new Float32Array(n).fill(x) });
      for (const states of ["32bit", "8bit"] as const) {
        // (8-bit: the moments' codes and scales are read together, and decoded)
        const make = () => ranger({ lr: 0.1, k: 2, states }).init(g(5000, 1), { device: device! });
        let s = step(await make(), g(5000, 0.5));
        const twin = step(await make(), g(5000, 0.5)); // stepped once, as s at the reads
        const reads = [readParams(s), readMoments(s), readSlowWeights(s)] as const;
        s = step(s, g(5000, -3));
        s = step(s, g(5000, 2));
        const [p, m, slow] = await Promise.all(reads);
        assert.deepEqual(p, await readParams(twin), states);
        assert.deepEqual(m, await readMoments(twin), states);
        assert.deepEqual(slow, await readSlowWeights(twin), states);
        dispose(twin);
        dispose(s);
      }
      // Across two moments, and past the 16 MiB that a readback once took at a time: 4.2M
      // parameters (then a step between two parts of one read reached the later part).
      const n = 4_200_000;
      let big = await adam({ lr: 1 }).init(g(n, 0), { device: device! });
      big = step(big, g(n, 1));
      const [params, moments] = [readParams(big), readMoments(big)];
      big = step(big, g(n, -1));
      const { w } = await params;
      const { exp_avg, exp_avg_sq } = await moments;
      assert.ok(
        w.every((x) => x === w[0]) && Math.abs(w[0] + 1) < 1e-6,
        `params of step 1: ${w[0]}, ${w[n - 1]}`,
      );
      assert.ok(exp_avg.w.every((x) => x === Math.fround(0.1)), "exp_avg of step 1");
      assert.ok(exp_avg_sq.w.every((x) => x === Math.fround(0.001)), "exp_avg_sq of step 1");
      dispose(big);
    });
  },
});

Deno.test({
  name:
    "webgpu: a read begun before a step the device halts or the GPU refuses resolves; the next call gets that step's error",
  ignore,
  async fn() {
    // Such a read rejected with the later step's error, and took it: under nonFinite "throw" the
    // loop's next step went on as if nothing had happened (a logger's read swallowed the halt).
    const start = new Float32Array(8).fill(1);
    let s = await adam({ lr: 1e-2, nonFinite: "throw", backend: "webgpu" }).init(
      { w: start },
      { device: device! },
    );
    s = step(s, { w: new Float32Array(8).fill(0.5) });
    const once = (await readParams(s)).w;
    const before = readParams(s);
    s = step(s, { w: new Float32Array(8).fill(NaN) });
    assert.deepEqual((await before).w, once);
    assert.throws(() => step(s, { w: new Float32Array(8).fill(0.5) }), RangeError);
    assert.deepEqual((await readParams(s)).w, once);
    assert.equal(s.step, 1);

    // A step the GPU refuses: a params buffer of the caller's destroyed after the read began.
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffer = device!.createBuffer({ size: 32, usage });
    device!.queue.writeBuffer(buffer, 0, start);
    let p = await adam({ lr: 1e-2, backend: "webgpu" }).init({ w: { buffer, length: 8 } }, {
      device: device!,
    });
    p = step(p, { w: new Float32Array(8).fill(0.5) });
    const read = readParams(p);
    buffer.destroy();
    p = step(p, { w: new Float32Array(8).fill(0.5) });
    assert.deepEqual((await read).w, once);
    assert.throws(() => step(p, { w: new Float32Array(8).fill(0.5) }), /The GPU refused a step/);
    dispose(p);
  },
});

Deno.test({
  name:
    "webgpu: a read begun after a step the device halts rejects with the halt, though a step after the read was refused; the next call gets the refusal",
  ignore,
  async fn() {
    // The refusal, not the read's, hid the halt from it: the read resolved, and only a later
    // call said the state had halted.
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffer = device!.createBuffer({ size: 32, usage });
    device!.queue.writeBuffer(buffer, 0, new Float32Array(8).fill(1));
    let p = await adam({ lr: 1e-2, nonFinite: "throw", backend: "webgpu" }).init(
      { w: { buffer, length: 8 } },
      { device: device! },
    );
    try {
      p = step(p, { w: new Float32Array(8).fill(0.5) });
      await readParams(p);
      p = step(p, { w: new Float32Array(8).fill(NaN) }); // halts the state
      const read = readParams(p);
      buffer.destroy();
      p = step(p, { w: new Float32Array(8).fill(0.5) }); // refused by the GPU
      await assert.rejects(
        read,
        (e: Error) => e instanceof RangeError && /holds NaN/.test(e.message),
      );
      assert.throws(() => step(p, { w: new Float32Array(8).fill(0.5) }), /The GPU refused a step/);
      assert.equal(p.step, 1);
    } finally {
      dispose(p);
    }
  },
});

Deno.test({
  name:
    "webgpu: reads begun after a step the GPU refused and before a step the device halts leave the halt to the next call",
  ignore,
  async fn() {
    // The refusal, found after the reads began, renumbered the steps after it but not the reads'
    // marks: the halting step seemed to come before them, and readMoments' second read took its
    // error, which Promise.all dropped (the next step went on as if nothing had happened).
    let s = await adam({ lr: 1e-2, nonFinite: "throw" }).init({ w: new Float32Array(8).fill(1) }, {
      device: device!,
    });
    try {
      s = step(s, { w: new Float32Array(8).fill(0.5) });
      const once = (await readParams(s)).w;
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
      const gone = device!.createBuffer({ size: 32, usage });
      gone.destroy();
      s = step(s, { w: { buffer: gone, length: 8 } }); // refused by the GPU
      const moments = readMoments(s); // two reads
      const params = readParams(s);
      s = step(s, { w: new Float32Array(8).fill(NaN) }); // halts the state
      await assert.rejects(moments, /^TypeError: The GPU refused a step/);
      assert.deepEqual((await params).w, once);
      assert.throws(
        () => step(s, { w: new Float32Array(8).fill(0.5) }),
        (e: Error) =>
          e instanceof RangeError && /holds NaN or ±Infinity at index 0/.test(e.message),
      );
      assert.deepEqual((await readParams(s)).w, once);
      assert.equal(s.step, 1);
    } finally {
      dispose(s);
    }
  },
});

Deno.test({
  name: "webgpu: console.log(state) shows its summary without reading the GPU",
  ignore,
  async fn() {
    let s = await adam().init({ w: new Float32Array(300) }, { device: device! });
    s = step(s, { w: new Float32Array(300).fill(1) });
    assert.equal(
      Deno.inspect(s, { breakLength: Infinity }),
      'OptimizerState { optimizer: "adam", backend: "webgpu", step: 1, tensors: 1, parameters: 300, states: "32bit" }',
    );
    dispose(s);
    assert.equal(Deno.inspect(s), "OptimizerState <disposed>");
  },
});
