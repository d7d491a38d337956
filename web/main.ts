/**
 * The demo page (`deno task web`, then `deno task web:serve`): RAdam, Adam and Ranger train
 * side by side on MNIST in the tab, through TensorFlow.js and this library's adapter, on
 * WebGPU when the browser gives an adapter and on wasm otherwise.
 *
 * URL parameters (for tests and links): `steps` (1 to 5000), `lr`, `states` (`32bit`, the default,
 * or `8bit`: the optimizers' `states` option), `backend` (`auto`, the default, or `wasm` to skip
 * WebGPU), `autostart=1`, `batch` (1 to 1024, default 32); the controls show them, and a value
 * that is not one is shown as the page's error. The Train button trains again with the
 * controls' values once a run is done or failed.
 *
 * The page reports its state on `window.radamDemo` (for tests): `status` ("idle", "training",
 * "done", "failed"), `backend`, `states`, `updateBackends`, `losses`, `accuracies`, `stateBytes`
 * (each optimizer's `getWeights()` bytes, shown in the table from the first step on),
 * `variableSizes` (the elements of each of the model's variables), `error`.
 *
 * @module
 */
/// <reference lib="dom" />
import { drawChart } from "./chart.ts";
import { loadDigits } from "./data.ts";
import type { StatesFormat } from "../mod.ts";
import {
  accuracy,
  batchOf,
  batchRandom,
  chooseBackend,
  makeRuns,
  type Run,
  stateBytes,
  stepAll,
  variableSizes,
} from "./trainer.ts";

interface DemoState {
  status: "idle" | "training" | "done" | "failed";
  backend?: string;
  states?: StatesFormat;
  updateBackends?: Record<string, string>;
  losses?: Record<string, number[]>;
  accuracies?: Record<string, number>;
  stateBytes?: Record<string, number>;
  variableSizes?: number[];
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
      r.stateBytes === undefined ? "" : `${(r.stateBytes / 1000).toFixed(1)} kB`,
      r.optimizer.backend ?? "",
    ];
    const classes = ["", "", ' class="accuracy"', ' class="state"', ""];
    tr.innerHTML = cells.map((c, i) => `<td${classes[i]}>${c}</td>`).join("");
    return tr;
  });
  $("results").querySelector("tbody")!.replaceChildren(...rows);
}

