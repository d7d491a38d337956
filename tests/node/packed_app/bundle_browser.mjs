// Bundles threads.mjs with esbuild for a browser, as an app built for older browsers would: the
// target ES2016 (async functions become calls of esbuild's `__async` helper) and names kept
// (functions wrapped in calls of its `__name` helper), minified. Writes the bundle to the path
// given (argument 1).
import * as esbuild from "esbuild";

await esbuild.build({
  entryPoints: ["threads.mjs"],
  outfile: process.argv[2],
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2016",
  keepNames: true,
  minify: true,
  logLevel: "error",
});
