/**
 * The arena layout against the one before issue #15 (sections exactly `4 × total` bytes apart),
 * in one process: the kernel called directly on arenas of each layout, at 2^k and 2^k × 1.05
 * parameters, on 1 and 2 threads, the four arenas of a size and thread count alternated in each
 * round; median Gparams/s, with the CPU named.
 *
 * `deno run --allow-read --allow-run bench/layout_ab.ts [--from=20] [--to=26] [--threads=1,2]
 * [--rounds=7]`
 *
 * @module
 */
import { type ArenaLayout, planArena } from "../base/arena.ts";
import { writeBlock, zeroScalars } from "../base/scalars.ts";
import { ADAM_SCALARS, MODE_ADAPTIVE } from "../rules/adam.ts";
import REGISTRY from "../core/registry.ts";
import type { CpuBackend } from "../cpu/cpu_backend.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import { createWasmBackend } from "../cpu/wasm_backend.ts";
import { defineFlags, readFlags } from "./_flags.ts";
import { machine } from "./machine.ts";
import { seeded, shuffled } from "./order.ts";

/** The order of turns in each round: random, seeded (bench/order.ts). */
const random = seeded(1);

const flags = readFlags(
  defineFlags({
    from: { type: "number", default: 20, help: "the smallest power of two, k" },
    to: { type: "number", default: 26, help: "the largest power of two, k" },
    threads: { type: "numbers", default: [1, 2], help: "the thread counts" },
    rounds: { type: "number", min: 1, whole: true, default: 7, help: "rounds" },
  }),
  {
    command: "deno run --allow-read --allow-run bench/layout_ab.ts [flags]",
    summary: "The arena layout against the one before issue #15, at 2^k and 2^k × 1.05 parameters.",
  },
);
const { from, to, rounds } = flags;
const threadCounts = flags.threads;

/** The layout before #15: the same sections, `4 × sectionLength` bytes apart. */
function packed(layout: ArenaLayout): ArenaLayout {
  const bytes = layout.sectionLength * 4;
  const sectionOffsets = layout.sectionOffsets.map((_, s) => s * bytes);
  const end = bytes * layout.sectionCount;
  return { ...layout, sectionOffsets, segmentTableOffset: end, byteLength: end };
}

const scalars = zeroScalars();
for (
  const [name, value] of [
    ["rule", REGISTRY.optimizers.radam.tag],
    ["gradScale", 1],
    ["paramDecay", 1],
    ["beta1", 0.9],
    ["oneMinusBeta1", 0.1],
    ["beta2", 0.999],
    ["oneMinusBeta2", 0.001],
    ["stepSize", 1e-3],
    ["eps", 1e-8],
    ["mode", MODE_ADAPTIVE],
  ] as const
) scalars[ADAM_SCALARS.word[name]] = value;

async function backendFor(layout: ArenaLayout, threads: number): Promise<CpuBackend> {
  const b = threads === 1
    ? await createWasmBackend(layout)
    : await createThreadedWasmBackend(layout, threads);
  b.params.w.fill(0.5);
  b.grads.w.fill(1e-2);
  writeBlock(ADAM_SCALARS, scalars, b.blocks.f32, b.blocks.u32, 0);
  b.update();
  return b;
}

const label = (n: number) => `${+(n / 2 ** 20).toFixed(2)}M`;
console.log(`Machine: ${machine()}.\n`);
console.log(
  "| size | threads | before: 2^k | before: ×1.05 | after: 2^k | after: ×1.05 | after / before at 2^k |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (let k = from; k <= to; k++) {
  const sizes = [2 ** k, Math.round(2 ** k * 1.05)];
  for (const threads of threadCounts) {
    const arenas: { n: number; backend: CpuBackend; samples: number[] }[] = [];
    for (const old of [true, false]) {
      for (const n of sizes) {
        const layout = planArena(["w"], [n]);
        arenas.push({
          n,
          backend: await backendFor(old ? packed(layout) : layout, threads),
          samples: [],
        });
      }
    }
    const steps = Math.max(3, Math.round(1e8 / 2 ** k));
    for (let r = 0; r < rounds; r++) {
      for (const j of shuffled(arenas.length, random)) {
        const a = arenas[j];
        const t0 = performance.now();
        for (let s = 0; s < steps; s++) a.backend.update();
        a.samples.push(a.n * steps / ((performance.now() - t0) / 1e3) / 1e9);
      }
    }
    const med = arenas.map((a) => a.samples.toSorted((x, y) => x - y)[Math.floor(rounds / 2)]);
    for (const a of arenas) a.backend.dispose();
    console.log(
      `| ${label(sizes[0])} | ${threads} | ${med.map((m) => m.toFixed(3)).join(" | ")} | ${
        (med[2] / med[0]).toFixed(2)
      }× |`,
    );
  }
}
