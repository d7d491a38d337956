// A Worker built as Nitro's cloudflare presets build one: the `workerd` condition, and `.wasm`
// imports by unwasm with `esmImport` (Nitro's `wasm: { lazy: false, esmImport: true }`), where a
// bare `.wasm` import is the instance's exports and a `.wasm?module` one a compiled module.
import { defineConfig } from "vite";
import { rollup as unwasm } from "unwasm/plugin";

const conditions = ["workerd", "worker", "browser"];

export default defineConfig({
  plugins: [unwasm({ esmImport: true, lazy: false })],
  ssr: { noExternal: true, target: "webworker", resolve: { conditions } },
  build: { ssr: "src/index.js", outDir: "dist-unwasm", emptyOutDir: true },
});
