// The pages of reload.test.mjs: each runs in two halves, `?half=1` then `?half=2`, two loads of
// one page of one origin (the second a new document: nothing of the first survives but what it
// stored). Each sets `window.__result` or `window.__error`.

/** Deterministic values in [-scale, scale]: element i of draw k. */
const DRAW = `const draw = (n, k, scale = 0.1) =>
  Float32Array.from({ length: n }, (_, i) => scale * Math.sin(0.37 * i + 1.3 * k));`;

// The TensorFlow.js adapter: a 64-64-1 MLP (its 64 × 64 kernel held in 8 bits under
// states: "8bit"), trained N epochs, saved with includeOptimizer to indexeddb:// and
// localstorage://, loaded after the reload and trained M more; and, in the first half, the same
// model trained N + M epochs uninterrupted, for comparison.
export const TFJS_PAGE = `<!doctype html><meta charset="utf-8"><title>radam tfjs reload</title>
<script type="importmap">
  { "imports": { "@tensorflow/tfjs-core": "/tfjs-core.js", "seedrandom": "/seedrandom.js" } }
</script>
<script type="module">
  ${DRAW}
  const params = new URLSearchParams(location.search);
  const half = params.get("half"), backend = params.get("backend");
  const N = 3, M = 4, n = 32, features = 64;
  let stage = "import";
  try {
    const tf = await import("@tensorflow/tfjs-core");
    const tfl = await import("/tfjs-layers.js");
    await import(backend === "webgpu" ? "/tfjs-backend-webgpu.js" : "/tfjs-backend-cpu.js");
    const lib = await import("/index.js");
    const { registerTfOptimizer, tfOptimizer } = await import("/tfjs.js");
    registerTfOptimizer();
    if (backend === "webgpu" && !(await navigator.gpu?.requestAdapter())) {
      window.__result = { adapter: null };
    } else {
      tf.env().set("PROD", true);
      if (!(await tf.setBackend(backend))) throw new Error("tfjs has no backend " + backend);
      await tf.ready();
      const x = tf.tensor2d(draw(n * features, 1, 1), [n, features]);
      const y = tf.tensor2d(draw(n, 2, 1), [n, 1]);
      const fit = (model, epochs) =>
        model.fit(x, y, { epochs, batchSize: n, shuffle: false, verbose: 0 });
      const values = (model) => Promise.all(model.getWeights().map(async (w) => [...await w.data()]));
      const optimizers = {
        ranger: () => tfOptimizer(lib.ranger({ lr: 1e-2 })),
        radam8bit: () => tfOptimizer(lib.radam({ lr: 1e-2, states: "8bit" })),
      };
      const out = { adapter: true, backend: tf.getBackend(), runs: {} };
      for (const [name, make] of Object.entries(optimizers)) {
        for (const store of ["indexeddb", "localstorage"]) {
          const url = \`\${store}://radam-\${backend}-\${name}\`;
          stage = \`\${half === "1" ? "save" : "load"} \${url}\`;
          let model;
          if (half === "1") {
            model = tfl.sequential({ layers: [
              tfl.layers.dense({ units: 64, inputShape: [features], activation: "relu" }),
              tfl.layers.dense({ units: 1 }),
            ] });
            model.setWeights(model.getWeights().map((w, k) => tf.tensor(draw(w.size, 10 + k), w.shape)));
            model.compile({ optimizer: make(), loss: "meanSquaredError" });
            await fit(model, N);
            await model.save(url, { includeOptimizer: true });
            if (store === "indexeddb") {
              // Uninterrupted: N + M epochs in one go, from the same weights.
              await fit(model, M);
              out.runs[name] = { uninterrupted: await values(model) };
            }
          } else {
            model = await tfl.loadLayersModel(url);
            const optimizer = model.optimizer;
            const loaded = { className: optimizer.getClassName(), iterations: optimizer.iterations };
            await fit(model, M);
            const codes = (await optimizer.getWeights()).filter((w) => w.name.endsWith(".codes"));
            out.runs[name + "/" + store] = {
              ...loaded,
              optimizerBackend: optimizer.backend,
              codes: codes.map((w) => w.tensor.dtype),
              after: optimizer.iterations,
              weights: await values(model),
            };
          }
          model.optimizer.dispose();
          model.dispose();
        }
      }
      tf.dispose([x, y]);
      window.__result = out;
    }
  } catch (e) {
    window.__error = \`at \${stage}: \${e && e.stack || e}\`;
  }
</script>`;

