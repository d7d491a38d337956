/**
 * Every rule of the table (tests/rule_table.ts) on the WebGPU backend: each step against the
 * rule's float64 reference on random cases (with every training-loop feature: LookAhead,
 * centralization, groups, clipping, steps skipped on the device; and without), its moments and
 * the sections its arena holds, hand-computed values, and checkpoints between the GPU and wasm.
 *
 * GPU tolerance: see gpu_device.ts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { loadState, lookahead, type Optimizer, readMoments, saveState, step } from "../../mod.ts";
import { stateInternals } from "../../core/state.ts";
import {
  caseArb,
  caseData,
  checkAgainstReference,
  checkVector,
  lrOf,
  optimizerFor,
  readAll,
} from "../cases.ts";
import { FORMATS, optimizerOf, RULE_TABLE, type RuleRow } from "../rule_table.ts";
import type { StatesFormat } from "../../base/options.ts";
import { device, ignore, K_GPU, noGpuErrors } from "./gpu_device.ts";
import { checkTinyEps } from "../tiny_eps.ts";

for (const row of RULE_TABLE) {
  for (const states of FORMATS) {
    for (const features of [true, false]) {
      referenceSuite(row, states, features);
    }
  }

  Deno.test({
    name: `webgpu ${row.rule}: its moments, and sections for them (and LookAhead's)`,
    ignore,
    async fn() {
      await noGpuErrors(async () => {
        const state = await optimizerOf(row, row.example, "webgpu").init(
          { w: new Float32Array([1, 1, 1]) },
          { device: device! },
        );
        assert.equal(state.backend, "webgpu");
        const sections = 2 + row.moments(row.example).length;
        assert.equal(stateInternals(state).backend.layout.sectionCount, sections);
        assert.deepEqual(
          Object.keys(await readMoments(step(state, new Float32Array(3)))),
          row.moments(row.example),
        );
        const slow = await lookahead(optimizerOf(row, row.example, "webgpu")).init(
          { w: new Float32Array(5) },
          { device: device! },
        );
        assert.equal(stateInternals(slow).backend.layout.sectionCount, sections + 1);
      });
    },
  });

  for (const vector of row.vectors) {
    Deno.test({
      name: `webgpu ${row.rule}: ${vector.name} (hand-computed)`,
      ignore,
      async fn() {
        await noGpuErrors(() => checkVector(row, vector, "webgpu", device!));
      },
    });
  }

  Deno.test({
    name: `webgpu ${row.rule}: checkpoints move between the GPU and wasm`,
    ignore,
    async fn() {
      await noGpuErrors(async () => {
        const c = fc.sample(caseArb(row, 8, false), { numRuns: 1, seed: 7 })[0];
        const { params, grads } = caseData(c);
        let gpu = await optimizerFor(c, "webgpu").init(params, { device: device! });
        let cpu = await optimizerFor(c, "wasm").init(params);
        for (let t = 1; t <= 4; t++) {
          gpu = step(gpu, grads(t));
          cpu = step(cpu, grads(t));
        }
        const lr = lrOf(c);
        // GPU → wasm: the checkpoint holds the GPU's values exactly.
        const fromGpu = await loadState(await saveState(gpu), { backend: "wasm", lr });
        const [a, b] = [await readAll(gpu), await readAll(fromGpu)];
        for (const name of Object.keys(a)) assert.deepEqual(a[name], b[name], name);
        // wasm → GPU, then a step on each stays within the GPU tolerance of the other.
        let toGpu = await loadState(await saveState(cpu), { device: device!, lr });
        assert.equal(toGpu.backend, "webgpu");
        assert.equal(toGpu.step, 4);
        toGpu = step(toGpu, grads(5));
        cpu = step(cpu, grads(5));
        const [x, y] = [await readAll(toGpu), await readAll(cpu)];
        for (const name of Object.keys(x)) {
          x[name].m.forEach((m, i) =>
            assert.ok(Math.abs(m - y[name].m[i]) <= 1e-6 * (Math.abs(m) + 1e-30), name)
          );
        }
      });
    },
  });
}

/**
 * Each step of `row`'s random cases (8-bit: tensors of codes among them) against the float64
 * reference: params within the GPU bound, 8-bit moments within one code step of it.
 */
