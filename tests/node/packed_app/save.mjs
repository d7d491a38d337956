// Unbundled Node script: trains the model with tfOptimizer(ranger()) and saves it with its
// optimizer (model.json + weights.bin, tfjs's file layout), then trains the same model from the
// start without interruption and writes where it ends (uninterrupted.json).
import { mkdirSync, writeFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { ranger } from "@optim/radam";
import { tfOptimizer } from "@optim/radam/tfjs";
import { EPOCHS_AFTER, EPOCHS_BEFORE, FIT, makeData, makeModel, snapshot } from "./model.mjs";

await tf.setBackend("cpu");
const { x, y } = makeData();
const compile = (model) =>
  model.compile({
    optimizer: tfOptimizer(ranger({ lr: 3e-2 })),
    loss: "meanSquaredError",
  });

const first = makeModel();
compile(first);
await first.fit(x, y, { ...FIT, epochs: EPOCHS_BEFORE });
await first.save(
  tf.io.withSaveHandler((artifacts) => {
    mkdirSync("saved", { recursive: true });
    const { weightSpecs, weightData, ...rest } = artifacts;
    const json = {
      ...rest,
      weightsManifest: [{ paths: ["weights.bin"], weights: weightSpecs }],
    };
    writeFileSync("saved/model.json", JSON.stringify(json));
    writeFileSync(
      "saved/weights.bin",
      new Uint8Array(tf.io.CompositeArrayBuffer.join(weightData)),
    );
    return Promise.resolve({
      modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" },
    });
  }),
  { includeOptimizer: true },
);

const whole = makeModel();
compile(whole);
await whole.fit(x, y, { ...FIT, epochs: EPOCHS_BEFORE + EPOCHS_AFTER });
writeFileSync(
  "saved/uninterrupted.json",
  JSON.stringify(await snapshot(whole)),
);
