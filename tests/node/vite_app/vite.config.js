// A Worker built by Vite with Cloudflare's plugin (`vite build`), or served by Vite's dev server
// with the Worker in workerd (`vite dev`): the plugin's conditions, its `.wasm` imports. No
// inspector port: the tests run in parallel, and the Worker's debugger is not needed.
import { defineConfig } from "vite";
import { cloudflare } from "@cloudflare/vite-plugin";

export default defineConfig({ plugins: [cloudflare({ inspectorPort: false })] });
