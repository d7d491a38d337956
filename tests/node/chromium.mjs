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

/**
 * Opens `url` in `page` and waits (up to `timeout` ms) for the page to set `__result` or
 * `__error`: the page's result, asserting that it threw nothing (`logs`, its console, if given,
 * go into the message).
 */
export async function pageResult(page, url, timeout = 60_000, logs = []) {
  await page.goto(url);
  await page.waitForFunction(
    () => globalThis.__result || globalThis.__error,
    null,
    { timeout },
  );
  const error = await page.evaluate(() => globalThis.__error);
  assert.equal(
    error,
    undefined,
    `the page ${url} threw: ${error}\n${logs.join("\n")}`,
  );
  return await page.evaluate(() => globalThis.__result);
}
