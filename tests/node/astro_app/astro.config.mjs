// The adapter as its docs set it up for Workers, and nothing else: no Vite plugins or settings.
import cloudflare from "@astrojs/cloudflare";
import { defineConfig } from "astro/config";

export default defineConfig({ output: "server", adapter: cloudflare() });
