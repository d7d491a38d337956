/**
 * The library's own contenders in bench/compare.ts: an optimizer's step through the public API
 * (any backend, zero-copy or copied-in gradients, one tensor or a transformer-like layout, one
 * thread or several, with or without the default non-finite check), and the default check's read
 * pass alone.
 *
 * @module
 */
import { type CommonOptions, dispose, type OptimizerState, step } from "../../mod.ts";
import { planArena } from "../../base/arena.ts";
import { createWasmBackend } from "../../cpu/wasm_backend.ts";
import { createThreadedWasmBackend } from "../../cpu/threaded_wasm_backend.ts";
import { BASE_OPTIMIZER, factoryOf } from "./rule_rows.ts";
import { type Contender, syncTimer } from "./timing.ts";

/** The gradient of element `i` of tensor `n` (small, of both signs, never zero in bulk). */
export function gradient(n: number, i: number): number {
  return Math.cos(i + n) * 1e-2;
}

/** A layout of `count` tensors, transformer-like, whose sizes add up to `total`. */
export function mixedLayout(total: number, count: number): number[] {
  const blocks = count / 8;
  // per block: qkv weight 3d², qkv bias 3d, out weight d², out bias d, mlp up 4d², mlp up bias
  // 4d, mlp down 4d², norm weight d: 12d² + 9d elements
  let d = Math.floor(Math.sqrt(total / blocks / 12));
  while (blocks * (12 * d * d + 9 * d) > total) d--;
  const sizes: number[] = [];
  for (let b = 0; b < blocks; b++) {
    sizes.push(3 * d * d, 3 * d, d * d, d, 4 * d * d, 4 * d, 4 * d * d, d);
  }
  sizes[0] += total - sizes.reduce((a, b) => a + b, 0);
  return sizes;
}

/** What a library row runs. */
export interface LibraryRow {
  backend: "wasm" | "js";
  /** The gradients given to `step` (copied in) rather than written into the state's slots. */
  copied?: boolean;
  /** Tensors (default 1; more: {@linkcode mixedLayout}). */
  tensors?: number;
  /** Threads (default 1). */
  threads?: number;
  /** The default `nonFinite: "skip"` rather than `"propagate"`. */
  checked?: boolean;
  /** The optimizer, by its registry name (default RAdam). */
  optimizer?: string;
  /** The format of the moments (option `states`; default 32-bit). */
  states?: "32bit" | "8bit";
}

/** The parameters and gradients of a layout, filled once and shared by every row that uses it. */
interface Fill {
  sizes: string;
  /** `sin(i + t)` for element `i` of tensor `t`. */
  params: Float32Array[];
  /** {@linkcode gradient}`(t, i)`. */
  grads: Float32Array[];
}

/** The last layout's fill (one size's rows share it; they only read it). */
let lastFill: Fill | undefined;

/**
 * The parameters and gradients of tensors of `sizes`: made once for the rows of a size, which
 * copy them into their states (and copied-in rows give the gradients to every step), rather than
 * each row computing and holding its own.
 */
export function fillOf(sizes: number[]): Fill {
  const key = sizes.join(",");
  if (lastFill?.sizes === key) return lastFill;
  lastFill = undefined;
  const wave = (f: (t: number, i: number) => number) =>
    sizes.map((n, t) => {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = f(t, i);
      return a;
    });
  lastFill = { sizes: key, params: wave((t, i) => Math.sin(i + t)), grads: wave(gradient) };
  return lastFill;
}

/** A state of `row` over tensors of `sizes`, past its first steps. */
async function rectifiedState(row: LibraryRow, sizes: number[]): Promise<OptimizerState> {
  const fill = fillOf(sizes);
  const params: Record<string, Float32Array> = {};
  sizes.forEach((_, t) => params[`t${t}`] = fill.params[t]);
  // nonFinite "propagate": the same update as the C, TensorFlow.js and PyTorch (no check pass);
  // `checked`: the default, "skip", whose check reads the gradients once more (zero-copy) or as
  // they are copied in, and has rows of its own.
  // threadThreshold 0: the threaded contender runs on its threads at every size (the threshold
  // itself is measured by bench/thread_threshold.ts).
  const options: CommonOptions = {
    backend: row.backend,
    nonFinite: row.checked ? "skip" : "propagate",
    threads: row.threads ?? 1,
    threadThreshold: 0,
    states: row.states ?? "32bit",
  };
  // init copies the parameters into the state's arena
  let state = await factoryOf(row.optimizer ?? BASE_OPTIMIZER)(options).init(params);
  // tensor `t${k}` gets the gradients of tensor k, whatever its place in the arena
  for (const name of state.names) state.grads[name].set(fill.grads[Number(name.slice(1))]);
  // past step 6, so that the timed steps take RAdam's rectified (adaptive) path
  for (let t = 0; t < 7; t++) state = step(state);
  return state;
}

/** The contender `name` (ratio key `key`) that times the step of `row`. */
export function libraryContender(name: string, key: string, row: LibraryRow): Contender {
  const tensors = row.tensors ?? 1;
  return {
    name,
    key,
    async setup(n) {
      const sizes = tensors === 1 ? [n] : mixedLayout(n, tensors);
      let state = await rectifiedState(row, sizes);
      const release = () => dispose(state);
      if (!row.copied) return { time: syncTimer(() => state = step(state)), dispose: release };
      // the caller's gradients: the size's shared ones (a step only reads them)
      const { grads } = fillOf(sizes);
      const external: Record<string, Float32Array> = {};
      state.names.forEach((tensor) => external[tensor] = grads[Number(tensor.slice(1))]);
      return { time: syncTimer(() => state = step(state, external)), dispose: release };
    },
  };
}

/**
 * The default check's read pass alone (the kernel's `nonFinite` over the gradient section of a
 * one-tensor arena, no step), on one thread or split over `threads` as a threaded state runs it:
 * with the "propagate" step's time on as many threads it gives the bound of any scheme that must
 * read every gradient before the first store, step / (step + check).
 */
export function checkPassContender(threads = 1): Contender {
  return {
    name: `the default check's read pass alone (wasm, ${
      threads === 1 ? "1 thread" : `${threads} threads`
    }; no step)`,
    key: threads === 1 ? "check-pass" : "check-pass-threads",
    async setup(n) {
      const layout = planArena(["w"], [n]);
      const backend = threads === 1
        ? await createWasmBackend(layout)
        : await createThreadedWasmBackend(layout, threads);
      backend.grads.w.set(fillOf([n]).grads[0]);
      return {
        time: syncTimer(() => {
          if (backend.gradsNonFinite()) throw new Error("a finite gradient was found non-finite");
        }),
        dispose: () => backend.dispose(),
      };
    },
  };
}
