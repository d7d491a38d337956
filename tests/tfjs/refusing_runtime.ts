/**
 * A worker that plays a runtime which will not compile WebAssembly, then trains in it: with
 * message `"compile"`, one that refuses to compile WebAssembly from bytes at run time while
 * `WebAssembly.validate` still works, as Cloudflare Workers do (`new WebAssembly.Module(bytes)`,
 * `WebAssembly.compile` and `WebAssembly.instantiate(bytes)` throw a CompileError, "Wasm code
 * generation disallowed by embedder"; an already compiled module still instantiates) and as a
 * browser page does whose Content-Security-Policy has no 'wasm-unsafe-eval'; with `"simd"`, one
 * without WebAssembly SIMD (`validate` refuses the kernel, compiling it throws); with `"module"`,
 * the runtime of `"compile"` where the kernel arrives compiled (a Worker's import of the package's
 * `radam.wasm`: compiled here before the globals are replaced), given to `setWasmModule` before
 * anything trains. The library and
 * TensorFlow.js (core, layers, the cpu backend) are imported only after the globals are replaced,
 * as in such a runtime. Answers with what it saw ({@linkcode RefusingRuntimeReport}), or
 * `{ error }`. Used by compile_refused_test.ts.
 *
 * @module
 */
/// <reference lib="deno.worker" />

/** An error as the report carries it. */
export interface ErrorSeen {
  name: string;
  message: string;
}

/** What the worker saw; arrays are the bits of the parameters and moments after training. */
export interface RefusingRuntimeReport {
  /** `radam().init(...)`: its backend, and its bits after 5 steps beside `backend: "js"`'s. */
  auto: { backend: string; bits: Uint32Array; jsBits: Uint32Array };
  /** `loadState` of a checkpoint with the default backend: where it resumed. */
  loaded: string;
  /** `backend: "wasm"`, and `threads: 2` with the default backend: what init threw. */
  wasm: ErrorSeen;
  threads: ErrorSeen;
  /**
   * The adapter: `optimizer.backend` before and after model.fit, the weights' bits, and whether
   * fit changed them.
   */
  tfjs: { before?: string; after?: string; bits: Uint32Array; jsBits: Uint32Array; moved: boolean };
  /**
   * The adapter with `backend: "wasm"`: `optimizer.backend` before, what the step threw, whether
   * a state was made, and whether the variable kept its values.
   */
  tfjsWasm: { before?: string; error: ErrorSeen; state: boolean; unchanged: boolean };
  /** The adapter with `threads: 2`: `optimizer.backend` before, and what the step threw. */
  tfjsThreads: { before?: string; error: ErrorSeen };
}

function refusal(where: string, scenario: string): WebAssembly.CompileError {
  return new WebAssembly.CompileError(
    scenario === "compile"
      ? `${where}: Wasm code generation disallowed by embedder`
      : `${where}: Compiling function #0 failed: invalid simd opcode @+64`,
  );
}

/** Replaces the WebAssembly globals with a refusing runtime's. */
function refuse(scenario: string): void {
  const { instantiate, Module } = WebAssembly;
  const wasm = WebAssembly as unknown as Record<string, unknown>;
  // A modules made elsewhere stays a WebAssembly.Module (instanceof works), as in Workers.
  wasm.Module = new Proxy(Module, {
    construct: () => {
      throw refusal("WebAssembly.Module()", scenario);
    },
  });
  wasm.compile = () => Promise.reject(refusal("WebAssembly.compile()", scenario));
  wasm.compileStreaming = () => Promise.reject(refusal("WebAssembly.compileStreaming()", scenario));
  wasm.instantiateStreaming = () =>
    Promise.reject(refusal("WebAssembly.instantiateStreaming()", scenario));
  wasm.instantiate = (source: unknown, imports?: WebAssembly.Imports) =>
    source instanceof Module
      ? instantiate(source, imports)
      : Promise.reject(refusal("WebAssembly.instantiate()", scenario));
  if (scenario === "simd") wasm.validate = () => false;
}

function seen(error: unknown): ErrorSeen {
  const e = error as Error;
  return { name: e?.constructor?.name ?? typeof error, message: String(e?.message ?? error) };
}

/** What `run` threw, or `{ name: "none" }` where it threw nothing. */
async function caught(run: () => unknown): Promise<ErrorSeen> {
  try {
    await run();
  } catch (error) {
    return seen(error);
  }
  return { name: "none", message: "no error" };
}

/** The bits of every array of a record, one after the other. */
function bitsOf(arrays: Float32Array[]): Uint32Array {
  const out = new Uint32Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) out.set(new Uint32Array(a.slice().buffer), (at += a.length) - a.length);
  return out;
}

