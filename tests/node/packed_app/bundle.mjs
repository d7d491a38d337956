// Bundles app.mjs with esbuild, as an app's build would (the package, tfjs and all, in one file
// for Node; tfjs-core's Node code calls require, which an ES module gets from createRequire).
// Writes the bundle to the path given (argument 1), prints esbuild's warnings as JSON.
import * as esbuild from "esbuild";

const result = await esbuild.build({
  entryPoints: ["app.mjs"],
  outfile: process.argv[2],
  bundle: true,
  format: "esm",
  platform: "node",
  // tfjs-backend-cpu's "main" (its Node build) is not in its own sideEffects list; "module" is.
  mainFields: ["module", "main"],
  banner: {
    js:
      'import { createRequire } from "node:module"; const require = createRequire(import.meta.url);',
  },
  logLevel: "silent",
});
console.log(JSON.stringify(result.warnings));
