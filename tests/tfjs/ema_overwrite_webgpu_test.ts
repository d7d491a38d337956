/**
 * Option `ema`'s `overwriteFrequency` on tfjs's webgpu backend counts the steps taken, as the
 * CPU backends do: after a step the device skipped (a NaN gradient under `nonFinite: "skip"`),
 * the variables take their averages at the same step taken as on the cpu backend, with no
 * readback, whether the device has reported the skip or not, and from a state made again at a
 * change of the variables (whose count starts past 0). The averages and variables agree with the
 * cpu backend's within float32 rounding.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  countReadbacks,
  onWebgpu,
  readValues,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("ema_overwrite_webgpu");

/** What a run gives after a call: the variables, the averages, and whether they are equal. */
interface Seen {
  values: Float32Array[];
  averages: Float32Array[];
  same: boolean;
}

/**
 * The variables and averages of `opt` over `vars`, and whether they hold the same bits: the
 * averages read swapped into the variables (bit for bit), which, unlike `getWeights`, waits for
 * no report of the device's step counts.
 */
async function seen(opt: TfOptimizer, vars: tf.Variable[]): Promise<Seen> {
  const values = await readValues(vars);
  opt.averages!.swap();
  const averages = await readValues(vars);
  opt.averages!.swap();
  const same = values.every((v, i) => v.every((x, k) => Object.is(x, averages[i][k])));
  return { values, averages, same };
}

/**
 * A run on `backend` of `bad.length` calls (`bad[c]`: call c has a NaN gradient) with
 * `overwriteFrequency` `every`; with `look`, what each call left (read after it), else what the
 * last one left, with the readbacks the calls after the first made (webgpu). With `freezeAt`,
 * the calls from there step the kernel alone (the state is made again).
 */
async function run(
  backend: string,
  bad: readonly boolean[],
  every: number,
  look: boolean,
  freezeAt = Infinity,
): Promise<{ seen: Seen[]; readbacks: number }> {
  await useBackend(backend);
  const vars = seededVars(named, 21, 40);
  const opt = tfOptimizer(adam({ lr: 0.05 }), {
    ema: { momentum: 0.9, overwriteFrequency: every },
    warnOnSkip: false,
  });
  const out: Seen[] = [];
  let readbacks = 0;
  for (const [c, nan] of bad.entries()) {
    const stepped = c >= freezeAt ? vars.slice(0, 1) : vars;
    readbacks += countReadbacks(() => stepWith(opt, stepped, c + 1, nan)) * (c > 0 ? 1 : 0);
    // (Before the change, the device's counts reported: the new state counts from them.)
    if (c === freezeAt - 1) await opt.getWeights();
    if (look || c === bad.length - 1) out.push(await seen(opt, vars));
  }
  opt.dispose();
  tf.dispose(vars);
  return { seen: out, readbacks };
}

/** The calls (from 0) whose step is taken at a multiple of `every` steps taken. */
function overwriting(bad: readonly boolean[], every: number): number[] {
  let taken = 0;
  return bad.flatMap((nan, c) => !nan && ++taken % every === 0 ? [c] : []);
}

/**
 * The calls after which the variables hold their averages: the first step taken (the averages
 * start there), those `overwriting` gives, and a skipped one after one of these.
 */
function holding(bad: readonly boolean[], every: number): number[] {
  const over = new Set(overwriting(bad, every));
  const first = bad.indexOf(false);
  const out: number[] = [];
  bad.forEach((nan, c) => {
    if (c === first || over.has(c) || (nan && out.at(-1) === c - 1)) out.push(c);
  });
  return out;
}

/** Asserts the webgpu run saw what the cpu run saw, within float32 rounding. */
function assertClose(gpu: Seen[], cpu: Seen[]): void {
  assert.equal(gpu.length, cpu.length);
  const close = (a: Float32Array[], b: Float32Array[], what: string) =>
    a.forEach((v, i) =>
      v.forEach((x, k) => {
        const want = b[i][k];
        assert.ok(Math.abs(x - want) <= 1e-5 * (1 + Math.abs(want)), `${what}[${i}][${k}]`);
      })
    );
  gpu.forEach((g, c) => {
    close(g.values, cpu[c].values, `call ${c}: variable`);
    close(g.averages, cpu[c].averages, `call ${c}: average`);
  });
}

Deno.test({
  name: "tfjs webgpu: ema overwrites at the same step taken as cpu after skipped steps",
  ...sanitize,
  fn: onWebgpu(async () => {
    const bad = [false, true, false, false, false, true, true, false, false, false, false];
    const cpu = await run("cpu", bad, 3, true);
    const gpu = await run("webgpu", bad, 3, true);
    // The first step starts the averages at the variables; then every third step taken.
    const same = (r: { seen: Seen[] }) => r.seen.flatMap((s, c) => s.same ? [c] : []);
    assert.deepEqual(same(cpu), holding(bad, 3));
    assert.deepEqual(same(gpu), same(cpu));
    assertClose(gpu.seen, cpu.seen);
    assert.equal(gpu.readbacks, 0);
  }),
});

Deno.test({
  name: "tfjs webgpu: ema's overwrite counts skips the device has not reported, as cpu",
  ...sanitize,
  fn: onWebgpu(async () => {
    // No read between the calls: the host learns of no skip before the last one.
    const bad = Array.from({ length: 31 }, (_, c) => [1, 6, 7, 15].includes(c));
    assert.deepEqual(overwriting(bad, 3).at(-1), 30, "the last step overwrites");
    const cpu = await run("cpu", bad, 3, false);
    const gpu = await run("webgpu", bad, 3, false);
    assert.ok(cpu.seen[0].same, "cpu: the variables hold their averages");
    assert.ok(gpu.seen[0].same, "webgpu: the variables hold their averages");
    assertClose(gpu.seen, cpu.seen);
    assert.equal(gpu.readbacks, 0);
  }),
});

Deno.test({
  name: "tfjs webgpu: ema's overwrite counts on from a state made again at a change, as cpu",
  ...sanitize,
  fn: onWebgpu(async () => {
    // Calls 1 to 6 (the 2nd skipped) over kernel and bias; from call 7, the kernel alone: a new
    // state, its count from the 5 steps taken (not a multiple of 4), its 2nd step skipped.
    const bad = [false, true, false, false, false, false, false, true, false, false, false, false];
    const cpu = await run("cpu", bad, 4, true, 6);
    const gpu = await run("webgpu", bad, 4, true, 6);
    const same = (r: { seen: Seen[] }) => r.seen.flatMap((s, c) => s.same ? [c] : []);
    // (Once the bias is frozen, its average stays, unlike its value: only the kernel's count.)
    const kernelSame = (r: { seen: Seen[] }) =>
      r.seen.flatMap((s, c) =>
        s.values[0].every((x, k) => Object.is(x, s.averages[0][k])) ? [c] : []
      );
    assert.deepEqual(same(cpu).filter((c) => c < 6), [0, 1, 4]);
    assert.deepEqual(kernelSame(cpu).filter((c) => c >= 6), [9]);
    assert.deepEqual(kernelSame(gpu), kernelSame(cpu));
    assertClose(gpu.seen, cpu.seen);
  }),
});
