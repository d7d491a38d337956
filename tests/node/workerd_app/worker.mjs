// A Cloudflare Worker, as a user writes it: the package, and its kernel imported as a compiled
// module (wrangler's CompiledWasm rule; a `wasm` module in workerd's config). Bundled by esbuild
// and run in workerd by ../workerd.test.mjs, twice: with wrangler's conditions (the package's
// workerd entry, which hands the library its radam.wasm as it loads) and without (its default
// entry, as a bundler that does not apply `workerd`). GET /case: what the library does before
// any setWasmModule, then a few calls of it (not a module, another module, the kernel), then what
// it does after. GET /bench?backend=js|wasm&n=…&steps=…: that many RAdam steps.
import * as lib from "@optim/radam";
import kernel from "@optim/radam/radam.wasm";
import other from "./other.wasm";
import { prng, runCase } from "../shared_case.mjs";

/** What `run` threw, as `Name: message`, or "no error". */
async function said(run) {
  try {
    await run();
    return "no error";
  } catch (e) {
    return `${e.name}: ${e.message}`;
  }
}

/** The bits of the params and moments of `state`, as one array of numbers. */
async function bits(state) {
  const p = await lib.readParams(state), m = await lib.readMoments(state);
  const out = [];
  for (const record of [p, m.exp_avg, m.exp_avg_sq]) {
    for (const name of Object.keys(record).sort()) {
      out.push(...new Uint32Array(record[name].slice().buffer));
    }
  }
  return out;
}

/** `steps` RAdam steps of a model of `n` parameters (and a small tensor) on `backend`. */
async function train(backend, states, n, steps) {
  const rand = prng(7);
  const values = (k, scale) => Float32Array.from({ length: k }, () => (rand() * 2 - 1) * scale);
  let state = await lib.radam({ lr: 1e-2, weightDecay: 1e-2, backend, states })
    .init({ w: values(n, 1), b: values(33, 1) });
  const grads = { w: values(n, 0.1), b: values(33, 0.1) };
  for (let t = 0; t < steps; t++) {
    for (const name of state.names) state.grads[name].set(grads[name]);
    state = lib.step(state);
  }
  return state;
}

/** The same steps on js and on `backend` ("auto" or "wasm"): the backends and whether bits agree. */
async function sameBits(backend, states) {
  const a = await train(backend, states, 5000, 20),
    b = await train("js", states, 5000, 20);
  const [x, y] = [await bits(a), await bits(b)];
  return {
    backend: a.backend,
    same: x.length > 0 && x.length === y.length &&
      x.every((v, i) => v === y[i]),
  };
}

/** What `run` resolves to, or its error as `Name: message`. */
async function attempt(run) {
  try {
    return await run();
  } catch (e) {
    return `${e.name}: ${e.message}`;
  }
}

/** What the library does with no more setup than the bundle's. */
async function before() {
  const tiny = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]); // an empty module
  return {
    compile: await said(() => new WebAssembly.Module(tiny)),
    auto: await runCase(lib, "auto"),
    wasm: await attempt(() => runCase(lib, "wasm")),
    radam: await attempt(() => sameBits("auto", "32bit")),
    radam8bit: await attempt(() => sameBits("wasm", "8bit")),
  };
}

async function runAll() {
  const without = await before();
  const notModule = await said(() => lib.setWasmModule(new Uint8Array(8)));
  // Another module (one memory, exported): refused, the kernel kept.
  const otherModule = await said(() => lib.setWasmModule(other));
  lib.setWasmModule(kernel);
  const loaded = await lib.loadState(
    await lib.saveState(await train("js", "32bit", 100, 1)),
  );
  const given = {
    auto: await runCase(lib, "auto"),
    wasm: await runCase(lib, "wasm"),
    radam: await sameBits("auto", "32bit"),
    radam8bit: await sameBits("wasm", "8bit"),
    loaded: loaded.backend,
    threads: await said(() => lib.radam({ threads: 2 }).init({ w: new Float32Array(8) })),
  };
  return { without, notModule, otherModule, given };
}

async function bench(url) {
  const backend = url.searchParams.get("backend");
  const n = Number(url.searchParams.get("n")),
    steps = Number(url.searchParams.get("steps"));
  if (backend === "wasm") lib.setWasmModule(kernel);
  const state = await train(backend, "32bit", n, steps);
  return { backend: state.backend, step: state.step };
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const routes = { "/case": runAll, "/bench": () => bench(url) };
    if (!Object.hasOwn(routes, url.pathname)) {
      return new Response(null, { status: 404 });
    }
    try {
      const body = await routes[url.pathname]();
      return Response.json(body);
    } catch (e) {
      return Response.json({ error: String(e && e.stack || e) }, {
        status: 500,
      });
    }
  },
};
