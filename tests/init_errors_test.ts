import assert from "node:assert/strict";
import { type ArenaLayout, planArena } from "../base/arena.ts";
import { planCompactArena } from "../base/arena_compact.ts";
import { checkWasmCapacity } from "../cpu/wasm_backend.ts";
import { adam, loadState, lookahead, radam, saveState } from "../mod.ts";
import { saying } from "./util.ts";

/** What a TensorFlow.js tensor looks like to the checks (tfjs is not imported by this suite). */
class Tensor {
  readonly shape: number[];
  constructor(readonly values: Float32Array) {
    this.shape = [values.length];
  }
  dataSync(): Float32Array {
    return this.values;
  }
}

Deno.test("init rejects bad params with a clear error", async () => {
  const opt = radam();
  await assert.rejects(() => opt.init({}), saying(RangeError, "at least one tensor"));
  await assert.rejects(() => opt.init(null as never), saying(TypeError, "got null"));
  await assert.rejects(() => opt.init([1, 2] as never), saying(TypeError, "got Array"));
  // Objects of a class are not records of tensors: their fields are not tensor names.
  await assert.rejects(
    () => opt.init(new Map([["w", new Float32Array(2)]]) as never),
    saying(TypeError, "Params must be a Float32Array or a record of named Float32Arrays, got Map"),
  );
  await assert.rejects(
    () => opt.init(new Tensor(new Float32Array(2)) as never),
    saying(TypeError, "got Tensor (a TensorFlow.js tensor: pass its values, `await tensor.data()`"),
  );
  await assert.rejects(
    () => opt.init({ w: new Tensor(new Float32Array(2)) } as never),
    saying(
      TypeError,
      'parameter "w" to be a Float32Array or { data: Float32Array, shape }, got Tensor (a TensorFlow.js',
    ),
  );
  await assert.rejects(
    () => opt.init({ w: { data: [1, 2], shape: [2] } } as never),
    saying(TypeError, "got Object whose data is Array(2) (convert it: new Float32Array(values))"),
  );
  await assert.rejects(
    () => opt.init({ w: { data: new Float64Array(2), shape: [2] } } as never),
    saying(
      TypeError,
      "got Object whose data is Float64Array (convert it: new Float32Array(values))",
    ),
  );
  await assert.rejects(
    () => opt.init({ w: { data: new Float32Array(6), shape: "2x3" } } as never),
    saying(
      TypeError,
      'shape of parameter "w" to be an array of integers from 0 to 2⁵³ − 1, got a string "2x3"',
    ),
  );
  await assert.rejects(
    () => opt.init({ w: { data: new Float32Array(6), shape: [2, 1.5] } }),
    saying(TypeError, "got [2, 1.5]"),
  );
  // An empty tensor with a dimension past 2⁵³ − 1 trained and saved, but its checkpoint was
  // refused on load (a file's shapes are safe integers).
  for (const big of [2 ** 53, 1e300]) {
    await assert.rejects(
      () => opt.init({ w: { data: new Float32Array(0), shape: [big, 0] } }),
      saying(TypeError, `got [${big}, 0]`),
    );
  }
  await assert.rejects(
    () => opt.init({ w: new Float64Array(2) } as never),
    saying(
      TypeError,
      'parameter "w" to be a Float32Array or { data: Float32Array, shape }, got Float64Array',
    ),
  );
  await assert.rejects(
    () => opt.init({ w: new Float32Array([1, NaN]) }),
    saying(RangeError, 'parameter "w" to hold finite numbers, got NaN at index 1'),
  );
  await assert.rejects(
    () => opt.init(new Float32Array([Infinity])),
    saying(RangeError, "the parameter tensor to hold finite numbers"),
  );
  // JSON.parse makes an own "__proto__" key, which a plain record could not hold
  const params = JSON.parse('{"__proto__": 1, "w": 2}');
  params.__proto__ = new Float32Array(2);
  params.w = new Float32Array(2);
  assert.deepEqual(Object.keys(params), ["__proto__", "w"]);
  await assert.rejects(() => opt.init(params), saying(TypeError, 'may not be named "__proto__"'));
});

Deno.test("init refuses tensor names a checkpoint could not hold apart, naming both", async () => {
  const t = () => new Float32Array(4096);
  const cases: [() => Promise<unknown>, string][] = [
    [() => radam().init({ w: t(), "w.exp_avg": t() }), '"w.exp_avg" twice, as the exp_avg of "w"'],
    [() => adam({ backend: "js" }).init({ w: t(), "w.exp_avg_sq": t() }), "exp_avg_sq of"],
    [() => lookahead(adam()).init({ w: t(), "w.slow": t() }), 'the slow of "w"'],
    [
      () => radam().init({ w: t(), "w.exp_avg.codes": t() }),
      'the exp_avg of "w" (codes)',
    ],
    [() => radam().init({ __metadata__: t() }), "the header's metadata"],
  ];
  for (const [init, words] of cases) await assert.rejects(init, saying(TypeError, words));
  // Without LookAhead, "w.slow" is a name like any other: saved and loaded, in both formats.
  for (const states of ["32bit", "8bit"] as const) {
    const state = await radam({ states }).init({ w: t(), "w.slow": t(), "w.scales": t() });
    const back = await loadState(await saveState(state));
    assert.deepEqual(Object.keys(back.params).sort(), ["w", "w.scales", "w.slow"]);
  }
});

Deno.test("a model too large for 32-bit wasm memory is refused before allocating", async () => {
  // 5 tensors of 64M elements: 320M parameters need 5 GiB of arena. (Five arrays, not one given
  // five times, which init refuses; zeros, read and never written, take the OS's zero page.)
  const big = () => new Float32Array(64 * 1024 * 1024);
  const params = { a: big(), b: big(), c: big(), d: big(), e: big() };
  await assert.rejects(
    () => radam({ backend: "wasm" }).init(params),
    (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /335544320 parameters/);
      assert.match(e.message, /more than 32-bit WebAssembly memory can address \(4 GiB\)/);
      return true;
    },
  );
});

Deno.test("the too-large refusal advises 8-bit states only where they would shrink the arena", () => {
  const advice = 'use states: "8bit"';
  const refusal = (layout: ArenaLayout) => {
    try {
      checkWasmCapacity(layout);
    } catch (e) {
      assert.ok(e instanceof RangeError);
      return e.message;
    }
    assert.fail("not refused");
  };
  // 32-bit moments: 8 bits would shrink them.
  assert.ok(refusal(planArena(["w"], [300_000_000])).includes(advice));
  // Already 8-bit (450M parameters, padded to whole blocks in the arena: the count is the
  // model's), or a rule that keeps no moment (SGD without momentum): nothing to shrink.
  const compact = refusal(
    planCompactArena(["w"], [450_000_000], { moments: 2, nonNegative: [false, true] }),
  );
  assert.ok(!compact.includes(advice), compact);
  assert.match(compact, /^The model has 450000000 parameters/);
  const plain = refusal(planArena(["w"], [600_000_000], { moments: 0 }));
  assert.ok(!plain.includes(advice), plain);
  assert.match(plain, /Split the parameters between several optimizers, or use the webgpu backend/);
});
