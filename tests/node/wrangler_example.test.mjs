// The example of examples/cloudflare (a Worker that trains with `dataParallel` on a Durable
// Object as its store) as a user copies it: its files, its wrangler.toml unchanged, in a new
// project (a temporary folder) where the tarball that `npm pack npm/` makes is installed; with
// wrangler (from npm, at the version of package.json), local and offline (wrangler_project.mjs).
// `wrangler deploy --dry-run` bundles it with the Durable Object binding and the package's
// radam.wasm kept as a module of its own; `wrangler dev` serves it (the object in miniflare's
// local storage), and steps posted to it are applied once each, by the step their answer names,
// to the parameters and checkpoint that the same steps give in Node on the js backend.
// Not deployed: tests/node/workerd_store.test.mjs checks the store itself, under concurrency.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { radam, saveState, step } from "@optim/radam";
import { newProject, run, withDev, wrangler } from "./wrangler_project.mjs";

let app = "";

before(() => {
  app = newProject(
    "radam-wrangler-example-",
    new URL("../../examples/cloudflare/", import.meta.url),
  );
});

after(() => {
  rmSync(app, { recursive: true, force: true });
});

test("wrangler deploy --dry-run bundles the Durable Object example with its own wrangler.toml, radam.wasm a module", () => {
  const out = run(app, ...wrangler(["deploy", "--dry-run", "--outdir", "dist"]));
  assert.match(out, /env\.TRAINING_STORE \(TrainingStoreObject\)\s+Durable Object/);
  const files = readdirSync(join(app, "dist"));
  const modules = files.filter((f) => f.endsWith(".wasm"));
  assert.equal(modules.length, 1, files.join(", "));
  assert.deepEqual(
    readFileSync(join(app, "dist", modules[0])),
    readFileSync(join(app, "node_modules", "@optim", "radam", "radam.wasm")),
  );
  const bundle = readFileSync(join(app, "dist", "worker.js"), "utf8");
  assert.match(
    bundle,
    new RegExp(`^import \\w+ from "\\./${modules[0].replace(".", "\\.")}";$`, "m"),
  );
  assert.match(bundle, /^export \{[^}]*\bTrainingStoreObject\b[^}]*\};?$/m);
});

/** The gradient of ½‖w − target‖² at `w`, for a target of its own per `seed`. */
const gradientAt = (w, seed) => w.map((x, i) => Math.fround(x - Math.sin(seed + i)));

test("wrangler dev serves the Durable Object example: posted steps apply once each, as Node's js backend does them", async () => {
  await withDev(app, [], async ({ origin, log, signal }) => {
    /** What the Worker answers at `path` (status 200), parsed; `body` is POSTed as JSON. */
    const ok = async (path, body) => {
      const init = body === undefined ? {} : { method: "POST", body: JSON.stringify(body) };
      const response = await fetch(`${origin}${path}`, { ...init, signal });
      const text = await response.text();
      assert.equal(response.status, 200, `${path}: ${text}\n${log()}`);
      return JSON.parse(text);
    };
    let state = await radam({ lr: 0.05, backend: "js" }).init({ w: new Float32Array(8).fill(0.5) });
    const params = () => ({ step: state.step, params: { w: [...state.params.w] } });
    assert.deepEqual(await ok("/params"), params());
    for (const [seed, id] of ["first", "second", "third"].entries()) {
      const { step: base, params: { w } } = await ok("/params");
      const gradient = gradientAt(w, seed);
      const answer = await ok("/step", { id, base, gradient: { w: gradient } });
      assert.deepEqual(answer, { status: "applied", id, step: base + 1, duplicate: false });
      state.grads.w.set(gradient);
      state = step(state);
      assert.deepEqual(await ok("/params"), params());
    }
    // An id sent again: answered with the step that applied it, and not applied twice.
    const again = await ok("/step", { id: "first", base: 0, gradient: { w: Array(8).fill(1) } });
    assert.deepEqual(again, { status: "applied", id: "first", step: 1, duplicate: true });
    const journal = await ok("/journal");
    assert.deepEqual(journal.map((r) => [r.step, r.entries.map((e) => e.id)]), [
      [1, ["first"]],
      [2, ["second"]],
      [3, ["third"]],
    ]);
    const checkpoint = await fetch(`${origin}/checkpoint`, { signal });
    assert.deepEqual(new Uint8Array(await checkpoint.arrayBuffer()), await saveState(state));
  });
});
