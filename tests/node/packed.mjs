// The npm package as a user installs it, for the tests that make a project of their own
// (packed_app.test.mjs, the wrangler tests): the tarball `npm pack npm/` makes, installed into
// the project with `npm install <tarball>`.
import { fileURLToPath } from "node:url";

const built = fileURLToPath(new URL("../../npm", import.meta.url));

/**
 * Packs npm/ into the project folder `app` and installs the tarball there. `run(command, args)`
 * runs a command in `app` and returns its stdout; `flags` are npm install's (how it may reach the
 * registry: `--offline`, or `--prefer-offline` with a cache).
 */
export function installPacked(app, run, flags) {
  const [{ filename }] = JSON.parse(
    run("npm", ["pack", built, "--pack-destination", app, "--json", "--loglevel=error"]),
  );
  run("npm", [
    "install",
    `./${filename}`,
    ...flags,
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
  ]);
}
