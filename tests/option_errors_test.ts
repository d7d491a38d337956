import assert from "node:assert/strict";
import {
  adam,
  adamw,
  dispose,
  loadState,
  type OptimizerState,
  type ParamGroup,
  radam,
  readMoments,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import { saying } from "./util.ts";

Deno.test("invalid options throw RangeError/TypeError naming the option", () => {
  const cases: [() => unknown, ErrorConstructor, RegExp][] = [
    [() => radam({ lr: -1 }), RangeError, /lr must be ≥ 0, got -1/],
    [() => radam({ lr: NaN }), RangeError, /lr must be a finite number, got NaN/],
    [() => radam({ lr: Infinity }), RangeError, /lr must be a finite number/],
    // A wrong type is a TypeError, and every check says what it got the same way.
    [
      () => radam({ lr: "1e-3" as unknown as number }),
      TypeError,
      /Option lr must be a finite number, got a string "1e-3"/,
    ],
    [
      () => radam({ eps: null as unknown as number }),
      TypeError,
      /Option eps must be a finite number, got null/,
    ],
    [
      () => radam({ maximize: "yes" as unknown as boolean }),
      TypeError,
      /Option maximize must be a boolean, got a string "yes"/,
    ],
    [
      () => radam({ threads: "2" as unknown as number }),
      TypeError,
      /Option threads must be an integer from 1 to 256, got a string "2"/,
    ],
    [
      () => radam({ backend: 1 as unknown as "js" }),
      TypeError,
      /Option backend must be one of auto, wasm, js, webgpu, got 1/,
    ],
    [
      () => radam({ betas: "0.9" as unknown as [number, number] }),
      TypeError,
      /Option betas must be an array of two numbers \[β1, β2\], got a string "0.9"/,
    ],
    [
      () => radam({ groups: [{ match: "bias" as unknown as RegExp }] }),
      TypeError,
      /Option groups\[0\].match must be a RegExp or a function of the name, got a string "bias"/,
    ],
    [() => radam(5 as unknown as object), TypeError, /Options of radam must be an object, got 5/],
    [() => radam({ eps: -1e-8 }), RangeError, /eps must be ≥ 0/],
    [() => radam({ betas: [1, 0.999] }), RangeError, /betas\[0\] must be ≥ 0 and < 1, got 1/],
    [() => radam({ betas: [-0.1, 0.999] }), RangeError, /betas\[0\]/],
    [() => radam({ betas: [0.9, 1] }), RangeError, /betas\[1\] must be ≥ 0 and < 1, got 1/],
    [() => radam({ betas: [0.9, NaN] }), RangeError, /betas\[1\] must be a finite number/],
    // An array of the wrong length says how long it was (not only "got Array").
    [
      () => radam({ betas: [0.9] as unknown as [number, number] }),
      TypeError,
      /Option betas must be an array of two numbers \[β1, β2\], got Array\(1\)$/,
    ],
    [() => radam({ weightDecay: -0.1 }), RangeError, /weightDecay must be ≥ 0/],
    [() => radam({ threshold: 3 }), RangeError, /threshold must be ≥ 4/],
    [() => radam({ maximize: 1 as unknown as boolean }), TypeError, /maximize must be a boolean/],
    [() => radam({ backend: "cuda" as "js" }), RangeError, /backend must be one of/],
    [
      () => radam({ states: "4bit" as "8bit" }),
      RangeError,
      /Option states must be one of 32bit, 8bit, got a string "4bit"/,
    ],
    [
      () => radam({ states: 8 as unknown as "8bit" }),
      TypeError,
      /Option states must be one of 32bit, 8bit, got 8/,
    ],
    [() => radam({ lrr: 1 } as unknown as object), TypeError, /Unknown option lrr/],
    // A group's misspelled setting (PyTorch's weight_decay, or lr for lrScale) is not ignored.
    [
      () => adamw({ groups: [{ match: /bias/, weight_decay: 0 } as unknown as ParamGroup] }),
      TypeError,
      /Unknown option weight_decay for groups\[0\]; expected one of match, lrScale, weightDecay/,
    ],
    [
      () => radam({ groups: [{ match: /a/ }, { match: /b/, lr: 1 } as unknown as ParamGroup] }),
      TypeError,
      /Unknown option lr for groups\[1\]/,
    ],
    [() => adam({ threshold: 5 } as unknown as object), TypeError, /Unknown option threshold/],
    [() => radam("fast" as unknown as object), TypeError, /must be an object/],
  ];
  for (const [make, type, message] of cases) {
    assert.throws(make, (e: Error) => {
      assert.ok(e instanceof type, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
  }
});
Deno.test("init and loadState refuse options they do not take, and a device that is not one", async () => {
  const opt = radam();
  const params = { w: new Float32Array(2) };
  await assert.rejects(
    () => opt.init(params, { backend: "js" } as never),
    saying(TypeError, "Unknown option backend for init; expected one of device"),
  );
  await assert.rejects(
    () => opt.init(params, { device: {} as GPUDevice }),
    saying(
      TypeError,
      "Option device must be a GPUDevice (await adapter.requestDevice()), got Object",
    ),
  );
  const bytes = await saveState(await opt.init(params));
  await assert.rejects(
    () => loadState(bytes, { learningRate: 1e-4 } as never),
    saying(
      TypeError,
      "Unknown option learningRate for loadState; expected one of backend, lr, threads",
    ),
  );
  await assert.rejects(
    () => loadState(bytes, { device: "gpu" as never }),
    saying(
      TypeError,
      'Option device must be a GPUDevice (await adapter.requestDevice()), got a string "gpu"',
    ),
  );
  await assert.rejects(
    () => loadState(bytes.slice().buffer as never),
    saying(
      TypeError,
      "A checkpoint must be a Uint8Array, got ArrayBuffer (wrap it: new Uint8Array(buffer))",
    ),
  );
  assert.equal((await loadState(bytes, { lr: 1e-4 })).step, 0);
});

for (const backend of ["js", "wasm", "threads"] as const) {
  Deno.test(`${backend}: a schedule or gradient getter that uses its state mid-step is refused; the step completes`, async () => {
    // A schedule that stepped its own state ran the inner step, which emptied the outer step's
    // gradients: the outer one then threw "Cannot read properties of undefined (reading
    // 'byteOffset')".
    const options = backend === "threads"
      ? { backend: "wasm" as const, threads: 2, threadThreshold: 0 }
      : { backend };
    const params = { w: new Float32Array([1, -2, 3]), b: new Float32Array([0.5]) };
    const g = { w: new Float32Array([0.1, 0.2, -0.3]), b: new Float32Array([1]) };
    let live: OptimizerState | undefined;
    const refused: unknown[] = [];
    const settled: Promise<unknown>[] = [];
    let inside = false; // (the inner steps, were they taken, call the schedule too)
    const useIt = () => {
      if (live === undefined || inside) return;
      inside = true;
      const s = live;
      for (const use of [() => step(s, g), () => step(s), () => dispose(s)]) {
        try {
          use();
          refused.push("not refused");
        } catch (error) {
          refused.push(error);
        }
      }
      for (const read of [readParams, readMoments, saveState]) {
        settled.push(read(s).then(() => "not refused", (error) => error));
      }
      inside = false;
    };
    const opt = radam({ ...options, lr: (t) => (useIt(), 1e-2 * t) });
    const twinOpt = radam({ ...options, lr: (t) => 1e-2 * t });
    let state = await opt.init(params), twin = await twinOpt.init(params);
    try {
      live = state;
      state = step(state, g); // copied-in gradients: where they were lost
      live = state;
      state.grads.w.set(g.w);
      state.grads.b.set(g.b);
      state = step(state); // zero copy
      live = undefined;
      // A gradient getter that steps the state.
      const getter = {
        w: g.w,
        get b() {
          useIt();
          return g.b;
        },
      };
      live = state;
      state = step(state, getter);
      live = undefined;
      for (let t = 0; t < 3; t++) twin = step(twin, g);
      const errors = [...refused, ...await Promise.all(settled)];
      assert.equal(errors.length, 24); // 6 uses in 3 schedule calls and 1 getter
      for (const error of errors) {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /A step of this optimizer state is in progress/);
      }
      assert.equal(state.step, 3);
      assert.deepEqual(await readParams(state), await readParams(twin));
      assert.deepEqual(await readMoments(state), await readMoments(twin));
      // Still usable in every way after.
      assert.equal(step(state, g).step, 4);
    } finally {
      dispose(state);
      dispose(twin);
    }
  });
}
