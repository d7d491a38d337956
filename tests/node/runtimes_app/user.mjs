// What a user of Node or Bun does with the installed package, as an ES module: the shared case on
// wasm, js and two threads (saveState and loadState within), 8-bit Ranger on one and two threads,
// Ranger and the in-memory store, and model.fit with the adapter on tfjs's cpu backend. Prints its
// results as JSON on its last line.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import * as lib from "@optim/radam";
import * as store from "@optim/radam/store";
import { tfOptimizer } from "@optim/radam/tfjs";
import { runCase, tfjsFitCase, threadsSameCase, userCase } from "./shared_case.mjs";

/** The value of `run()`, or the error it threw as `{ error: "Name: message" }`. */
async function settle(run) {
  try {
    return await run();
  } catch (e) {
    return { error: `${e?.name}: ${e?.message}` };
  }
}

const result = {
  wasm: await settle(() => runCase(lib, "wasm")),
  js: await settle(() => runCase(lib, "js")),
  threads: await settle(() => runCase(lib, "wasm", undefined, 2)),
  threads8bit: await settle(() => threadsSameCase(lib)),
  user: await settle(() => userCase(lib, store)),
  fit: {
    "32bit": await settle(() => tfjsFitCase(tf, tfl, lib, tfOptimizer, "32bit")),
    "8bit": await settle(() => tfjsFitCase(tf, tfl, lib, tfOptimizer, "8bit")),
  },
};
console.log(JSON.stringify(result));
