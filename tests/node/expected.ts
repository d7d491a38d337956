// Prints the Deno results of the shared case (tests/node/shared_case.mjs) as JSON, for the Node
// and browser tests to compare against. Run by `deno task test:npm`; needs no permissions.
import * as lib from "../../mod.ts";
import { runCase } from "./shared_case.mjs";

const wasm = await runCase(lib, "wasm");
const js = await runCase(lib, "js");
if (wasm.digest !== js.digest) {
  throw new Error("wasm and js disagree in Deno: see tests/");
}
// The READMEs' Cloudflare Worker (one RAdam step), on js: the parameters its answer must show.
let state = await lib.radam({ lr: 0.1, backend: "js" }).init({ w: new Float32Array([1, 2, 3]) });
state = lib.step(state, { w: new Float32Array([0.5, -0.5, 1]) });
const worker = (await lib.readParams(state)).w.join(", ");
console.log(JSON.stringify({ wasm, js, worker }, null, 2));
