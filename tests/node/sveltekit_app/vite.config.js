// SvelteKit's plugin and nothing else: no `.wasm` loader, no `ssr` settings.
import { sveltekit } from "@sveltejs/kit/vite";
import { defineConfig } from "vite";

export default defineConfig({ plugins: [sveltekit()] });
