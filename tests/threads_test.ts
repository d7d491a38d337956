/**
 * Option `threads`: the wasm step on several threads (workers on a shared memory) gives the
 * same bits as one thread at sizes straddling the slice and reduction-block boundaries (every
 * rule on random cases: tests/rules_test.ts); lifecycle (dispose), checkpoints, the size
 * threshold and bad options.
 *
 * Runs with no permissions (the workers are started from a Blob URL). Every threaded state is
 * disposed, or Deno's sanitizers would report its workers.
 */
import assert from "node:assert/strict";
import {
  adamw,
  DEFAULT_THREAD_THRESHOLD,
  dispose,
  loadState,
  type OptimizerState,
  radam,
  ranger,
  saveState,
  step,
} from "../mod.ts";
import { initState } from "../core/init_state.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import { assertSameBits, readAll } from "./cases.ts";
import { prng, randomTensor } from "./util.ts";

Deno.test("threaded steps match one thread at sizes around slice and block boundaries", async () => {
  // Slices are cut at multiples of 16 elements, reduction blocks hold 16384.
  const sizes = [1, 15, 16, 17, 47, 48, 49, 16383, 16384, 16385, 3 * 16384 + 7, 100_003];
  const rand = prng(7);
  for (const n of sizes) {
    const params = { a: randomTensor(rand, n), b: randomTensor(rand, 5) };
    const grads = Array.from({ length: 12 }, () => ({
      a: randomTensor(rand, n),
      b: randomTensor(rand, 5),
    }));
    for (const threads of [2, 3]) {
      const make = (more: { threads?: number; threadThreshold?: number }) =>
        ranger({
          lr: 1e-2,
          k: 3,
          clipGradNorm: 1e-3,
          weightDecay: 0.01,
          nesterov: true,
          groups: [{ match: /^b$/, lrScale: 0.5, weightDecay: 0 }],
          ...more,
        }).init(params);
      let one = await make({});
      let many = await make({ threads, threadThreshold: 0 });
      try {
        for (const g of grads) {
          one = step(one, g);
          many = step(many, g);
        }
        await assertSameBits(many, one, `n ${n}, ${threads} threads`);
      } finally {
        dispose(many);
      }
    }
  }
});

Deno.test("workers' jobs cut in chunks give one thread's bits (step, sum of squares, non-finite check)", async () => {
  // A worker runs its share in chunks (bumping a progress word after each): chunks of 256 and
  // 512 elements (a reduction block at a time) cut every share many times, at 8-bit blocks.
  const rand = prng(13);
  const n = 3 * 16384 + 7;
  const params = { a: randomTensor(rand, n), b: randomTensor(rand, 300) };
  const grads = Array.from({ length: 6 }, () => ({
    a: randomTensor(rand, n),
    b: randomTensor(rand, 300),
  }));
  grads[3].a[n - 5] = NaN; // in the last worker's share: a skipped step, found by a worker
  for (const states of ["32bit", "8bit"] as const) {
    for (const clipGradNorm of [undefined, 1e-3]) {
      for (const chunk of [256, 512]) {
        const opt = ranger({
          lr: 1e-2,
          k: 2,
          clipGradNorm,
          states,
          threads: 3,
          threadThreshold: 0,
        });
        let one = await ranger({ lr: 1e-2, k: 2, clipGradNorm, states }).init(params);
        let many = await initState(
          opt.settings,
          params,
          (layout) => createThreadedWasmBackend(layout, 3, { chunk }),
        );
        try {
          for (const g of grads) {
            one = step(one, g);
            many = step(many, g);
          }
          assert.equal(many.skippedSteps, 1);
          await assertSameBits(many, one, `${states}, clip ${clipGradNorm}, chunk ${chunk}`);
        } finally {
          dispose(many);
        }
      }
    }
  }
});

