/**
 * Gradient centralization (`gc`) of finite gradients near float32's largest on tfjs's webgpu
 * backend, where tfjs ops centralize them (tfjs/centralize_ops.ts), against the cpu and wasm
 * backends (the library's CPU kernels, whose mean falls back to float64) and the library's own
 * WebGPU backend (gpu/centralize.ts, its sum scaled): a column whose float32 sum overflows but
 * whose mean does not is centralized and the step taken on all of them, with the same values
 * within rounding. Where a value minus its column's mean overflows, the library's backends,
 * which check the gradients before they centralize them, take the step (an infinite parameter),
 * while on tfjs's webgpu backend, where tfjs centralizes them before the device's check, the
 * step is skipped: the difference left.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { dispose, readParams, sgd, step } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { centralized } from "../../tfjs/centralize_ops.ts";
import {
  onWebgpu,
  randoms,
  tf,
  transpose,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("gc_overflow_webgpu");

/** Rows of the kernel (a [ROWS, 3] tensor; its columns are centralized over the rows). */
const ROWS = 40;
const LR = 0.1;

/**
 * A kernel's gradient whose column 0 is all 3e38 and column 1 alternates 3e38 and 2.5e38: their
 * float32 sums overflow, their means (3e38, 2.75e38) and each value minus them do not; column
 * 2 ordinary. With `last`, the last row of column 0 instead: −3e38 there passes float32's largest
 * once the mean (2.85e38) is taken from it.
 */
function gradient(last?: number): Float32Array {
  const g = randoms(ROWS * 3, 5);
  for (let r = 0; r < ROWS; r++) {
    g[3 * r] = 3e38;
    g[3 * r + 1] = r % 2 ? 2.5e38 : 3e38;
  }
  if (last !== undefined) g[3 * (ROWS - 1)] = last;
  return g;
}

/** What one SGD step from 0.5 everywhere gave, and whether the optimizer took it. */
interface Stepped {
  params: Float32Array;
  taken: boolean;
}

/** One step of `tfOptimizer(sgd({ gc }))` on the tfjs backend `backend`. */
async function tfjsStep(backend: string, grads: Float32Array): Promise<Stepped> {
  await useBackend(backend);
  const v = tf.tidy(() => tf.variable(tf.fill([ROWS, 3], 0.5), true, named("kernel")));
  const opt = tfOptimizer(sgd({ lr: LR, gc: true }), { warnOnSkip: false });
  const g = tf.tensor(grads, [ROWS, 3]);
  opt.applyGradients({ [v.name]: g });
  tf.dispose((await opt.getWeights()).map((w) => w.tensor)); // (webgpu: the counts reported)
  const params = (await v.data() as Float32Array).slice();
  const taken = opt.iterations === 1;
  assert.equal(opt.skippedSteps, taken ? 0 : 1, `${backend}: the skip counted`);
  opt.dispose();
  tf.dispose([v, g]);
  return { params, taken };
}

/**
 * One step of `sgd({ gc })` on the library's own WebGPU backend, on tfjs's device, in the PyTorch
 * layout ([3, ROWS]: a row per column of the tfjs kernel), given back in the tfjs layout.
 */
async function libraryStep(grads: Float32Array): Promise<Stepped> {
  await useBackend("webgpu");
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const w = { data: new Float32Array(ROWS * 3).fill(0.5), shape: [3, ROWS] };
  const state = await sgd({ lr: LR, gc: true, backend: "webgpu" }).init({ w }, { device });
  const next = step(state, { w: transpose(grads, ROWS, 3) });
  const params = transpose((await readParams(next)).w, 3, ROWS);
  const taken = next.skippedSteps === 0;
  dispose(next);
  return { params, taken };
}

/** Asserts `got` is `want` within float32 rounding of each column's largest gradient. */
function assertClose(got: Stepped, want: Stepped, grads: Float32Array, what: string): void {
  assert.equal(got.taken, want.taken, `${what}: taken`);
  const largest = [0, 1, 2].map((c) =>
    Math.max(...Array.from({ length: ROWS }, (_, r) => Math.abs(grads[3 * r + c])))
  );
  got.params.forEach((p, i) => {
    const q = want.params[i];
    assert.ok(Math.abs(p - q) <= 1e-5 * LR * largest[i % 3] + 1e-6, `${what} [${i}]: ${p} vs ${q}`);
  });
}

Deno.test({
  name:
    "tfjs webgpu: gc takes a step whose column sums overflow float32, as cpu, wasm and the library's WebGPU",
  ...sanitize,
  fn: onWebgpu(async () => {
    const grads = gradient();
    const cpu = await tfjsStep("cpu", grads);
    assert.ok(cpu.taken, "cpu takes it");
    // Column 0: all equal, centralized to 0; column 1: ∓2.5e37, each param moved by a tenth.
    for (let r = 0; r < ROWS; r++) {
      assert.equal(cpu.params[3 * r], 0.5);
      assert.ok(Math.abs(cpu.params[3 * r + 1] - (r % 2 ? 2.5e36 : -2.5e36)) <= 1e31);
    }
    assertClose(await tfjsStep("wasm", grads), cpu, grads, "wasm");
    assertClose(await tfjsStep("webgpu", grads), cpu, grads, "tfjs webgpu");
    assertClose(await libraryStep(grads), cpu, grads, "library webgpu");
  }),
});

Deno.test({
  name:
    "tfjs webgpu: gc where a value minus its column's mean overflows: the CPU backends and the library's WebGPU take the step, tfjs webgpu skips it",
  ...sanitize,
  fn: onWebgpu(async () => {
    const grads = gradient(-3e38);
    // The library checks the gradients as given (finite), then centralizes them: the last row's
    // −3e38 − 2.85e38 is −Infinity there, and its parameter +Infinity after the step.
    const cpu = await tfjsStep("cpu", grads);
    assert.ok(cpu.taken, "cpu takes it");
    assert.equal(cpu.params[3 * (ROWS - 1)], Infinity);
    const finite = (s: Stepped) => ({ ...s, params: s.params.map((p) => p === Infinity ? 0 : p) });
    for (
      const [what, got] of [["wasm", await tfjsStep("wasm", grads)], [
        "library webgpu",
        await libraryStep(grads),
      ]] as const
    ) {
      assert.equal(got.params[3 * (ROWS - 1)], Infinity, what);
      assertClose(finite(got), finite(cpu), grads, what);
    }
    // On tfjs's webgpu backend tfjs centralizes them before the device's check, which finds the
    // infinity and skips the step: a difference left (see README, "Gradient centralization in
    // tfjs's layout"), as rare as a gradient within a factor 2 of float32's largest.
    const gpu = await tfjsStep("webgpu", grads);
    assert.ok(!gpu.taken, "tfjs webgpu skips it");
    assert.ok(gpu.params.every((p) => p === 0.5));
  }),
});

Deno.test({
  name: "tfjs webgpu: gc of ordinary and tiny gradients gives tfjs's own mean's bits (no scaling)",
  ...sanitize,
  fn: onWebgpu(async () => {
    // Column 0 ordinary, column 1 below float32's normal range, column 2 large but safe.
    const grads = randoms(ROWS * 3, 9).map((x, i) => [x, x * 1e-40, x * 1e30][i % 3]);
    const g = tf.tensor(grads, [ROWS, 3]);
    const ours = centralized(g);
    const plain = tf.tidy(() => tf.sub(g, tf.mean(g, 0, true)));
    assert.deepEqual(await ours.data(), await plain.data());
    tf.dispose([g, ours, plain]);
  }),
});
