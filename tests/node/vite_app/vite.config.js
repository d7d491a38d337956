// A Worker built by Vite with Cloudflare's plugin (`vite build`): the plugin's conditions, its
// `.wasm` imports.
import { defineConfig } from "vite";
import { cloudflare } from "@cloudflare/vite-plugin";

export default defineConfig({ plugins: [cloudflare()] });
