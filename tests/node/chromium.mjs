// Debian's headless Chromium, driven by playwright-core, as every browser test here launches it.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

/** Where Chromium is: `CHROMIUM_PATH`, else Debian's. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * A headless Chromium with no sandbox, GPU, network services or first-run pages (and `args`
 * besides); fails with what to do when there is none.
 */
export async function launchChromium(args = []) {
  assert.ok(
    existsSync(CHROMIUM),
    `No Chromium at ${CHROMIUM}: run tests/node/setup.sh (installs Debian's chromium) or set CHROMIUM_PATH`,
  );
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...args,
    ],
  });
}
