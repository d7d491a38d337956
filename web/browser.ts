/**
 * Drives the demo page in headless Chromium (Debian's `/usr/bin/chromium`, or `CHROMIUM_PATH`)
 * with playwright-core: serves `web-dist/` on the loopback interface, opens the page with
 * `autostart=1`, records every request (and refuses any to another origin), and waits for the
 * page to finish. Used by the page's test and by `deno task web:screenshot`.
 *
 * @module
 */
import { chromium } from "playwright-core";
import { serveStatic } from "./serve.ts";

/** Chromium's flags for WebGPU on its SwiftShader (CPU) Vulkan adapter. */
export const WEBGPU_FLAGS = [
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
  "--enable-features=Vulkan",
];

/** Flags that keep Chromium quiet and offline. */
const QUIET_FLAGS = [
  "--no-sandbox",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** What the page reported (`window.radamDemo`), and what the browser saw. */
export interface PageRun {
  readonly status: string;
  readonly backend?: string;
  readonly updateBackends?: Record<string, string>;
  readonly losses?: Record<string, number[]>;
  readonly accuracies?: Record<string, number>;
  readonly error?: string;
  /** Every URL the page requested. */
  readonly requests: string[];
  /** Requests to another origin (refused). */
  readonly offsite: string[];
  /** The page's origin. */
  readonly origin: string;
  /** Points of each loss curve at a moment while training, and at the end. */
  readonly pointsWhileTraining: number[];
  readonly pointsAtEnd: number[];
  /** The accuracy cells' text at the end. */
  readonly accuracyTexts: string[];
  /** The text of the backend line. */
  readonly backendText: string;
}

/** An element's data attributes (this module is type-checked without the DOM's types). */
interface Dataset {
  readonly dataset: Record<string, string | undefined>;
}

/** Options of {@linkcode runPage}. */
export interface RunPageOptions {
  /** Extra Chromium flags (e.g. {@linkcode WEBGPU_FLAGS}, or `--disable-gpu`). */
  readonly flags: readonly string[];
  /** The page's URL parameters (`steps`, `lr`, …); `autostart=1` is added. */
  readonly query: Record<string, string>;
  /** Where to save a screenshot of the finished page. */
  readonly screenshot?: string;
  /** How long to wait for the page to finish, in ms. */
  readonly timeoutMs?: number;
}

/** Serves `web-dist/`, runs the page in headless Chromium, and reports. */
export async function runPage(options: RunPageOptions): Promise<PageRun> {
  const controller = new AbortController();
  let port = 0;
  const server = serveStatic("web-dist", {
    port: 0,
    signal: controller.signal,
    onListen: (p) => port = p,
  });
  const browser = await chromium.launch({
    executablePath: Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium",
    args: [...QUIET_FLAGS, ...options.flags],
  });
  try {
    const origin = `http://127.0.0.1:${port}`;
    const page = await browser.newPage({ viewport: { width: 900, height: 860 } });
    const requests: string[] = [], offsite: string[] = [];
    await page.route("**/*", (route) => {
      const url = route.request().url();
      requests.push(url);
      if (new URL(url).origin === origin) return route.continue();
      offsite.push(url);
      return route.abort();
    });
    const query = new URLSearchParams({ ...options.query, autostart: "1" });
    await page.goto(`${origin}/?${query}`);
    const points = () =>
      page.$$eval(
        "#chart path.loss",
        (paths) => paths.map((p) => Number((p as unknown as Dataset).dataset.points)),
      );
    await page.waitForFunction(
      () => {
        const page = globalThis as unknown as {
          radamDemo?: { status: string };
          document: { querySelector(selector: string): Dataset | null };
        };
        return page.radamDemo?.status !== "training" ||
          page.document.querySelector("#chart path.loss")?.dataset.points !== undefined;
      },
      null,
      { timeout: options.timeoutMs ?? 120_000 },
    );
    const pointsWhileTraining = await points();
    await page.waitForFunction(
      () => {
        const s = (globalThis as unknown as { radamDemo?: { status: string } }).radamDemo?.status;
        return s === "done" || s === "failed";
      },
      null,
      { timeout: options.timeoutMs ?? 120_000 },
    );
    const report = await page.evaluate(() =>
      (globalThis as unknown as { radamDemo: unknown }).radamDemo
    ) as Omit<
      PageRun,
      | "requests"
      | "offsite"
      | "origin"
      | "pointsWhileTraining"
      | "pointsAtEnd"
      | "accuracyTexts"
      | "backendText"
    >;
    const accuracyTexts = await page.$$eval(
      "#results td.accuracy",
      (cells) => cells.map((c) => c.textContent ?? ""),
    );
    const backendText = await page.$eval("#backend", (p) => p.textContent ?? "");
    if (options.screenshot) await page.screenshot({ path: options.screenshot, fullPage: true });
    return {
      ...report,
      requests,
      offsite,
      origin,
      pointsWhileTraining,
      pointsAtEnd: await points(),
      accuracyTexts,
      backendText,
    };
  } finally {
    await browser.close();
    controller.abort();
    await server.finished;
  }
}