function referenceSuite(row: RuleRow, states: StatesFormat, features: boolean): void {
  Deno.test({
    name: `webgpu ${row.rule} (${states}): every step matches the float64 reference, ${
      features ? "every feature" : "no training-loop feature"
    }`,
    ignore,
    async fn() {
      await noGpuErrors(() =>
        fc.assert(
          fc.asyncProperty(caseArb(row, features ? 20 : 50, features, states), (c) =>
            checkAgainstReference(
              c,
              (params) =>
                optimizerFor(c, "webgpu").init(params, { device: device! }),
              K_GPU,
            )),
          { numRuns: states === "8bit" ? 6 : features ? 8 : 6 },
        )
      );
    },
  });
}

for (const row of RULE_TABLE) {
  Deno.test({
    name:
      `webgpu ${row.rule}: under nonFinite "propagate", a NaN or infinite gradient reaches the same parameters as on wasm`,
    ignore,
    async fn() {
      await noGpuErrors(async () => {
        const params = { w: new Float32Array([1, -1, 0.5, 2, -2, 1]) };
        const grads = { w: new Float32Array([NaN, 0.25, -Infinity, 0, Infinity, -0.5]) };
        const more = { nonFinite: "propagate" };
        const gpu = step(
          await optimizerOf(row, row.example, "webgpu", more).init(params, { device: device! }),
          grads,
        );
        const cpu = step(await optimizerOf(row, row.example, "wasm", more).init(params), grads);
        const [a, b] = [await readAll(gpu), await readAll(cpu)];
        a.w.p.forEach((p, i) => {
          const q = b.w.p[i];
          assert.ok(
            Number.isNaN(q)
              ? Number.isNaN(p)
              : Number.isFinite(q)
              ? Math.abs(p - q) <= 1e-6 * Math.abs(q)
              : p === q,
            `${row.rule}: element ${i}: webgpu ${p}, wasm ${q}`,
          );
        });
      });
    },
  });
}

/**
 * Gradients (after a finite step) holding a NaN or an infinity, by case, in two tensors `a`, `b`:
 * where both are large, the bad values lie in different workgroups of the norm's first pass.
 */
const NON_FINITE: Readonly<Record<string, (a: Float32Array, b: Float32Array) => void>> = {
  "a NaN": (_, b) => b[b.length - 1] = NaN,
  "+Infinity": (_, b) => b[b.length - 1] = Infinity,
  "-Infinity": (a) => a[0] = -Infinity,
  "+Infinity and NaN": (a, b) => {
    a[a.length - 1] = Infinity;
    b[b.length - 1] = NaN;
  },
  "-Infinity, other gradients finite past f32's norm": (a, b) => {
    a[1] = -Infinity;
    b.fill(3e38);
  },
};

/** The runs of each case: the policy, the clipping norm, the tensors' lengths, LookAhead. */
const NON_FINITE_RUNS = [
  ["propagate", 1, [6, 5], false],
  ["propagate", 0, [6, 5], true],
  ["propagate", 1, [70, 5000], true],
  ["propagate", 0, [70, 5000], false],
  ["skip", 1, [6, 5], false],
  ["skip", 1, [70, 5000], true],
  ["throw", 1, [70, 5000], false],
] as const;

/** A state after a finite step then two of `bad` (one under "throw"), and the error if any. */
async function nonFiniteRun(
  // deno-lint-ignore no-explicit-any
  opt: Optimizer<any>,
  lengths: readonly [number, number],
  bad: (a: Float32Array, b: Float32Array) => void,
  gpu: boolean,
) {
  const [na, nb] = lengths;
  const grads = () => ({
    a: Float32Array.from({ length: na }, (_, i) => Math.sin(i + 1)),
    b: Float32Array.from({ length: nb }, (_, i) => 3 * Math.cos(i)),
  });
  let state = await opt.init(
    { a: new Float32Array(na).fill(0.6), b: new Float32Array(nb).fill(-0.2) },
    gpu ? { device: device! } : {},
  );
  state = step(state, grads());
  const g = grads();
  bad(g.a, g.b);
  let error: unknown;
  try {
    state = step(state, g);
    if (opt.settings.loop.nonFinite !== "throw") state = step(state, g);
    if (gpu) await readAll(state); // the device's halt, if any, is reported here
  } catch (e) {
    error = e;
  }
  return { state, error, values: await readAll(state) };
}

