// The adapter as its docs set it up for Workers: wrangler.toml's `main` and `assets` say where
// the Worker and the static files go.
import adapter from "@sveltejs/adapter-cloudflare";

export default { kit: { adapter: adapter() } };
