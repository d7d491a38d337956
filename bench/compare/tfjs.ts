/**
 * The contender a user would pick instead, in bench/compare.ts: TensorFlow.js Adam
 * (`tf.train.adam`) on its wasm and cpu backends. TensorFlow.js has no RAdam; its Adam moves the
 * same bytes (reads params, grads, two moments; writes params and two moments).
 *
 * @module
 */
import { fillOf } from "./library.ts";
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
      // tfjs's own copies of the size's parameters and gradients
      const fill = fillOf([n]);
      const made: { dispose(): void }[] = [];
      try {
        const weights = tf.variable(tf.tensor1d(fill.params[0].slice()));
        made.push(weights);
        const grads = tf.tensor1d(fill.grads[0].slice());
        made.push(grads);
        const optimizer = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
        made.push(optimizer);
        const named = { [weights.name]: grads };
        const stepOnce = () => optimizer.applyGradients(named);
        stepOnce();
        return {
          enter: async () => {
            await tf.setBackend(backendName);
          },
          time: syncTimer(stepOnce),
          dispose: () => made.forEach((m) => m.dispose()),
        };
      } catch (error) {
        // what was made before the failure (64M on the wasm backend) is let go, where tfjs can
        for (const m of made) {
          try {
            m.dispose();
          } catch {
            // its backend's memory is broken: nothing more to free
          }
        }
        return `failed: ${(error as Error).message.split("\n")[0]}`;
      }
    },
  };
}
