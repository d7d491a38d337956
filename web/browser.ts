/**
 * Drives the demo page in headless Chromium (Debian's `/usr/bin/chromium`, or `CHROMIUM_PATH`)
 * with playwright-core: serves `web-dist/` on the loopback interface, opens the page with
 * `autostart=1`, records every request (and refuses any to another origin), and waits for the
 * page to finish. Used by the page's test and by `deno task web:screenshot`.
 *
 * @module
 */
import { type Browser, chromium } from "playwright-core";
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
  /** The optimizers' states format, and the bytes of each one's `getWeights()`. */
  readonly states?: string;
  readonly stateBytes?: Record<string, number>;
  /** Elements of each of the model's trainable variables. */
  readonly variableSizes?: number[];
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
  /** The optimizer state cells' text at the end. */
  readonly stateTexts: string[];
  /** The text of the backend line. */
  readonly backendText: string;
  /** The error the page shows ("" when it shows none). */
  readonly errorText: string;
  /** Whether the Train button is disabled at the end. */
  readonly startDisabled: boolean;
  /** What the option `afterwards` returned. */
  readonly afterwards?: unknown;
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
  /** Names of the page's files answered 404 (e.g. `main.js`), as a broken server would. */
  readonly notFound?: readonly string[];
  /** Run on the finished page; what it returns is the report's `afterwards`. */
  readonly afterwards?: (page: Page) => Promise<unknown>;
}

/** The page of playwright-core's Chromium. */
export type Page = Awaited<ReturnType<Awaited<ReturnType<typeof chromium.launch>>["newPage"]>>;

/** Records every URL `page` requests, and refuses (and records) those to another origin. */
async function recordRequests(
  page: Page,
  origin: string,
  notFound: readonly string[] = [],
): Promise<{ requests: string[]; offsite: string[] }> {
  const requests: string[] = [], offsite: string[] = [];
  await page.route("**/*", (route) => {
    const url = route.request().url();
    requests.push(url);
    if (notFound.some((name) => new URL(url).pathname.endsWith(`/${name}`))) {
      return route.fulfill({ status: 404, body: "not found" });
    }
    if (new URL(url).origin === origin) return route.continue();
    offsite.push(url);
    return route.abort();
  });
  return { requests, offsite };
}

/** The number of points of each loss curve now. */
function curvePoints(page: Page): Promise<number[]> {
  return page.$$eval(
    "#chart path.loss",
    (paths) => paths.map((p) => Number((p as unknown as Dataset).dataset.points)),
  );
}

/**
 * Waits until the page trains with a curve drawn (or stopped training), and returns the
 * curves' points then; then until it is done (or failed, or shows an error).
 */
async function waitForTraining(page: Page, timeout: number): Promise<number[]> {
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
    { timeout },
  );
  const pointsWhileTraining = await curvePoints(page);
  await page.waitForFunction(
    () => {
      const page = globalThis as unknown as {
        radamDemo?: { status: string };
        document: { getElementById(id: string): { hidden: boolean } | null };
      };
      const s = page.radamDemo?.status;
      return s === "done" || s === "failed" ||
        page.document.getElementById("error")?.hidden === false;
    },
    null,
    { timeout },
  );
  return pointsWhileTraining;
}

/** What a finished page shows: its report (`window.radamDemo`) and the texts it displays. */
async function readFinished(
  page: Page,
): Promise<
  Omit<PageRun, "requests" | "offsite" | "origin" | "pointsWhileTraining" | "afterwards">
> {
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
    | "stateTexts"
    | "backendText"
    | "errorText"
    | "startDisabled"
  >;
  const accuracyTexts = await page.$$eval(
    "#results td.accuracy",
    (cells) => cells.map((c) => c.textContent ?? ""),
  );
  const stateTexts = await page.$$eval(
    "#results td.state",
    (cells) => cells.map((c) => c.textContent ?? ""),
  );
  const backendText = await page.$eval("#backend", (p) => p.textContent ?? "");
  const errorText = await page.$eval(
    "#error",
    (p) => (p as unknown as { hidden: boolean }).hidden ? "" : p.textContent ?? "",
  );
  const startDisabled = await page.$eval(
    "#start",
    (b) => (b as unknown as { disabled: boolean }).disabled,
  );
  return {
    ...report,
    pointsAtEnd: await curvePoints(page),
    accuracyTexts,
    stateTexts,
    backendText,
    errorText,
    startDisabled,
  };
}

/**
 * Serves `web-dist/` on a free port, launches headless Chromium with `flags`, and calls `fn`
 * with the browser and the server's origin; closes both however `fn` ends.
 */
async function withBrowser<R>(
  flags: readonly string[],
  fn: (browser: Browser, origin: string) => Promise<R>,
): Promise<R> {
  const controller = new AbortController();
  let port = 0;
  const server = serveStatic("web-dist", {
    port: 0,
    signal: controller.signal,
    onListen: (p) => port = p,
  });
  const browser = await chromium.launch({
    executablePath: Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium",
    args: [...QUIET_FLAGS, ...flags],
  });
  try {
    return await fn(browser, `http://127.0.0.1:${port}`);
  } finally {
    await browser.close();
    controller.abort();
    await server.finished;
  }
}

/** Serves `web-dist/`, runs the page in headless Chromium, and reports. */
export function runPage(options: RunPageOptions): Promise<PageRun> {
  return withBrowser(options.flags, async (browser, origin) => {
    const page = await browser.newPage({ viewport: { width: 900, height: 860 } });
    const { requests, offsite } = await recordRequests(page, origin, options.notFound);
    const query = new URLSearchParams({ ...options.query, autostart: "1" });
    await page.goto(`${origin}/?${query}`);
    const pointsWhileTraining = await waitForTraining(page, options.timeoutMs ?? 120_000);
    const finished = await readFinished(page);
    if (options.screenshot) await page.screenshot({ path: options.screenshot, fullPage: true });
    const afterwards = await options.afterwards?.(page);
    return { ...finished, requests, offsite, origin, pointsWhileTraining, afterwards };
  });
}

/**
 * Opens the page (without training) in headless Chromium with `flags` and returns what `fn`,
 * given `arg` (both sent to the page as playwright sends them), evaluates to there.
 */
export function evaluateOnPage<A, R>(
  flags: readonly string[],
  fn: (arg: A) => Promise<R>,
  arg: A,
): Promise<R> {
  return withBrowser(flags, async (browser, origin) => {
    const page = await browser.newPage();
    await page.goto(`${origin}/`);
    // deno-lint-ignore no-explicit-any
    return await page.evaluate(fn as any, arg) as R;
  });
}
