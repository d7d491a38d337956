/**
 * A worker that plays a browser's main thread, which compiles WebAssembly of more than 4 KB only
 * asynchronously (`new WebAssembly.Module(bytes)` throws a RangeError; `WebAssembly.compile`
 * works), as Chromium did for years and some Android WebViews still do; then makes states on
 * wasm in it: `backend: "wasm"`, the default backend, and `loadState` with `backend: "wasm"`.
 * The TensorFlow.js adapter, which makes its states synchronously, is asked first, before
 * anything has compiled the kernel. Answers with the backend of each, or the error each threw.
 * Used by sync_limit_test.ts.
 *
 * @module
 */
/// <reference lib="deno.worker" />

/**
 * What each call gave: the state's backend, or `"Name: message"` of its error; `tfjs`: the
 * adapter's `optimizer.backend` with the default backend on tfjs's cpu backend before a step,
 * and where its step ran (or what it threw).
 */
export type SyncLimitReport = Record<"wasm" | "auto" | "loaded" | "tfjsBefore" | "tfjs", string>;

function limit(): void {
  const { Module } = WebAssembly;
  (WebAssembly as unknown as Record<string, unknown>).Module = new Proxy(Module, {
    construct: (target, args: [BufferSource]) => {
      if (args[0].byteLength > 4096) {
        throw new RangeError(
          "WebAssembly.Compile is disallowed on the main thread, if the buffer size is larger " +
            "than 4KB. Use WebAssembly.compile, or compile on a worker thread.",
        );
      }
      return new target(args[0]);
    },
  });
}

async function said(
  run: () => Promise<{ backend: string | undefined }> | { backend: string | undefined },
): Promise<string> {
  try {
    return String((await run()).backend);
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

self.onmessage = async () => {
  limit();
  const lib = await import("../../mod.ts");
  const tf = await import("@tensorflow/tfjs-core");
  await import("@tensorflow/tfjs-backend-cpu");
  const { tfOptimizer } = await import("../../tfjs.ts");
  tf.env().set("PROD", true);
  if (!(await tf.setBackend("cpu"))) throw new Error("tfjs's cpu backend is unavailable");
  const optimizer = tfOptimizer(lib.radam());
  const tfjsBefore = await said(() => optimizer);
  const v = tf.variable(tf.tensor([1, 2, 3]), true, "sync-limit/w");
  const tfjs = await said(() => {
    optimizer.applyGradients({ [v.name]: tf.tensor([0.5, 0.5, 0.5]) });
    return { backend: optimizer.state?.backend };
  });
  optimizer.dispose();
  const params = () => ({ w: new Float32Array(100).fill(0.5), b: new Float32Array(3) });
  const report: SyncLimitReport = {
    tfjsBefore,
    tfjs,
    wasm: await said(() => lib.radam({ backend: "wasm" }).init(params())),
    auto: await said(() => lib.radam().init(params())),
    loaded: await said(async () =>
      lib.loadState(await lib.saveState(await lib.radam({ backend: "js" }).init(params())), {
        backend: "wasm",
      })
    ),
  };
  self.postMessage(report);
};
