// The demo page in headless Chromium, on WebGPU (SwiftShader) and on wasm, with 32-bit and 8-bit
// optimizer states: it trains, the curves move, the final accuracies and the bytes of each
// optimizer's state appear, nothing is requested from another origin, and a screenshot of each is
// saved in web-output/ (git-ignored). Needs the page built first
// (`deno task web`; `deno task test` does it).
import assert from "node:assert/strict";
import { evaluateOnPage, type PageRun, runPage, WEBGPU_FLAGS } from "./browser.ts";
import { serveStatic } from "./serve.ts";
import { Q8_BLOCK, Q8_MIN_ELEMENTS } from "../base/q8.ts";
import { ADAM } from "../rules/adam.ts";
import { LION } from "../rules/lion.ts";
import { SGD } from "../rules/sgd.ts";
import { CENTRALIZE, CENTRALIZE_NARROW, stepKernels } from "../gpu/wgsl_kernel.ts";
import { compactKernel } from "../gpu/wgsl_compact.ts";

const STEPS = 30;

/** The page's MLP: 784 pixels, 64 hidden units, 10 classes. */
const UNITS = [784, 64, 10];

/** Elements of the MLP's variables, in tfjs's order: each layer's kernel, then its bias. */
function mlpSizes(): number[] {
  return UNITS.slice(1).flatMap((units, i) => [UNITS[i] * units, units]);
}

/** What each contender keeps a variable: moments, and (Ranger, LookAhead) slow weights. */
const KEEPS: Record<string, { moments: number; slow: boolean }> = {
  radam: { moments: 2, slow: false },
  adam: { moments: 2, slow: false },
  ranger: { moments: 2, slow: true },
};

/**
 * The bytes of an optimizer's `getWeights()` the README's "bytes a parameter" give: 4 a moment's
 * element in f32; with 8-bit states, for a variable of 4096 elements or more, 1 a code and one f32
 * scale a block of 256 instead; 4 an element of the slow weights; 4 for `iter`. (Exact here but
 * for codes padded to whole int32s and a last partial block, which the check's tolerance covers.)
 */
function expectedStateBytes(id: string, states: string, sizes: readonly number[]): number {
  const { moments, slow } = KEEPS[id];
  let bytes = 4;
  for (const n of sizes) {
    const compact = states === "8bit" && n >= Q8_MIN_ELEMENTS;
    bytes += moments * (compact ? n + 4 * n / Q8_BLOCK : 4 * n) + (slow ? 4 * n : 0);
  }
  return bytes;
}

/** The relative tolerance of the state bytes against {@linkcode expectedStateBytes}. */
const STATE_TOLERANCE = 1e-3;

async function built(): Promise<void> {
  try {
    await Deno.stat("web-dist/main.js");
  } catch {
    throw new Error("web-dist/ is missing: run deno task web first");
  }
  await Deno.mkdir("web-output", { recursive: true });
}

function checkRun(
  run: PageRun,
  backend: "webgpu" | "wasm",
  states: "32bit" | "8bit" = "32bit",
): void {
  assert.equal(run.status, "done", `the page did not finish: ${run.error}`);
  assert.equal(run.backend, backend, run.backendText);
  assert.match(run.backendText, backend === "webgpu" ? /^Backend: WebGPU/ : /^Backend: wasm/);
  // every optimizer's update ran on the library's backend of the same kind
  assert.deepEqual(run.updateBackends, { radam: backend, adam: backend, ranger: backend });
  for (const [id, losses] of Object.entries(run.losses ?? {})) {
    assert.equal(losses.length, STEPS, id);
    assert.ok(losses.every(Number.isFinite), `${id}: ${losses}`);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(losses.slice(-5)) < mean(losses.slice(0, 5)), `${id} did not learn: ${losses}`);
  }
  assert.deepEqual(Object.keys(run.losses ?? {}).sort(), ["adam", "radam", "ranger"]);
  // the curves moved: they had fewer points while training than at the end
  assert.equal(run.pointsAtEnd.length, 3);
  assert.ok(
    run.pointsWhileTraining.every((p, i) => p >= 1 && p < run.pointsAtEnd[i]),
    `${run.pointsWhileTraining} → ${run.pointsAtEnd}`,
  );
  assert.ok(run.pointsAtEnd.every((p) => p === STEPS));
  // the final accuracies are shown, and are better than chance
  assert.equal(run.accuracyTexts.length, 3);
  for (const text of run.accuracyTexts) assert.match(text, /^\d+\.\d%$/);
  for (const a of Object.values(run.accuracies ?? {})) {
    assert.ok(a > 0.3 && a <= 1, `accuracy ${a}`);
  }
  // the bytes of each optimizer's state are shown, as the variables' sizes and the format give
  assert.equal(run.states, states);
  assert.deepEqual(run.variableSizes, mlpSizes());
  assert.deepEqual(Object.keys(run.stateBytes ?? {}).sort(), ["adam", "radam", "ranger"]);
  for (const [id, bytes] of Object.entries(run.stateBytes ?? {})) {
    const expected = expectedStateBytes(id, states, mlpSizes());
    assert.ok(
      Math.abs(bytes - expected) <= STATE_TOLERANCE * expected,
      `${id} (${states}): ${bytes} bytes of state, expected ${expected}`,
    );
  }
  assert.deepEqual(
    run.stateTexts,
    ["radam", "adam", "ranger"].map((id) => `${(run.stateBytes![id] / 1000).toFixed(1)} kB`),
  );
  // nothing beyond the page's own origin
  assert.deepEqual(run.offsite, []);
  assert.ok(
    run.requests.length >= 5 && run.requests.every((u) => new URL(u).origin === run.origin),
  );
  assert.ok(run.requests.some((u) => u.endsWith("/mnist.bin")));
}