// A model trained by an optimizer on two worker threads in a cross-origin isolated page, saved
// with includeOptimizer; loaded in a page of the origin that is not isolated (no
// SharedArrayBuffer), where it trains on, on one thread; and the same training uninterrupted.
export const THREADS_PAGE =
  `<!doctype html><meta charset="utf-8"><title>radam threads reload</title>
<script type="importmap">
  { "imports": { "@tensorflow/tfjs-core": "/tfjs-core.js", "seedrandom": "/seedrandom.js" } }
</script>
<script type="module">
  ${DRAW}
  const half = new URLSearchParams(location.search).get("half");
  let stage = "import";
  try {
    const tf = await import("@tensorflow/tfjs-core");
    const tfl = await import("/tfjs-layers.js");
    await import("/tfjs-backend-cpu.js");
    const lib = await import("/index.js");
    const { tfOptimizer } = await import("/tfjs.js");
    tf.env().set("PROD", true);
    await tf.setBackend("cpu");
    const x = tf.tensor2d(draw(8 * 16, 1, 1), [8, 16]);
    const y = tf.tensor2d(draw(8, 2, 1), [8, 1]);
    const fit = (model, epochs) =>
      model.fit(x, y, { epochs, batchSize: 8, shuffle: false, verbose: 0 });
    const values = (model) => Promise.all(model.getWeights().map(async (w) => [...await w.data()]));
    const out = { isolated: crossOriginIsolated };
    let model;
    if (half === "1") {
      const make = () => {
        const model = tfl.sequential({ layers: [
          tfl.layers.dense({ units: 16, inputShape: [16], activation: "relu" }),
          tfl.layers.dense({ units: 1 }),
        ] });
        model.setWeights(model.getWeights().map((w, k) => tf.tensor(draw(w.size, 10 + k), w.shape)));
        model.compile({
          optimizer: tfOptimizer(lib.radam({ lr: 1e-2, threads: 2, threadThreshold: 0 })),
          loss: "meanSquaredError",
        });
        return model;
      };
      stage = "save";
      model = make();
      await fit(model, 3);
      await model.optimizer.ready();
      await fit(model, 1);
      out.threads = model.optimizer.state.threads;
      await model.save("indexeddb://radam-threads", { includeOptimizer: true });
      stage = "uninterrupted";
      const uninterrupted = make();
      await fit(uninterrupted, 8);
      out.uninterrupted = await values(uninterrupted);
      uninterrupted.optimizer.dispose();
      uninterrupted.dispose();
    } else {
      stage = "load";
      model = await tfl.loadLayersModel("indexeddb://radam-threads");
      stage = "fit";
      await fit(model, 4);
      out.iterations = model.optimizer.iterations;
      out.threads = model.optimizer.state.threads;
      out.weights = await values(model);
    }
    model.optimizer.dispose();
    model.dispose();
    tf.dispose([x, y]);
    window.__result = out;
  } catch (e) {
    window.__error = \`at \${stage}: \${e && e.stack || e}\`;
  }
</script>`;

