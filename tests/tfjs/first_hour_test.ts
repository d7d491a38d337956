/**
 * What a TensorFlow.js user new to the adapter writes in a first custom training loop, where the
 * step would otherwise do nothing, silently, or fail with a message that does not say what to
 * do: a `NamedTensor[]` whose elements hold no `tensor` (the variables themselves, or the
 * gradient under another key), one `{ name, tensor }` without its array, a variable as the name;
 * weights of a `getWeights` set that a later `getWeights` (`model.save` with `includeOptimizer`)
 * disposed, given to `setWeights`; and a `device` (init's option, in the README's WebGPU example) given to the factory or to
 * `tfOptimizer`.
 */
import assert from "node:assert/strict";
import { adam, radam, ranger } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  saveToMemory,
  tf,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const named = uniqueNames("firsthour");

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): a NamedTensor[] element without a tensor is refused, not left out of the step`, async () => {
    await useBackend(backend);
    const w = tf.variable(tf.tensor1d([1, -2]), true, named("w"));
    const optimizer = tfOptimizer(adam({ lr: 0.1 }));
    const grad = tf.ones([2]);
    const cases: [unknown, RegExp][] = [
      [
        [w],
        /^Gradient 0 is the variable "[^"]+" itself, not its gradient: give \{ name: variable\.name, tensor: gradient \}/,
      ],
      [
        [{ name: w.name, gradient: grad }],
        /^Gradient 0 \(of variable "[^"]+"\) has no tensor: expected \{ name, tensor \} \(a NamedTensor\), got the keys name, gradient$/,
      ],
      [[{ name: w.name }], /has no tensor: .*, got only a name$/],
      [
        { name: w.name, tensor: grad },
        /^applyGradients was given one \{ name, tensor \} \(the gradient of variable "[^"]+"\): pass an array of them/,
      ],
      [
        [{ name: w, tensor: grad }],
        /^Expected gradient 0 to be a \{ name, tensor \} \(a NamedTensor\), got Object \(its name is Variable: give the variable's name, \{ name: variable\.name, tensor \}\)$/,
      ],
    ];
    for (const [given, message] of cases) {
      assert.throws(() => optimizer.applyGradients(given as never), { name: "TypeError", message });
    }
    assert.equal(optimizer.iterations, 0);
    assert.deepEqual([...w.dataSync()], [1, -2]);
    // A null tensor leaves its variable out, as tfjs's own optimizers do; a real one steps.
    optimizer.applyGradients([{ name: w.name, tensor: null as never }]);
    assert.equal(optimizer.iterations, 0);
    optimizer.applyGradients([{ name: w.name, tensor: grad }]);
    assert.equal(optimizer.iterations, 1);
    assert.notDeepEqual([...w.dataSync()], [1, -2]);
    optimizer.dispose();
    tf.dispose([w, grad]);
  });
}

Deno.test("tfjs: a device given to the factory or to tfOptimizer says where it goes", () => {
  for (const [factory, name] of [[radam, "radam"], [ranger, "ranger"]] as const) {
    assert.throws(() => tfOptimizer(factory({ lr: 1e-3, device: {} } as never)), {
      name: "TypeError",
      message: new RegExp(
        `^Unknown option device for ${name}; expected one of .* \\(device is an option of init: ` +
          `${name}\\(\\{ … \\}\\)\\.init\\(params, \\{ device \\}\\); under tfOptimizer, the steps ` +
          `run on TensorFlow\\.js's own device, tf\\.setBackend\\("webgpu"\\)\\)$`,
      ),
    });
  }
  assert.throws(() => tfOptimizer(radam(), { device: {} } as never), {
    name: "TypeError",
    message:
      "Unknown option device for tfOptimizer; expected one of strict, warnOnSkip, gradientAccumulationSteps, ema (the " +
      'adapter steps on TensorFlow.js\'s own device: tf.setBackend("webgpu"), no device option)',
  });
  // Still no hint for a name that is no option anywhere.
  assert.throws(() => radam({ devise: {} } as never), { message: /, groups$/ });
});

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): weights of a getWeights set that model.save disposed are a TypeError in setWeights, nothing changed`, async () => {
    await useBackend(backend);
    const model = denseNet(7);
    const optimizer = tfOptimizer(adam({ lr: 0.01 }));
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([6], 8, 3);
    await model.fit(x, y, fitInOrder(1));
    const stale = await optimizer.getWeights();
    await saveToMemory(model); // its getWeights call disposes the set before it
    const other = tfOptimizer(adam({ lr: 0.01 }));
    await other.setWeights([{ name: "iter", tensor: tf.scalar(5, "int32") }]);
    await assert.rejects(other.setWeights(stale), {
      name: "TypeError",
      message: 'Optimizer weight "iter" was disposed (the tensors getWeights gives are the ' +
        "optimizer's, valid until its next getWeights call, which model.save with " +
        "includeOptimizer makes, or its dispose(): tf.clone them to keep them longer)",
    });
    assert.equal(other.iterations, 5);
    // What it says works: a clone outlives the next getWeights.
    const kept = (await optimizer.getWeights()).map((w) => ({
      name: w.name,
      tensor: tf.clone(w.tensor),
    }));
    await optimizer.getWeights();
    await other.setWeights(kept);
    assert.equal(other.iterations, optimizer.iterations);
    tf.dispose(kept.map((w) => w.tensor));
    other.dispose();
    disposeModels(model);
    tf.dispose([x, y]);
  });
}