type AdapterReport = Pick<RefusingRuntimeReport, "tfjs" | "tfjsWasm" | "tfjsThreads">;

async function core(): Promise<Omit<RefusingRuntimeReport, keyof AdapterReport>> {
  const lib = await import("../../mod.ts");
  const { randoms } = await import("../util.ts");
  const params = () => ({ w: randoms(1000, 1), b: randoms(7, 2) });
  const train = async (backend?: "js") => {
    let state = await lib.radam({ lr: 1e-2, backend }).init(params());
    for (let t = 0; t < 5; t++) {
      state = lib.step(state, { w: randoms(1000, 3 + t), b: randoms(7, t) });
    }
    const p = await lib.readParams(state), m = await lib.readMoments(state);
    return { state, bits: bitsOf([p.w, p.b, m.exp_avg.w, m.exp_avg_sq.w]) };
  };
  const auto = await train(), js = await train("js");
  const loaded = await lib.loadState(await lib.saveState(js.state));
  return {
    auto: { backend: auto.state.backend, bits: auto.bits, jsBits: js.bits },
    loaded: loaded.backend,
    wasm: await caught(() => lib.radam({ backend: "wasm" }).init(params())),
    threads: await caught(() => lib.radam({ threads: 2 }).init(params())),
  };
}

async function adapter(): Promise<AdapterReport> {
  const tf = await import("@tensorflow/tfjs-core");
  await import("@tensorflow/tfjs-backend-cpu");
  const tfl = await import("@tensorflow/tfjs-layers");
  const { radam } = await import("../../mod.ts");
  const { tfOptimizer } = await import("../../tfjs.ts");
  const { randoms } = await import("../util.ts");
  tf.env().set("PROD", true);
  if (!(await tf.setBackend("cpu"))) throw new Error("tfjs's cpu backend is unavailable");
  const x = tf.tensor(randoms(32 * 6, 5), [32, 6]), y = tf.tensor(randoms(32 * 3, 6), [32, 3]);
  const fit = async (backend?: "js") => {
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ units: 8, inputShape: [6], activation: "relu" }),
        tfl.layers.dense({ units: 3 }),
      ],
    });
    model.setWeights(model.getWeights().map((w, i) => tf.tensor(randoms(w.size, 9 + i), w.shape)));
    const optimizer = tfOptimizer(radam({ lr: 1e-2, backend }));
    const before = optimizer.backend;
    const initial = bitsOf(model.getWeights().map((w) => w.dataSync() as Float32Array));
    model.compile({ optimizer, loss: "meanSquaredError" });
    await model.fit(x, y, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0 });
    const bits = bitsOf(model.getWeights().map((w) => w.dataSync() as Float32Array));
    const after = optimizer.backend;
    optimizer.dispose();
    model.dispose();
    return { before, after, bits, moved: bits.some((b, i) => b !== initial[i]) };
  };
  const auto = await fit(), js = await fit("js");
  const wasm = tfOptimizer(radam({ backend: "wasm" }));
  const v = tf.variable(tf.tensor([1, 2, 3]), true, "refusing/w");
  const before = wasm.backend;
  const error = await caught(() => wasm.applyGradients({ [v.name]: tf.tensor([0.5, 0.5, 0.5]) }));
  const unchanged = [...v.dataSync()].join() === "1,2,3";
  const threaded = tfOptimizer(radam({ threads: 2 }));
  const tfjsThreads = {
    before: threaded.backend,
    error: await caught(() => threaded.applyGradients({ [v.name]: tf.tensor([0.5, 0.5, 0.5]) })),
  };
  return {
    tfjs: { ...auto, jsBits: js.bits },
    tfjsWasm: { before, error, state: wasm.state !== undefined, unchanged },
    tfjsThreads,
  };
}

/** The kernel compiled from the bytes the library embeds (those of the npm package's file). */
async function precompiledKernel(): Promise<WebAssembly.Module> {
  const { KERNELS_WASM_BASE64 } = await import("../../cpu/kernels_wasm.generated.ts");
  return WebAssembly.compile(Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0)));
}

self.onmessage = async (event: MessageEvent<string>) => {
  try {
    const kernel = event.data === "module" ? await precompiledKernel() : undefined;
    refuse(event.data === "module" ? "compile" : event.data);
    if (kernel !== undefined) (await import("../../mod.ts")).setWasmModule(kernel);
    const report: RefusingRuntimeReport = { ...await core(), ...await adapter() };
    self.postMessage(report);
  } catch (error) {
    self.postMessage({ error: error instanceof Error ? error.stack : String(error) });
  }
};
