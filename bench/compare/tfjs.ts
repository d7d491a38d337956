/**
 * The contender a user would pick instead, in bench/compare.ts: TensorFlow.js Adam
 * (`tf.train.adam`) on its wasm and cpu backends. TensorFlow.js has no RAdam; its Adam moves the
 * same bytes (reads params, grads, two moments; writes params and two moments).
 *
 * @module
 */
import { gradient } from "./library.ts";
import { type Contender, syncTimer } from "./timing.ts";

// deno-lint-ignore no-explicit-any
type Tf = any;
let tfModule: Promise<Tf | string> | undefined;

/** TensorFlow.js core with its cpu and wasm backends, or why it could not be loaded. */
function loadTf(): Promise<Tf | string> {
  tfModule ??= (async () => {
    try {
      const tf = await import("@tensorflow/tfjs-core");
      await import("@tensorflow/tfjs-backend-cpu");
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
      wasm.setWasmPaths(entry.pathname.replace(/[^/]*$/, ""));
      // tfjs prints a hint about tfjs-node on the cpu backend; it is not one of the contenders
      tf.env().set("IS_TEST", true);
      return tf;
    } catch (error) {
      return `TensorFlow.js did not load: ${(error as Error).message.split("\n")[0]}`;
    }
  })();
  return tfModule;
}

/** TensorFlow.js Adam on its backend `backendName`. */
export function tfContender(backendName: "wasm" | "cpu"): Contender {
  return {
    name: `TensorFlow.js Adam, ${backendName} backend`,
    key: `tfjs-${backendName}`,
    async setup(n) {
      const tf = await loadTf();
      if (typeof tf === "string") return tf;
      if (!(await tf.setBackend(backendName))) return `tfjs backend ${backendName} unavailable`;
      await tf.ready();
      const p = new Float32Array(n);
      const g = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        p[i] = Math.sin(i);
        g[i] = gradient(0, i);
      }
      try {
        const weights = tf.variable(tf.tensor1d(p));
        const grads = tf.tensor1d(g);
        const optimizer = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
        const named = { [weights.name]: grads };
        const stepOnce = () => optimizer.applyGradients(named);
        stepOnce();
        return {
          enter: async () => {
            await tf.setBackend(backendName);
          },
          time: syncTimer(stepOnce),
          dispose() {
            optimizer.dispose();
            weights.dispose();
            grads.dispose();
          },
        };
      } catch (error) {
        return `failed: ${(error as Error).message.split("\n")[0]}`;
      }
    },
  };
}