Deno.test("a threaded state skips and throws on non-finite gradients as one thread does", async () => {
  const n = 40_000;
  const g = new Float32Array(n).fill(0.01);
  const bad = g.slice();
  bad[n - 3] = NaN;
  let skip = await radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(n));
  let strict = await radam({ threads: 2, threadThreshold: 0, nonFinite: "throw" }).init(
    new Float32Array(n),
  );
  try {
    skip = step(skip, g);
    skip = step(skip, bad);
    assert.equal(skip.step, 1);
    assert.equal(skip.skippedSteps, 1);
    assert.ok(Number.isNaN(skip.lastGradNorm));
    strict = step(strict, g);
    const before = await readAll(strict);
    assert.throws(() => step(strict, bad), RangeError);
    assert.deepEqual(await readAll(strict), before);
    strict = step(strict, g); // still usable
    assert.equal(strict.step, 2);
  } finally {
    dispose(skip);
    dispose(strict);
  }
});

Deno.test("a threaded state's checkpoint resumes on any number of threads with the same bits", async () => {
  const rand = prng(11);
  const n = 50_000;
  const params = { w: randomTensor(rand, n), b: randomTensor(rand, 3) };
  const grads = Array.from({ length: 10 }, () => ({
    w: randomTensor(rand, n),
    b: randomTensor(rand, 3),
  }));
  const opt = adamw({ lr: 1e-3, threads: 2, threadThreshold: 0, clipGradNorm: 1 });
  let straight = await opt.init(params);
  const resumed: OptimizerState[] = [];
  try {
    for (let t = 0; t < 5; t++) straight = step(straight, grads[t]);
    const bytes = await saveState(straight);
    // The file holds no threads: loadState without the option resumes on one (README, Threads).
    const plain = await loadState(bytes, { threadThreshold: 0 });
    assert.equal(plain.threads, 1);
    dispose(plain);
    for (const threads of [1, 2, 3]) {
      let state = await loadState(bytes, { threads, threadThreshold: 0 });
      resumed.push(state);
      assert.equal(state.threads, threads);
      for (let t = 5; t < 10; t++) state = step(state, grads[t]);
      resumed[resumed.length - 1] = state;
    }
    for (let t = 5; t < 10; t++) straight = step(straight, grads[t]);
    for (const state of resumed) await assertSameBits(state, straight, `${state.threads} threads`);
  } finally {
    dispose(straight);
    resumed.forEach(dispose);
  }
});

Deno.test("dispose releases the workers and makes every state of the line unusable", async () => {
  const first = await radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(1000));
  const second = step(first, new Float32Array(1000).fill(1));
  dispose(first); // a consumed handle of the line is enough
  assert.throws(() => step(second), { name: "TypeError", message: /disposed/ });
  assert.throws(() => second.params, /disposed/);
  dispose(second); // idempotent
  // single-threaded states may be disposed too
  const plain = await radam({ backend: "js" }).init(new Float32Array(4));
  dispose(plain);
  assert.throws(() => step(plain), /disposed/);
  assert.throws(() => dispose({} as OptimizerState), TypeError);
});

Deno.test("below threadThreshold a state stays on one thread; at it, it splits", async () => {
  const small = await radam({ threads: 2 }).init(new Float32Array(1000));
  assert.equal(small.threads, 1);
  const at = await radam({ threads: 2, threadThreshold: 4096 }).init(new Float32Array(4096));
  const below = await radam({ threads: 2, threadThreshold: 4097 }).init(new Float32Array(4096));
  try {
    assert.equal(at.threads, 2);
    assert.equal(below.threads, 1);
    assert.ok(DEFAULT_THREAD_THRESHOLD > 1000);
    assert.equal(radam().settings.run.threads, 1);
    assert.equal(radam().settings.run.threadThreshold, DEFAULT_THREAD_THRESHOLD);
  } finally {
    dispose(at);
    dispose(below);
    dispose(small);
  }
});

Deno.test("threadThreshold counts parameters, not the 8-bit arena's block padding", async () => {
  // 4118 parameters; an 8-bit arena puts the compact tensor at element 256 and pads its last
  // block: 4608 elements.
  const params = () => ({
    a: new Float32Array(4097),
    b: new Float32Array(4),
    c: new Float32Array(17),
  });
  for (const states of ["32bit", "8bit"] as const) {
    const below = await radam({ threads: 2, threadThreshold: 4119, states }).init(params());
    const at = await radam({ threads: 2, threadThreshold: 4118, states }).init(params());
    try {
      assert.equal(below.threads, 1, `${states}: 4118 parameters, threshold 4119`);
      assert.equal(at.threads, 2, `${states}: 4118 parameters, threshold 4118`);
    } finally {
      dispose(below);
      dispose(at);
    }
  }
});

