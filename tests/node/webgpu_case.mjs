// Steps run on WebGPU and on wasm side by side in one page, and compared: gradients with a NaN,
// an infinity or a square past f32's range, clipped or not, in 32 and 8 bits (the WGSL of these
// paths writes NaN and Infinity as bits, which a browser's shader compiler must take). Plain
// JavaScript: the page loads this file as it is.

const BAD = {
  "a NaN": (_, b) => b[b.length - 1] = NaN,
  "+Infinity": (_, b) => b[b.length - 1] = Infinity,
  "-Infinity and a NaN": (a, b) => {
    a[0] = -Infinity;
    b[b.length - 1] = NaN;
  },
  "3e19 (its square overflows)": (_, b) => b[300] = 3e19,
  "FLT_MAX": (_, b) => b[300] = 3.4028234663852886e38,
  "1e38 everywhere": (_, b) => b.fill(1e38),
};

/** [states, nonFinite, clipGradNorm] of each run (tensors of 70 and 5000 elements). */
const RUNS = [
  ["32bit", "propagate", 1],
  ["32bit", "skip", 1],
  ["8bit", "propagate", 1],
  ["8bit", "propagate", 0],
  ["8bit", "skip", 1],
];

async function run(
  lib,
  rule,
  backend,
  device,
  [states, nonFinite, clipGradNorm],
  bad,
) {
  const clip = clipGradNorm ? { clipGradNorm } : {};
  const opt = lib[rule]({ lr: 0.1, backend, states, nonFinite, ...clip });
  const grads = () => ({
    a: Float32Array.from({ length: 70 }, (_, i) => Math.sin(i + 1)),
    b: Float32Array.from({ length: 5000 }, (_, i) => 3 * Math.cos(i)),
  });
  let state = await opt.init(
    { a: new Float32Array(70).fill(0.6), b: new Float32Array(5000).fill(-0.2) },
    device ? { device } : undefined,
  );
  state = lib.step(state, grads());
  const g = grads();
  bad(g.a, g.b);
  state = lib.step(lib.step(state, g), g);
  state = lib.step(state, grads());
  const values = {
    params: await lib.readParams(state),
    ...await lib.readMoments(state),
  };
  const out = {
    step: state.step,
    skipped: state.skippedSteps,
    norm: state.lastGradNorm,
    values,
  };
  lib.dispose(state);
  return out;
}

const close = (p, q) =>
  Number.isNaN(q)
    ? Number.isNaN(p)
    : Number.isFinite(q)
    ? Math.abs(p - q) <= 1e-4 * Math.abs(q) + 1e-6
    : p === q;

/**
 * Runs every case on `device` and on wasm; returns the disagreements (empty when none) and the
 * device's uncaptured errors.
 */
export async function webgpuCases(lib, device) {
  const gpuErrors = [];
  device.addEventListener(
    "uncapturederror",
    (e) => gpuErrors.push(e.error.message),
  );
  const failures = [];
  for (const rule of ["radam", "adamw", "lion"]) {
    for (const settings of RUNS) {
      for (const [name, bad] of Object.entries(BAD)) {
        const what = `${rule} ${settings.join(" ")}, ${name}`;
        let gpu;
        try {
          gpu = await run(lib, rule, "webgpu", device, settings, bad);
        } catch (e) {
          failures.push(`${what}: webgpu threw ${e && e.message || e}`);
          continue;
        }
        const cpu = await run(lib, rule, "wasm", undefined, settings, bad);
        if (gpu.step !== cpu.step || gpu.skipped !== cpu.skipped) {
          failures.push(
            `${what}: steps ${gpu.step}/${gpu.skipped}, wasm ${cpu.step}/${cpu.skipped}`,
          );
        }
        if (!close(gpu.norm, cpu.norm)) {
          failures.push(`${what}: norm ${gpu.norm}, wasm ${cpu.norm}`);
        }
        for (const [section, tensors] of Object.entries(cpu.values)) {
          for (const [tensor, want] of Object.entries(tensors)) {
            const got = gpu.values[section][tensor];
            const i = want.findIndex((q, i) => !close(got[i], q));
            if (i >= 0) {
              failures.push(
                `${what}: ${section}.${tensor}[${i}]: webgpu ${got[i]}, wasm ${want[i]}`,
              );
            }
          }
        }
      }
    }
  }
  return { failures, gpuErrors };
}
