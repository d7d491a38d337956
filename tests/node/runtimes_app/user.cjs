// A CommonJS user of the installed package: `require` of each entry (Node loads ES modules so from
// 20.19 and 22.12 on, Bun always), a step on js, the store and the adapter's registration.
const lib = require("@optim/radam");
const store = require("@optim/radam/store");
const { tfOptimizer } = require("@optim/radam/tfjs");
const tf = require("@tensorflow/tfjs-core");
require("@tensorflow/tfjs-backend-cpu");

async function main() {
  let state = await lib.radam({ lr: 0.1, backend: "js" }).init({ w: new Float32Array([1, 2, 3]) });
  state = lib.step(state, { w: new Float32Array([0.5, -0.5, 1]) });
  const worker = (await lib.readParams(state)).w.join(", ");
  const done = await store.optimisticStep(store.memoryCheckpointStore(), {
    optimizer: lib.radam({ backend: "js" }),
    init: () => ({ w: new Float32Array(3) }),
    gradient: (s) => s.grads.w.fill(1),
  });
  await tf.setBackend("cpu");
  const optimizer = tfOptimizer(lib.radam({ lr: 0.1 }));
  console.log(JSON.stringify({ worker, step: done.step, tfjs: optimizer.getClassName() }));
}
main();
