// A TypeScript user's CommonJS file (`.cts`; a `.ts` file in a package without "type": "module"
// is one too): compiled by the packed-package test under `module: "nodenext"` (TypeScript 5.8 or
// later lets its imports of an ES module become `require` calls; `node16` refuses them, TS1479),
// then run by Node, whose `require` loads ES modules from 20.19 on (require(esm)).
import { radam, readParams, step } from "@optim/radam";
import { memoryCheckpointStore, optimisticStep } from "@optim/radam/store";
import { tfOptimizer } from "@optim/radam/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";

async function main(): Promise<void> {
  let state = await radam({ lr: 0.1 }).init({ w: new Float32Array(3) });
  state = step(state, { w: new Float32Array([1, 2, 3]) });
  const { w } = await readParams(state);
  const done = await optimisticStep(memoryCheckpointStore(), {
    optimizer: radam(),
    init: () => ({ w: new Float32Array(3) }),
    gradient: (s) => s.grads.w.fill(1),
  });
  await tf.setBackend("cpu");
  const v = tf.variable(tf.zeros([2]));
  tfOptimizer(radam({ lr: 0.1 })).applyGradients([{ name: v.name, tensor: tf.ones([2]) }]);
  console.log(
    JSON.stringify({ backend: state.backend, w: [...w], step: done.step, v: [...v.dataSync()] }),
  );
}
main();
