// A browser app on two threads, bundled by bundle_browser.mjs for an older target (esbuild then
// rewrites async functions into calls of a helper of its own): the shared case of
// ../shared_case.mjs (copied beside this file) on the wasm backend, its result on the page.
import * as lib from "@optim/radam";
import { runCase } from "./shared_case.mjs";

runCase(lib, "wasm", undefined, 2).then(
  (result) => globalThis.__result = result,
  (e) => globalThis.__error = String(e && e.stack || e),
);