Deno.test("bad threads options throw clear errors", async () => {
  for (const threads of [0, -1, 1.5, NaN, Infinity, 257]) {
    assert.throws(() => radam({ threads }), { name: "RangeError", message: /Option threads/ });
  }
  assert.throws(() => radam({ threads: "2" as unknown as number }), TypeError);
  assert.throws(() => radam({ backend: "js", threads: 2 }), {
    name: "TypeError",
    message: /needs the wasm backend/,
  });
  assert.throws(() => adamw({ backend: "webgpu", threads: 2 }), TypeError);
  assert.throws(() => radam({ threads: 2, threadThreshold: -1 }), RangeError);
  radam({ backend: "js", threads: 1 }); // one thread is fine anywhere
  const bytes = await saveState(await radam().init(new Float32Array(4)));
  await assert.rejects(loadState(bytes, { threads: 0 }), RangeError);
  await assert.rejects(loadState(bytes, { backend: "js", threads: 2 }), TypeError);
});

Deno.test("threads > 1 without SharedArrayBuffer or Workers is refused, not run on one thread", async () => {
  const g = globalThis as Record<string, unknown>;
  for (const missing of ["SharedArrayBuffer", "Worker"]) {
    const saved = g[missing];
    delete g[missing];
    // No Web Workers and no node:worker_threads either (a Node before 20.16).
    const restore = hideGetBuiltinModule();
    try {
      await assert.rejects(
        radam({ threads: 2 }).init(new Float32Array(8)),
        (e: Error) => e.message.includes(missing === "Worker" ? "Web Workers" : missing),
      );
      // one thread needs neither
      const state = await radam().init(new Float32Array(8));
      assert.equal(state.threads, 1);
    } finally {
      g[missing] = saved;
      restore();
    }
  }
});

Deno.test("threads > 1 where the runtime has no Web Workers nor node:worker_threads: a TypeError naming the option and both, nothing started", async () => {
  const global = globalThis as { Worker?: unknown };
  const worker = global.Worker;
  delete global.Worker;
  const restore = hideGetBuiltinModule();
  try {
    await assert.rejects(
      radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(8)),
      (e: Error) =>
        e instanceof TypeError &&
        /^Option threads: 2 needs Web Workers, or Node\.js's node:worker_threads through process\.getBuiltinModule \(.*Node\.js 22\.3\+ and 20\.16\+.*\), which this runtime lacks; use threads: 1$/
          .test(e.message),
    );
  } finally {
    global.Worker = worker;
    restore();
  }
  const state = await radam({ threads: 1 }).init(new Float32Array(8));
  assert.equal(state.threads, 1);
});

Deno.test("a worker that fails mid-step fails that step clearly; the state then refuses steps", async () => {
  // The main thread waited for ever on the worker's share of the step. A trap in the worker is
  // made by moving the gradients' address in the arena descriptor (shared by every thread) to
  // the memory's last bytes: the main thread's half of the elements is still inside the memory,
  // the worker's half past its end.
  const n = 4096;
  const state = await radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(n));
  try {
    const grads = state.grads[""];
    const memory = new Uint32Array(grads.buffer);
    const below = new Uint32Array(grads.buffer, 0, state.params[""].byteOffset / 4);
    const at = below.lastIndexOf(grads.byteOffset); // the descriptor's word for the gradients
    assert.ok(at > 0);
    memory[at] = grads.buffer.byteLength - (n / 2) * 4;
    assert.throws(() => step(state), (e: Error) => {
      assert.match(e.message, /A kernel worker of this threaded optimizer state failed/);
      assert.match(e.message, /load a checkpoint/);
      return true;
    });
    assert.equal(state.step, 0);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the worker's message says why
    assert.throws(() => step(state), /failed \(RuntimeError: .*\); the state may be half stepped/);
  } finally {
    dispose(state);
  }
});