Deno.test("web page: trains RAdam, Adam and Ranger on WebGPU (Chromium, SwiftShader)", async () => {
  await built();
  const run = await runPage({
    flags: WEBGPU_FLAGS,
    query: { steps: String(STEPS), lr: "1e-2" },
    screenshot: "web-output/webgpu.png",
  });
  checkRun(run, "webgpu");
  await Deno.stat("web-output/webgpu.png");
});

Deno.test("web page: every rule's step kernels and centralization compile in Chromium (Tint, SwiftShader), Lion's included, which the page does not train", async () => {
  await built();
  const kernels = [ADAM, LION, SGD]
    .flatMap((rule) => [stepKernels(rule).step, compactKernel(rule)])
    .concat([CENTRALIZE, CENTRALIZE_NARROW])
    .map(({ code, entryPoint }) => ({ code, entryPoint }));
  const errors = await evaluateOnPage(WEBGPU_FLAGS, async (list) => {
    const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
    const out: string[] = [];
    for (const { code, entryPoint } of list) {
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ code });
      for (const m of (await module.getCompilationInfo()).messages) {
        if (m.type === "error") out.push(`${entryPoint}: ${m.message}`);
      }
      await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint } })
        .catch((e: Error) => out.push(`${entryPoint}: ${e.message}`));
      const error = await device.popErrorScope();
      if (error) out.push(`${entryPoint}: ${error.message}`);
    }
    return out;
  }, kernels);
  assert.deepEqual(errors, []);
});

Deno.test("web page: falls back to wasm where navigator.gpu gives no adapter", async () => {
  await built();
  const run = await runPage({
    flags: ["--disable-gpu"],
    query: { steps: String(STEPS), lr: "1e-2" },
    screenshot: "web-output/wasm.png",
  });
  checkRun(run, "wasm");
  assert.match(run.backendText, /no adapter|missing/);
  assert.ok(run.requests.some((u) => u.endsWith(".wasm")));
  await Deno.stat("web-output/wasm.png");
});

Deno.test("web page: 8-bit states train on WebGPU (SwiftShader), in a fraction of the bytes", async () => {
  await built();
  const run = await runPage({
    flags: WEBGPU_FLAGS,
    query: { steps: String(STEPS), lr: "1e-2", states: "8bit" },
    screenshot: "web-output/webgpu-8bit.png",
  });
  checkRun(run, "webgpu", "8bit");
  checkSaving(run);
});

Deno.test("web page: 8-bit states train on wasm, in a fraction of the bytes", async () => {
  await built();
  const run = await runPage({
    flags: ["--disable-gpu"],
    query: { steps: String(STEPS), lr: "1e-2", states: "8bit" },
    screenshot: "web-output/wasm-8bit.png",
  });
  checkRun(run, "wasm", "8bit");
  checkSaving(run);
});

/**
 * An 8-bit run's state against the 32-bit one's of the same model: RAdam's and Adam's about a
 * quarter (the first kernel's two moments in 2.03 bytes an element instead of 8), Ranger's about
 * half (its slow weights stay f32).
 */