// localstorage:// past its quota: a model of 1024 × 768 weights (3 MiB) saved without the
// optimizer fits; with Ranger's three f32 tensors a weight (12 MiB), or 8-bit RAdam's codes
// (about 4.5 MiB in all), it does not: what does model.save say, and what is left of the first save?
export const QUOTA_PAGE =
  `<!doctype html><meta charset="utf-8"><title>radam localstorage quota</title>
<script type="importmap">
  { "imports": { "@tensorflow/tfjs-core": "/tfjs-core.js", "seedrandom": "/seedrandom.js" } }
</script>
<script type="module">
  ${DRAW}
  try {
    const tf = await import("@tensorflow/tfjs-core");
    const tfl = await import("/tfjs-layers.js");
    await import("/tfjs-backend-cpu.js");
    const lib = await import("/index.js");
    const { tfOptimizer } = await import("/tfjs.js");
    tf.env().set("PROD", true);
    await tf.setBackend("cpu");
    const x = tf.tensor2d(draw(4 * 1024, 3, 1), [4, 1024]);
    const y = tf.tensor2d(draw(4 * 768, 4, 1), [4, 768]);
    const out = {};
    for (const [name, optimizer] of [
      ["ranger", tfOptimizer(lib.ranger({ lr: 1e-3 }))],
      ["radam8bit", tfOptimizer(lib.radam({ lr: 1e-3, states: "8bit" }))],
    ]) {
      const url = "localstorage://radam-quota-" + name;
      const model = tfl.sequential({ layers: [
        tfl.layers.dense({ units: 768, inputShape: [1024], useBias: false }),
      ] });
      model.compile({ optimizer, loss: "meanSquaredError" });
      await model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
      const plain = await model.save(url);
      const keys = () => Object.keys(localStorage).filter((k) => k.includes("radam-quota-" + name));
      const stored = keys().length;
      let error = null;
      try {
        await model.save(url, { includeOptimizer: true });
      } catch (e) {
        error = String(e && e.message || e);
      }
      const state = (await optimizer.getWeights()).reduce((s, w) => s + w.tensor.size * 4, 0);
      const plainBytes = plain.modelArtifactsInfo.weightDataBytes;
      out[name] = { plainBytes, stored, state, error, left: keys() };
      optimizer.dispose();
      model.dispose();
    }
    tf.dispose([x, y]);
    window.__result = out;
  } catch (e) {
    window.__error = String(e && e.stack || e);
  }
</script>`;

