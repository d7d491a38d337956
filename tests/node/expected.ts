// Prints the Deno results of the shared case (tests/node/shared_case.mjs) as JSON, for the Node
// and browser tests to compare against. Run by `deno task test:npm` with the repository's
// deno.json (its import map: tfjs for the adapter's case); needs no permissions.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import * as lib from "../../mod.ts";
import * as store from "../../store.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { runCase, tfjsFitCase, userCase } from "./shared_case.mjs";

const wasm = await runCase(lib, "wasm");
const js = await runCase(lib, "js");
if (wasm.digest !== js.digest) {
  throw new Error("wasm and js disagree in Deno: see tests/");
}
// The READMEs' Cloudflare Worker (one RAdam step), on js: the parameters its answer must show.
let state = await lib.radam({ lr: 0.1, backend: "js" }).init({ w: new Float32Array([1, 2, 3]) });
state = lib.step(state, { w: new Float32Array([0.5, -0.5, 1]) });
const worker = (await lib.readParams(state)).w.join(", ");
// What the other runtimes' users do (tests/node/runtimes.test.mjs): Ranger, the store, model.fit.
const user = await userCase(lib, store);
const fit = {
  "32bit": await tfjsFitCase(tf, tfl, lib, tfOptimizer, "32bit"),
  "8bit": await tfjsFitCase(tf, tfl, lib, tfOptimizer, "8bit"),
};
console.log(JSON.stringify({ wasm, js, worker, user, fit }, null, 2));