function checkSaving(run: PageRun): void {
  for (const [id, bytes] of Object.entries(run.stateBytes ?? {})) {
    const ratio = bytes / expectedStateBytes(id, "32bit", run.variableSizes ?? []);
    const expected = expectedStateBytes(id, "8bit", mlpSizes()) /
      expectedStateBytes(id, "32bit", mlpSizes());
    assert.ok(Math.abs(ratio - expected) <= STATE_TOLERANCE * expected, `${id}: ${ratio}`);
    assert.ok(ratio < (KEEPS[id].slow ? 0.6 : 0.3), `${id}: ${ratio}`);
  }
}

Deno.test("web page: a states format the page does not take is its error, naming the values", async () => {
  await built();
  const run = await runPage({ flags: ["--disable-gpu"], query: { steps: "5", states: "4bit" } });
  assert.equal(run.status, "failed");
  assert.equal(run.errorText, 'Training failed: states must be "32bit" or "8bit", got "4bit"');
  assert.equal(run.startDisabled, false);
});

Deno.test("web page: a URL parameter that is not one is the page's error, and Train trains again", async () => {
  await built();
  const run = await runPage({
    flags: ["--disable-gpu"],
    query: { steps: "abc", lr: "1e-2" },
    afterwards: async (page) => {
      await page.fill("#steps", "5");
      await page.selectOption("#lr", "1e-3"); // the control's value, not the link's, is used
      await page.click("#start");
      await page.waitForFunction(() => {
        const s = (globalThis as unknown as { radamDemo: { status: string } }).radamDemo.status;
        return s === "done" || s === "failed";
      });
      return await page.evaluate(() => ({
        status: (globalThis as unknown as { radamDemo: { status: string } }).radamDemo.status,
        errorHidden: (globalThis as unknown as {
          document: { getElementById(id: string): { hidden: boolean } };
        }).document.getElementById("error").hidden,
        progress: (globalThis as unknown as {
          document: { getElementById(id: string): { textContent: string } };
        }).document.getElementById("progress-text").textContent,
      }));
    },
  });
  assert.equal(run.status, "failed");
  assert.equal(
    run.errorText,
    'Training failed: steps must be an integer from 1 to 5000, got "abc"',
  );
  assert.equal(run.startDisabled, false);
  assert.deepEqual(run.afterwards, {
    status: "done",
    errorHidden: true,
    progress: "done: 5 steps of 32 digits, lr 0.001, 32-bit states",
  });
});

Deno.test("web page: a backend the page does not take is its error, naming the values it takes", async () => {
  await built();
  const run = await runPage({ flags: ["--disable-gpu"], query: { steps: "5", backend: "gpu" } });
  assert.equal(run.status, "failed");
  assert.equal(run.errorText, 'Training failed: backend must be "auto" or "wasm", got "gpu"');
  assert.equal(run.startDisabled, false);
  // Nothing was loaded for a run: the page refused before training.
  assert.ok(!run.requests.some((u) => u.endsWith("/mnist.bin")), String(run.requests));
});

Deno.test("web page: a failed download is the page's error, and Train can be pressed again", async () => {
  await built();
  const run = await runPage({
    flags: ["--disable-gpu"],
    query: { steps: "5" },
    notFound: ["mnist.bin"],
  });
  assert.equal(run.status, "failed");
  assert.match(run.errorText, /^Training failed: .*mnist\.bin/);
  assert.equal(run.startDisabled, false);
});

Deno.test("web page: says so when its script cannot load", async () => {
  await built();
  const run = await runPage({
    flags: ["--disable-gpu"],
    query: {},
    notFound: ["main.js"],
    timeoutMs: 20_000,
  });
  assert.match(run.errorText, /^The page could not load its script, main\.js: serve web-dist\//);
});

Deno.test("web server: a malformed percent-escape in the path is a 400, not a server error", async () => {
  // decodeURIComponent threw a URIError out of the handler, which Deno.serve answers 500 (and
  // logs as an error of the server): the request's fault, not the server's.
  const root = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${root}/index.html`, "<p>hi</p>");
    const controller = new AbortController();
    let port = 0;
    const server = serveStatic(root, {
      port: 0,
      signal: controller.signal,
      onListen: (p) => port = p,
    });
    try {
      for (const path of ["/%E0%A4%A", "/%", "/a%zz.html", "/%C0%AF"]) {
        const response = await fetch(`http://127.0.0.1:${port}${path}`);
        assert.equal(response.status, 400, path);
        await response.body?.cancel();
      }
      const ok = await fetch(`http://127.0.0.1:${port}/%69ndex.html`); // "i" escaped
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), "<p>hi</p>");
    } finally {
      controller.abort();
      await server.finished;
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
