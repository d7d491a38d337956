/**
 * The bounds of any 8-bit step on this machine, timed beside the 8-bit steps in bench/compare.ts:
 * the RAdam and Lion steps with their moments as bytes moved into f32 lanes and back with no
 * codec (the least any 8-bit code does), and with a scale a block of 256 (the least any
 * block-wise code does), on one thread and on several (assembly/bounds.ts; not part of the
 * library).
 *
 * The rows of one size and thread count share one memory a thread (each a standalone instance:
 * parameters, gradients, codes and scales, reset before every timed sample), so that the bench's
 * largest size holds one copy of them, not one a row.
 *
 * @module
 */
import { instantiateStandalone, standaloneModule } from "../../tools/_asc.ts";
import { type BoundKernels, sectionGap, warm } from "./bounds.ts";
import type { Contender } from "./timing.ts";

/** A rule whose step the bytes' bounds run. */
export type BytesRule = "radam" | "lion";

/** Elements a block of the scaled bounds (assembly/bounds.ts): two f32 scales a moment each. */
const SCALE_BLOCK = 256;

/** One thread's memory for the bounds of bytes. */
export interface BytesMemory {
  /** Sets every parameter, gradient, code and scale to its start. */
  reset(): void;
  /** One step of `rule` (with its block scales where `scaled`) over the memory's parameters. */
  step(rule: BytesRule, scaled: boolean): void;
}

/**
 * A new instance of the bounds' `module` holding `n` parameters (a multiple of 256), their
 * gradients, two code sections and two scale sections, set to their start.
 */
export async function bytesMemory(module: WebAssembly.Module, n: number): Promise<BytesMemory> {
  const f = sectionGap(4 * n), c = sectionGap(n), s = sectionGap(n / SCALE_BLOCK * 8);
  const { exports: k, at } = await instantiateStandalone<BoundKernels>(
    module,
    2 * f + 2 * c + 2 * s,
  );
  const codes = at + 2 * f, scales = codes + 2 * c;
  const reset = () => {
    new Float32Array(k.memory.buffer, at, n).fill(0.5);
    new Float32Array(k.memory.buffer, at + f, n).fill(0.01);
    // codes 0x3c: the top byte of 2^-7 (m), of v alike; scales of 1
    new Uint8Array(k.memory.buffer, codes, 2 * c).fill(0x3c);
    new Float32Array(k.memory.buffer, scales, (2 * s) / 4).fill(1);
  };
  reset();
  const [b1, b2, lr, eps] = [0.9, 0.999, 1e-3, 1e-8];
  return {
    reset,
    step(rule, scaled) {
      if (rule === "lion" && scaled) k.lionScaled(at, at + f, codes, scales, n, 0.9, 0.99, 1e-4);
      else if (rule === "lion") k.lionBytes(at, at + f, codes, n, 0.9, 0.99, 1e-4);
      else if (scaled) {
        k.radamScaled(at, at + f, codes, codes + c, scales, scales + s, n, b1, b2, lr, eps);
      } else k.radamBytes(at, at + f, codes, codes + c, n, b1, b2, lr, eps);
    },
  };
}

/** The memories of one size and thread count: this thread's, and one in a worker a thread more. */
interface Team {
  main: BytesMemory;
  workers: Worker[];
  /** The rows set up on it and not yet disposed. */
  users: number;
}

const teams = new Map<string, Promise<Team>>();

/** The team of `threads` threads at `n` parameters, made on first use; one user more. */
async function joinTeam(n: number, threads: number): Promise<Team> {
  const key = `${threads}×${n}`;
  let team = teams.get(key);
  if (team === undefined) {
    team = (async () => {
      const module = await standaloneModule("bounds.ts");
      const slice = Math.ceil(n / threads / SCALE_BLOCK) * SCALE_BLOCK;
      const main = await bytesMemory(module, slice);
      const url = new URL("./bytes_bound_worker.ts", import.meta.url).href;
      const workers = Array.from(
        { length: threads - 1 },
        () => new Worker(url, { type: "module" }),
      );
      await Promise.all(workers.map((w) => ask(w, { module, n: slice })));
      return { main, workers, users: 0 };
    })();
    teams.set(key, team);
  }
  const joined = await team;
  joined.users++;
  return joined;
}

/** One user fewer of `team`; the last one ends its workers and lets its memory go. */
function leaveTeam(n: number, threads: number, team: Team): void {
  if (--team.users > 0) return;
  team.workers.forEach((w) => w.terminate());
  teams.delete(`${threads}×${n}`);
}

/** How a bound of bytes is run: on how many threads, and whether with block scales. */
export interface BytesRun {
  /** Threads: this one and `threads − 1` workers (default 1). */
  threads?: number;
  /** With each block's scales and largest magnitude (`radamScaled`, `lionScaled`). */
  scaled?: boolean;
}

/**
 * The plain step of `rule` (RAdam rectified, or Lion) over `n` parameters with its moments as
 * bytes moved into f32 lanes and back with no codec (assembly/bounds.ts): a bound on any 8-bit
 * step here. With `scaled`, what every block-wise code adds at the least: the scales of each
 * block of 256, folded into the step's constants (no multiply an element), and the block's
 * largest new magnitude taken for its next scale (one pass, no clamp; no rounding, no code map):
 * a bound on any block-wise 8-bit step here. On `threads` > 1, each thread (this one and
 * `threads − 1` workers) steps its own `n / threads` parameters in its own memory, `steps` steps
 * with no barrier between them: a bound on any such step on that many threads, which also waits
 * for its threads at every step.
 */
export function bytesContender(rule: BytesRule, run: BytesRun = {}): Contender {
  const { threads = 1, scaled = false } = run;
  const on = threads > 1 ? ` on ${threads} threads` : "";
  return {
    name: `bound: ${rule} step${on}, moments as bytes ${
      scaled
        ? "with a scale a block of 256 (no code map)"
        : "moved into f32 lanes and back (no codec)"
    }`,
    key: `bound-${rule}-${scaled ? "scaled" : "bytes"}${threads > 1 ? "-threads" : ""}`,
    async setup(n) {
      const team = await joinTeam(n, threads);
      const runner = await warm(async (steps) => {
        team.main.reset();
        await Promise.all(team.workers.map((w) => ask(w, { reset: true })));
        const t0 = performance.now();
        const done = team.workers.map((w) => ask(w, { rule, scaled, steps }));
        for (let s = 0; s < steps; s++) team.main.step(rule, scaled);
        await Promise.all(done);
        return (performance.now() - t0) / 1e3 / steps;
      });
      return { ...runner, dispose: () => leaveTeam(n, threads, team) };
    },
  };
}

/** What a worker of the bounds of bytes is sent (bench/compare/bytes_bound_worker.ts). */
export type BytesWorkerMessage =
  | { module: WebAssembly.Module; n: number }
  | { reset: true }
  | { rule: BytesRule; scaled: boolean; steps: number };

/** Sends `worker` a message; resolves on its answer, rejects with its error. */
function ask(worker: Worker, message: BytesWorkerMessage): Promise<void> {
  const answer = new Promise<void>((resolve, reject) => {
    worker.onmessage = (event) => {
      if (event.data?.error) reject(new Error(`A bound's worker failed: ${event.data.error}`));
      else resolve();
    };
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(`A bound's worker failed: ${event.message}`));
    };
  });
  worker.postMessage(message);
  return answer;
}
