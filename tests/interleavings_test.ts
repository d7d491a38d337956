/**
 * Concurrency of the core API on the CPU backends (wasm, two threads, js): programs of steps,
 * bad steps, reads, checkpoints (loaded again), stale handles, steps whose gradient getter calls
 * back into the state, and dispose, on one or two lines of states at once, their Promises
 * awaited or not and released in orders fast-check's scheduler draws. Every outcome equals that
 * of the same program run sequentially, each Promise awaited at its call (tests/interleavings.ts):
 * a read or a checkpoint holds the state as it was at its call, acknowledged steps are applied
 * once each in their order (the final checkpoint's bytes), a refused call changes nothing and
 * says why (a TypeError or RangeError), and nothing hangs or fails inside the library.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  disposeAll,
  lineArb,
  type LineCase,
  optimizerOf,
  outcomes,
  reference,
  runLine,
} from "./interleavings.ts";
import { adam, dispose, loadState, lookahead, saveState, step } from "../mod.ts";
import { saying } from "./util.ts";
import type { ArenaLayout } from "../base/arena.ts";
import type { HostBackend } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { initState } from "../core/init_state.ts";
import { ruleOf } from "../core/origins.ts";
import { createJsBackend } from "../cpu/js_backend.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import { createWasmBackend } from "../cpu/wasm_backend.ts";

const BACKENDS: [string, Record<string, unknown>, number][] = [
  ["wasm", { backend: "wasm" }, 40],
  ["js", { backend: "js" }, 40],
  ["threads", { backend: "wasm", threads: 2, threadThreshold: 0 }, 12],
];

/** The options a checkpoint of a line is loaded with: the backend's, `lr` unchanged. */
function loadOptionsOf(backend: Record<string, unknown>): Record<string, unknown> {
  const { backend: name, threads, threadThreshold } = backend;
  return { backend: name, ...(threads ? { threads, threadThreshold } : {}) };
}

/** Runs `lines` at once under `scheduler`, then each alone, sequentially; compares outcomes. */
async function compare(
  lines: LineCase[],
  backend: Record<string, unknown>,
  s: fc.Scheduler,
): Promise<void> {
  const load = loadOptionsOf(backend);
  const runs = lines.map((c) =>
    runLine(c, optimizerOf(c, backend), load, (p) => {
      p.catch(() => {}); // rejections are checked where they are released
      return s.schedule(p);
    })
  );
  const done = await s.waitFor(Promise.all(runs));
  await s.waitAll(); // the Promises no program awaited
  const got = [];
  for (const run of done) {
    got.push(await s.waitFor(outcomes(run)));
    await s.waitAll();
  }
  done.forEach(disposeAll);
  for (let i = 0; i < lines.length; i++) {
    const c = lines[i];
    const alone = await reference(c, optimizerOf(c, { backend: backend.backend }), {
      backend: backend.backend,
    });
    const expected = await outcomes(alone);
    disposeAll(alone);
    assert.deepEqual(got[i], expected);
  }
}

for (const [name, backend, numRuns] of BACKENDS) {
  Deno.test(`interleavings (${name}): every call's outcome is the sequential run's, in any order the scheduler releases Promises`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb(10, name !== "threads"), { minLength: 1, maxLength: 2 }),
        fc.scheduler(),
        (lines, s) => compare(lines, backend, s),
      ),
      { numRuns },
    );
  });
}

/** A backend of `options` (a BACKENDS entry's) for `layout`, made after an await: never filled. */
async function makeBackend(
  config: Settings<unknown>,
  options: Record<string, unknown>,
  layout: ArenaLayout,
): Promise<HostBackend> {
  await Promise.resolve();
  if (options.backend === "js") return createJsBackend(layout, ruleOf(config));
  return options.threads ? createThreadedWasmBackend(layout, 2) : createWasmBackend(layout);
}

/** Runs `f` with `Worker` counting the workers started and not terminated; returns that count. */
async function liveWorkersAfter(f: () => Promise<void>): Promise<number> {
  const original = globalThis.Worker;
  const live = new Set<Worker>();
  globalThis.Worker = class extends original {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      live.add(this);
    }
    override terminate(): void {
      live.delete(this);
      super.terminate();
    }
  };
  try {
    await f();
  } finally {
    globalThis.Worker = original;
  }
  return live.size;
}

Deno.test("interleavings: loadState whose bytes are transferred before it resolves loads them as they were at the call (copied during it), and starts only the loaded state's workers", async () => {
  for (const [name, backend] of BACKENDS) {
    const opt = adam({ lr: 1e-2, ...backend });
    const state = step(await opt.init({ w: new Float32Array([1, 2, 3]) }), {
      w: new Float32Array([0.5, -1, 2]),
    });
    const bytes = await saveState(state);
    const kept = bytes.slice();
    const live = await liveWorkersAfter(async () => {
      const loading = loadState(bytes, loadOptionsOf(backend));
      structuredClone(bytes.buffer, { transfer: [bytes.buffer] }); // e.g. posted to a worker
      const resumed = await loading;
      assert.deepEqual(await saveState(resumed), kept, name);
      dispose(resumed);
    });
    assert.equal(live, 0, `${name}: workers of the disposed load left running`);
    dispose(state);
  }
});

Deno.test("interleavings: init whose params are transferred after its call starts the state as they were; one copying them after an await rejects saying to leave them unchanged, and stops the workers it started", async () => {
  for (const [name, backend] of BACKENDS) {
    const opt = lookahead(adam({ lr: 1e-2, ...backend }));
    const live = await liveWorkersAfter(async () => {
      const b = new Float32Array([1, 2, 3]);
      const starting = opt.init({ a: new Float32Array(5), b });
      structuredClone(b.buffer, { transfer: [b.buffer] }); // e.g. posted to a worker
      const state = await starting; // (copied during the call, the kernel compiled)
      assert.deepEqual(state.params.b, new Float32Array([1, 2, 3]), name);
      dispose(state);
      // A backend made only after an await (as on WebGPU, or before the kernel compiles).
      const c = new Float32Array([1, 2, 3]);
      const later = (layout: ArenaLayout) => makeBackend(opt.settings, backend, layout);
      const refused = initState(opt.settings, { a: new Float32Array(5), c }, later);
      structuredClone(c.buffer, { transfer: [c.buffer] });
      await assert.rejects(
        refused,
        saying(
          TypeError,
          'The values of parameter "c" were detached (their ArrayBuffer transferred, or shrunk) before init()',
        ),
        name,
      );
    });
    assert.equal(live, 0, `${name}: workers of the refused init left running`);
  }
});