for (const row of RULE_TABLE) {
  Deno.test({
    name:
      `webgpu ${row.rule}: clipping gradients with a NaN or an infinity matches wasm (norm NaN, or Infinity: factor 0), under every nonFinite policy`,
    ignore,
    async fn() {
      await noGpuErrors(async () => {
        for (const states of FORMATS) {
          for (const [nonFinite, clipGradNorm, lengths, la] of NON_FINITE_RUNS) {
            // 8-bit: codes for tensors of 4096 elements or more
            if (states === "8bit" && lengths[1] < 4096) continue;
            for (const [name, bad] of Object.entries(NON_FINITE)) {
              const run = (backend: "wasm" | "webgpu") => {
                const more = { clipGradNorm, nonFinite, states, lr: 0.1 };
                const opt = optimizerOf(row, row.example, backend, more);
                return nonFiniteRun(
                  la ? lookahead(opt, { k: 1 }) : opt,
                  lengths,
                  bad,
                  backend === "webgpu",
                );
              };
              const [gpu, cpu] = [await run("webgpu"), await run("wasm")];
              const what = `${states}, ${nonFinite}, clip ${clipGradNorm}, ${lengths}${
                la ? ", LookAhead" : ""
              }, ${name}`;
              // "throw": the same refusal, in the words of each backend: the same element.
              const where = (e: unknown) => {
                assert.ok(e instanceof RangeError, `${what}: ${e}`);
                const at = /parameter "(\w+)" holds .* at index (\d+)/.exec(e.message);
                assert.ok(at, `${what}: ${e}`);
                return `${at[1]}[${at[2]}]`;
              };
              if (nonFinite === "throw") assert.equal(where(gpu.error), where(cpu.error), what);
              else assert.deepEqual([gpu.error, cpu.error], [undefined, undefined], what);
              assert.equal(gpu.state.step, cpu.state.step, what);
              assert.equal(gpu.state.skippedSteps, cpu.state.skippedSteps, what);
              const close = (p: number, q: number) =>
                Number.isNaN(q)
                  ? Number.isNaN(p)
                  : Number.isFinite(q)
                  ? Math.abs(p - q) <= 1e-5 * Math.abs(q) + 1e-6
                  : p === q;
              const [norm, cpuNorm] = [gpu.state.lastGradNorm, cpu.state.lastGradNorm];
              assert.ok(close(norm, cpuNorm), `${what}: norm ${norm}, wasm ${cpuNorm}`);
              for (const [tensor, values] of Object.entries(cpu.values)) {
                for (const [section, want] of Object.entries(values) as [string, Float64Array][]) {
                  const got = gpu.values[tensor][section as keyof typeof values]!;
                  want.forEach((q, i) => {
                    const p = got[i];
                    assert.ok(
                      close(p, q),
                      `${what}: ${tensor}.${section}[${i}]: webgpu ${p}, wasm ${q}`,
                    );
                  });
                }
              }
            }
          }
        }
      });
    },
  });
}

Deno.test({
  name: "webgpu: a tiny eps (down to 2^-149) steps zero moments by 0, not 0 / 0",
  ignore,
  async fn() {
    // Adam's eps · sqrt(1 − β2^t), one f32 a step, rounded to 0 for eps = 1e-45: an element with
    // m = v = 0 became NaN, where PyTorch's update is 0.
    for (const states of FORMATS) {
      await noGpuErrors(() =>
        checkTinyEps("webgpu", states, (opt, p) => opt.init(p, { device: device! }), {}, K_GPU)
      );
    }
  },
});
