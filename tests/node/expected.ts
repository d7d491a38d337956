// Prints the Deno results of the shared case (tests/node/shared_case.mjs) as JSON, for the Node
// and browser tests to compare against. Run by `deno task test:npm`; needs no permissions.
import * as lib from "../../mod.ts";
import { runCase } from "./shared_case.mjs";

const wasm = await runCase(lib, "wasm");
const js = await runCase(lib, "js");
if (wasm.digest !== js.digest) {
  throw new Error("wasm and js disagree in Deno: see tests/");
}
console.log(JSON.stringify({ wasm, js }, null, 2));