// The core library: a state of each configuration stepped N times, saveState's bytes put into
// IndexedDB, the Cache API and the Origin Private File System; after the reload, each read back,
// loadState, M steps: against N + M steps uninterrupted (run in the second half).
export const CORE_PAGE = `<!doctype html><meta charset="utf-8"><title>radam core reload</title>
<script type="module">
  ${DRAW}
  import * as lib from "/index.js";
  const half = new URLSearchParams(location.search).get("half");
  const N = 5, M = 6;
  const configs = {
    wasm: () => lib.radam({ lr: 1e-2, backend: "wasm" }),
    js: () => lib.radam({ lr: 1e-2, backend: "js" }),
    threads: () => lib.radam({ lr: 1e-2, backend: "wasm", threads: 2, threadThreshold: 0 }),
    ranger8bit: () => lib.ranger({ lr: 1e-2, states: "8bit" }),
  };
  const loadOptions = {
    wasm: { backend: "wasm" },
    js: { backend: "js" },
    threads: { backend: "wasm", threads: 2, threadThreshold: 0 },
    ranger8bit: {},
  };
  const grads = (t) => ({ w: draw(5000, 100 + t), b: draw(7, 200 + t) });
  const steps = (state, from, to) => {
    for (let t = from; t < to; t++) state = lib.step(state, grads(t));
    return state;
  };
  const fresh = (name) => configs[name]().init({ w: draw(5000, 1, 1), b: draw(7, 2, 1) });
  const idb = () => new Promise((resolve, reject) => {
    const open = indexedDB.open("radam-core", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("checkpoints");
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const request = (r) => new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const stores = {
    async indexeddb(name, bytes) {
      const tx = (await idb()).transaction("checkpoints", bytes ? "readwrite" : "readonly");
      const store = tx.objectStore("checkpoints");
      return await request(bytes ? store.put(bytes, name) : store.get(name));
    },
    async cache(name, bytes) {
      const cache = await caches.open("radam-core");
      if (bytes) return await cache.put("/checkpoints/" + name, new Response(bytes));
      return new Uint8Array(await (await cache.match("/checkpoints/" + name)).arrayBuffer());
    },
    async opfs(name, bytes) {
      const dir = await navigator.storage.getDirectory();
      const handle = await dir.getFileHandle(name + ".safetensors", { create: !!bytes });
      if (!bytes) return new Uint8Array(await (await handle.getFile()).arrayBuffer());
      const writable = await handle.createWritable();
      await writable.write(bytes);
      await writable.close();
    },
  };
  const hex = async (bytes) =>
    [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
  const summary = async (state) => {
    const params = await lib.readParams(state);
    const out = {
      step: state.step,
      backend: state.backend,
      threads: state.threads,
      params: { w: [...params.w], b: [...params.b] },
      checkpoint: await hex(await lib.saveState(state)),
    };
    lib.dispose(state);
    return out;
  };
  try {
    const out = { isolated: crossOriginIsolated, runs: {} };
    for (const name of Object.keys(configs)) {
      if (half === "1") {
        const bytes = await lib.saveState(steps(await fresh(name), 0, N));
        for (const [where, put] of Object.entries(stores)) await put(name, bytes);
      } else {
        out.runs[name] = { uninterrupted: await summary(steps(await fresh(name), 0, N + M)) };
        for (const [where, get] of Object.entries(stores)) {
          const state = await lib.loadState(await get(name), loadOptions[name]);
          out.runs[name][where] = await summary(steps(state, N, N + M));
        }
      }
    }
    // A checkpoint as the stores give it before its bytes are read: OPFS's File, the Cache API's
    // Response.
    if (half === "2") {
      const dir = await navigator.storage.getDirectory();
      const file = await (await dir.getFileHandle("wasm.safetensors")).getFile();
      const response = await (await caches.open("radam-core")).match("/checkpoints/wasm");
      out.unread = {};
      for (const [what, value] of [["file", file], ["response", response]]) {
        out.unread[what] = await lib.loadState(value).then(
          () => "loaded",
          (e) => \`\${e.name}: \${e.message}\`,
        );
      }
    }
    window.__result = out;
  } catch (e) {
    window.__error = String(e && e.stack || e);
  }
</script>`;

/**
 * A page that runs README.md's example `/readme-example.js` (its imports mapped to the bundle, to
 * tfjs-core and tfjs-layers as `@tensorflow/tfjs`), with the stand-ins it leaves to the reader
 * (`xs`, `ys`; `weights`, `batches`) as globals, and gives what `report` makes of its exports.
 */
export const readmePage = (report) =>
  `<!doctype html><meta charset="utf-8"><title>radam README example</title>
<script type="importmap">
  { "imports": {
    "@tensorflow/tfjs-core": "/tfjs-core.js",
    "@tensorflow/tfjs": "/tfjs-union.js",
    "@optim/radam": "/index.js",
    "@optim/radam/tfjs": "/tfjs.js",
    "seedrandom": "/seedrandom.js"
  } }
</script>
<script type="module">
  ${DRAW}
  try {
    const tf = await import("@tensorflow/tfjs");
    const lib = await import("@optim/radam");
    tf.env().set("PROD", true);
    await tf.setBackend("cpu");
    Object.assign(globalThis, {
      xs: tf.tensor2d(draw(8 * 3, 1, 1), [8, 3]),
      ys: tf.tensor2d(draw(8, 2, 1), [8, 1]),
      weights: draw(300, 3, 1),
      batches: [0, 1, 2].map((k) => ({ w: draw(300, 4 + k) })),
    });
    const example = await import("/readme-example.js");
    window.__result = await (${report})(example, lib, tf);
  } catch (e) {
    window.__error = String(e && e.stack || e);
  }
</script>`;

/** tfjs's union package as the page has it: tfjs-core, tfjs-layers and the cpu backend. */
export const TFJS_UNION = `export * from "@tensorflow/tfjs-core";
export * from "/tfjs-layers.js";
import "/tfjs-backend-cpu.js";`;