/**
 * Points the gradients of a 2-thread state of `n` parameters (the main thread's slice the first
 * half, the worker's the second) where the main thread's first element is past the memory's end
 * and traps, while the worker's half, its address wrapping around 2³², reads `value`s written
 * into the memory's first (unused) page. Returns what puts them back.
 */
function trapMainThread(state: OptimizerState, n: number, value: number): () => void {
  const grads = state.grads[""];
  const memory = new Uint32Array(grads.buffer);
  const below = new Uint32Array(grads.buffer, 0, state.params[""].byteOffset / 4);
  const at = below.lastIndexOf(grads.byteOffset); // the descriptor's word for the gradients
  assert.ok(at > 0);
  const low = new Float32Array(grads.buffer, 1024, n / 2);
  assert.ok(low.every((v) => v === 0)); // (the kernel has no static data there)
  low.fill(value);
  memory[at] = 2 ** 32 - (n / 2) * 4 + 1024;
  return () => {
    memory[at] = grads.byteOffset;
    low.fill(0);
  };
}

/** The pending count of the control block of `state`'s shared memory (workers still in a job). */
function pending(state: OptimizerState): number {
  return Atomics.load(new Int32Array(state.params[""].buffer, 65536, 64), 16);
}

Deno.test("a step whose share on the main thread traps waits for the workers, and refuses the half-stepped state", async () => {
  // The worker's half was stepped and the main thread's not, the step's error the bare trap:
  // the state went on to the next step with its halves a step apart (the worker maybe still
  // stepping as the caller read the state).
  const n = 4096;
  const state = await radam({ threads: 2, threadThreshold: 0, nonFinite: "propagate" }).init(
    new Float32Array(n).fill(1),
  );
  try {
    const restore = trapMainThread(state, n, 0.5);
    assert.throws(() => step(state), (e: Error) => {
      assert.equal(pending(state), 0);
      assert.match(
        e.message,
        /^The main thread of this threaded optimizer state failed \(its own share of the step threw RuntimeError: .*\); the state may be half stepped/,
      );
      return true;
    });
    restore();
    assert.equal(state.step, 0);
    assert.notEqual(state.params[""][n - 1], 1); // (the worker's half was stepped)
    assert.equal(state.params[""][0], 1);
    assert.throws(() => step(state, new Float32Array(n)), /^Error: The main thread .* failed/);
  } finally {
    dispose(state);
  }
});

/**
 * Hides `process.getBuiltinModule` (Deno has it, as Node 20.16+ has), as on a runtime that cannot
 * give `node:worker_threads`; returns what restores it.
 */
function hideGetBuiltinModule(): () => void {
  const process = (globalThis as { process?: { getBuiltinModule?: unknown } }).process;
  if (process === undefined) return () => {};
  const saved = process.getBuiltinModule;
  process.getBuiltinModule = undefined;
  return () => {
    process.getBuiltinModule = saved;
  };
}

Deno.test("a step whose share traps on the main thread and on a worker says the main thread's trap and that one more worker failed", async () => {
  // (The worker's fault, found by the wait, was kept and the main thread's trap not counted.)
  const n = 4096;
  const state = await radam({ threads: 2, threadThreshold: 0, nonFinite: "propagate" }).init(
    new Float32Array(n).fill(1),
  );
  try {
    const grads = state.grads[""];
    const memory = new Uint32Array(grads.buffer);
    const below = new Uint32Array(grads.buffer, 0, state.params[""].byteOffset / 4);
    const at = below.lastIndexOf(grads.byteOffset); // the descriptor's word for the gradients
    assert.ok(at > 0);
    memory[at] = grads.buffer.byteLength; // both halves past the memory's end
    const said =
      /^Error: The main thread of this threaded optimizer state failed \(its own share of the step threw RuntimeError: [^;]*; 1 more worker failed too\); the state may be half stepped/;
    assert.throws(() => step(state), said);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the worker's message says why
    assert.throws(() => step(state), said);
    memory[at] = grads.byteOffset;
  } finally {
    dispose(state);
  }
});