async function train(
  lr: number,
  states: StatesFormat,
  steps: number,
  batchSize: number,
  backend: string,
): Promise<void> {
  state.status = "training";
  $<HTMLButtonElement>("start").disabled = true;
  const progress = $<HTMLProgressElement>("progress");
  const progressText = $("progress-text");
  progressText.textContent = "loading the digits…";
  const choice = await chooseBackend(backend, base);
  state.backend = choice.name;
  state.states = states;
  $("backend").textContent =
    `Backend: ${choice.name === "webgpu" ? "WebGPU" : "wasm"} (${choice.reason}); ` +
    `TensorFlow.js runs the model on its ${choice.name} backend, this library's ` +
    `${
      choice.name === "webgpu" ? "WebGPU (WGSL)" : "wasm SIMD"
    } kernel runs the optimizers' updates.`;
  const data = await loadDigits(base);
  const runs = makeRuns({ lr, states }, data.size);
  state.variableSizes = variableSizes(runs[0].model);
  try {
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
      if (t === 1) {
        // (The state is made by the first step, and keeps its size.)
        for (const run of runs) run.stateBytes = await stateBytes(run.optimizer);
      }
      if (t === 1 || t % 5 === 0 || t === steps) {
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
    const format = STATES_TEXT[states];
    progressText.textContent =
      `done: ${steps} steps of ${batchSize} digits, lr ${lr}, ${format} states`;
    state.updateBackends = Object.fromEntries(
      runs.map((r) => [r.id, r.optimizer.backend ?? "none"]),
    );
    state.losses = Object.fromEntries(runs.map((r) => [r.id, r.losses]));
    state.accuracies = Object.fromEntries(runs.map((r) => [r.id, r.accuracy]));
    state.stateBytes = Object.fromEntries(runs.map((r) => [r.id, r.stateBytes ?? NaN]));
  } finally {
    for (const run of runs) {
      run.model.dispose();
      run.optimizer.dispose();
    }
  }
  state.status = "done";
}

/** Shows `error` as the page's failure, and lets the user start again. */
function fail(error: unknown): void {
  state.status = "failed";
  state.error = String((error as Error)?.stack ?? error);
  const box = $("error");
  box.hidden = false;
  box.textContent = `Training failed: ${(error as Error)?.message ?? error}`;
  $<HTMLButtonElement>("start").disabled = false;
}

/**
 * The number `text` (of the URL parameter or control `name`) gives: an integer from `min` to
 * `max` when `integer`, else a number > 0; an Error naming it otherwise.
 */
function numberParam(name: string, text: string, min: number, max: number, integer = true) {
  const value = Number(text);
  const ok = text.trim() !== "" && (integer ? Number.isInteger(value) : Number.isFinite(value));
  if (!ok || value < min || value > max || (!integer && value <= 0)) {
    const what = integer ? `an integer from ${min} to ${max}` : "a number > 0";
    throw new Error(`${name} must be ${what}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** The values URL parameter `backend` takes: WebGPU where the browser gives an adapter, or wasm. */
const BACKENDS = ["auto", "wasm"];

/** The backend `text` (of URL parameter `backend`) names; an Error naming the parameter otherwise. */
function backendParam(text: string): string {
  if (!BACKENDS.includes(text)) {
    const allowed = BACKENDS.map((b) => JSON.stringify(b)).join(" or ");
    throw new Error(`backend must be ${allowed}, got ${JSON.stringify(text)}`);
  }
  return text;
}

/** The values URL parameter and control `states` take, as the page writes them. */
const STATES_TEXT: Record<StatesFormat, string> = { "32bit": "32-bit", "8bit": "8-bit" };

/** The states format `text` names; an Error naming the parameter otherwise. */
function statesParam(text: string): StatesFormat {
  if (!Object.hasOwn(STATES_TEXT, text)) {
    const allowed = Object.keys(STATES_TEXT).map((s) => JSON.stringify(s)).join(" or ");
    throw new Error(`states must be ${allowed}, got ${JSON.stringify(text)}`);
  }
  return text as StatesFormat;
}

/** Trains with the controls' values, or (`fromUrl`) the URL parameters' where given. */
function start(fromUrl: boolean): void {
  $("error").hidden = true;
  const text = (name: string, control: string) =>
    fromUrl && params.has(name) ? params.get(name)! : control;
  let lr: number, states: StatesFormat, steps: number, batch: number, backend: string;
  try {
    lr = numberParam("lr", text("lr", $<HTMLSelectElement>("lr").value), 0, Infinity, false);
    states = statesParam(text("states", $<HTMLSelectElement>("states").value));
    steps = numberParam("steps", text("steps", $<HTMLInputElement>("steps").value), 1, 5000);
    batch = numberParam("batch", params.get("batch") ?? "32", 1, 1024);
    backend = backendParam(params.get("backend") ?? "auto");
  } catch (error) {
    return fail(error);
  }
  train(lr, states, steps, batch, backend).then(
    () => $<HTMLButtonElement>("start").disabled = false,
    fail,
  );
}

// The controls show the URL's values (a learning rate the list lacks is added to it).
const lrParam = params.get("lr");
if (lrParam !== null && Number(lrParam) > 0) {
  const select = $<HTMLSelectElement>("lr");
  if (![...select.options].some((o) => o.value === lrParam)) select.add(new Option(lrParam));
  select.value = lrParam;
}
const statesUrl = params.get("states");
if (statesUrl !== null && Object.hasOwn(STATES_TEXT, statesUrl)) {
  $<HTMLSelectElement>("states").value = statesUrl;
}
if (params.has("steps")) $<HTMLInputElement>("steps").value = params.get("steps")!;
$("controls").addEventListener("submit", (event) => {
  event.preventDefault();
  start(false);
});
if (params.get("autostart") === "1") start(true);
