/**
 * `deno task web:screenshot`: trains the built demo page in headless Chromium on WebGPU
 * (SwiftShader), and saves the finished page as `docs/web.png` (the README's picture).
 *
 * ```sh
 * deno task web:screenshot [--steps 150] [--lr 1e-2] [--out docs/web.png]
 * ```
 *
 * Needs every permission (playwright-core reads /proc and starts Chromium).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runPage, WEBGPU_FLAGS } from "./browser.ts";

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      steps: { type: "string", default: "150" },
      lr: { type: "string", default: "1e-2" },
      out: { type: "string", default: "docs/web.png" },
    },
  });
  const run = await runPage({
    flags: WEBGPU_FLAGS,
    query: { steps: values.steps, lr: values.lr },
    screenshot: values.out,
    timeoutMs: 600_000,
  });
  if (run.status !== "done") {
    console.error(`error: the page did not finish: ${run.error}`);
    Deno.exit(1);
  }
  const accuracies = Object.entries(run.accuracies ?? {}).map(([k, a]) =>
    `${k} ${(100 * a).toFixed(1)}%`
  );
  console.log(`${run.backendText}\n${accuracies.join(", ")}\nWrote ${values.out}.`);
}
