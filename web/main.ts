/**
 * The demo page (`deno task web`, then `deno task web:serve`): RAdam, Adam and Ranger train
 * side by side on MNIST in the tab, through TensorFlow.js and this library's adapter, on
 * WebGPU when the browser gives an adapter and on wasm otherwise.
 *
 * URL parameters (for tests and links): `steps`, `lr`, `backend=wasm` (skip WebGPU),
 * `autostart=1`, `batch` (default 32).
 *
 * The page reports its state on `window.radamDemo` (for tests): `status` ("idle", "training",
 * "done", "failed"), `backend`, `updateBackends`, `losses`, `accuracies`, `error`.
 *
 * @module
 */
/// <reference lib="dom" />
import { drawChart } from "./chart.ts";
import { loadDigits } from "./data.ts";
import {
  accuracy,
  batchOf,
  batchRandom,
  chooseBackend,
  makeRuns,
  type Run,
  stepAll,
} from "./trainer.ts";

interface DemoState {
  status: "idle" | "training" | "done" | "failed";
  backend?: string;
  updateBackends?: Record<string, string>;
  losses?: Record<string, number[]>;
  accuracies?: Record<string, number>;
  error?: string;
}

const state: DemoState = { status: "idle" };
(globalThis as unknown as { radamDemo: DemoState }).radamDemo = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URL(location.href).searchParams;
const base = new URL(".", location.href);

function showResults(runs: readonly Run[]): void {
  const rows = runs.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.optimizer = r.id;
    const last = r.smoothed.at(-1);
    const cells = [
      `<span class="swatch" style="background:${r.color}"></span>${r.label}`,
      last === undefined ? "" : last.toFixed(3),
      Number.isFinite(r.accuracy) ? `${(100 * r.accuracy).toFixed(1)}%` : "…",
      r.optimizer.backend ?? "",
    ];
    tr.innerHTML = cells.map((c, i) => `<td${i === 2 ? ' class="accuracy"' : ""}>${c}</td>`).join(
      "",
    );
    return tr;
  });
  $("results").querySelector("tbody")!.replaceChildren(...rows);
}

async function train(lr: number, steps: number, batchSize: number): Promise<void> {
  state.status = "training";
  $<HTMLButtonElement>("start").disabled = true;
  const progress = $<HTMLProgressElement>("progress");
  const progressText = $("progress-text");
  progressText.textContent = "loading the digits…";
  const choice = await chooseBackend(params.get("backend") ?? "auto", base);
  state.backend = choice.name;
  $("backend").textContent =
    `Backend: ${choice.name === "webgpu" ? "WebGPU" : "wasm"} (${choice.reason}); ` +
    `TensorFlow.js runs the model on its ${choice.name} backend, this library's ` +
    `${
      choice.name === "webgpu" ? "WebGPU (WGSL)" : "wasm SIMD"
    } kernel runs the optimizers' updates.`;
  const data = await loadDigits(base);
  const runs = makeRuns(lr, data.size);
  const random = batchRandom(1);
  const draw = () =>
    drawChart(
      $("chart"),
      runs.map((r) => ({ label: r.label, color: r.color, values: r.smoothed })),
      steps,
    );
  progress.max = steps;
  for (let t = 1; t <= steps; t++) {
    const batch = batchOf(data.train, batchSize, random, data.size);
    await stepAll(runs, batch);
    batch.x.dispose();
    batch.y.dispose();
    if (t % 5 === 0 || t === steps) {
      progress.value = t;
      progressText.textContent = `step ${t} of ${steps}`;
      draw();
      showResults(runs);
      await new Promise((r) => setTimeout(r, 0));
    }
  }
  progressText.textContent = `step ${steps} of ${steps}; scoring the 2 000 test digits…`;
  for (const run of runs) run.accuracy = await accuracy(run.model, data.test, data.size);
  showResults(runs);
  progressText.textContent = `done: ${steps} steps of ${batchSize} digits, lr ${lr}`;
  state.updateBackends = Object.fromEntries(runs.map((r) => [r.id, r.optimizer.backend ?? "none"]));
  state.losses = Object.fromEntries(runs.map((r) => [r.id, r.losses]));
  state.accuracies = Object.fromEntries(runs.map((r) => [r.id, r.accuracy]));
  for (const run of runs) {
    run.model.dispose();
    run.optimizer.dispose();
  }
  state.status = "done";
}

function start(): void {
  const lr = Number(params.get("lr") ?? $<HTMLSelectElement>("lr").value);
  const steps = Math.max(
    1,
    Math.min(5000, Math.floor(Number(params.get("steps") ?? $<HTMLInputElement>("steps").value))),
  );
  const batch = Math.max(1, Math.floor(Number(params.get("batch") ?? 32)));
  train(lr, steps, batch).catch((error) => {
    state.status = "failed";
    state.error = String(error?.stack ?? error);
    const box = $("error");
    box.hidden = false;
    box.textContent = `Training failed: ${error?.message ?? error}`;
  });
}

if (params.has("lr")) $<HTMLSelectElement>("lr").value = params.get("lr")!;
if (params.has("steps")) $<HTMLInputElement>("steps").value = params.get("steps")!;
$("controls").addEventListener("submit", (event) => {
  event.preventDefault();
  start();
});
if (params.get("autostart") === "1") start();
