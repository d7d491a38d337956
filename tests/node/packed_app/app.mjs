// The app that is bundled: it loads the saved model and trains on. It imports the adapter only
// for what importing it does (register the optimizer class with tfjs), as code that only loads
// a model must; without that, tf.loadLayersModel fails with "Unknown ... RadamTfOptimizer".
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import "@optim/radam/tfjs";
import { EPOCHS_AFTER, FIT, makeData, snapshot } from "./model.mjs";

await tf.setBackend("cpu");
const json = JSON.parse(readFileSync("saved/model.json", "utf8"));
const artifacts = await tf.io.getModelArtifactsForJSON(json, (manifest) => {
  const bytes = readFileSync(`saved/${manifest[0].paths[0]}`);
  const data = bytes.buffer.slice(
    bytes.byteOffset,
    bytes.byteOffset + bytes.byteLength,
  );
  return Promise.resolve([manifest[0].weights, data]);
});
const model = await tfl.loadLayersModel({
  load: () => Promise.resolve(artifacts),
});
const { x, y } = makeData();
await model.fit(x, y, { ...FIT, epochs: EPOCHS_AFTER });
console.log(JSON.stringify(await snapshot(model)));
