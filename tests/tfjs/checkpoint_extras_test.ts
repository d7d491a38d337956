/**
 * The gradients accumulated (option `gradientAccumulationSteps`) and the moving averages (option
 * `ema`) in the checkpoints of `optimizer.state`: K calls, `saveState`, `optimizer.loadState` in a
 * new optimizer, M calls give the bits of K + M on tfjs's cpu and wasm backends; the core
 * `loadState` ignores them; malformed ones are refused, nothing changed; a checkpoint without
 * them holds nothing more.
 */
import assert from "node:assert/strict";
import { CheckpointError, loadState, radam, ranger, readParams, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer, type TfOptimizerOptions } from "../../tfjs.ts";
import { parseSafetensors, type TensorOut, writeSafetensors } from "../../base/safetensors.ts";
import { CPU_BACKENDS, seededVars, stepWith, tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("ckextras");

/** The tensors and metadata of a checkpoint, its data copied. */
function tensorsOf(bytes: Uint8Array): { tensors: TensorOut[]; metadata: Record<string, string> } {
  const file = parseSafetensors(bytes);
  const tensors = [...file.tensors].map(([name, e]): TensorOut => {
    const raw = bytes.slice(file.dataStart + e.begin, file.dataStart + e.end);
    const data = e.dtype === "F32"
      ? new Float32Array(raw.buffer)
      : e.dtype === "I8"
      ? new Int8Array(raw.buffer)
      : raw;
    return { name, shape: e.shape, data };
  });
  return { tensors, metadata: { ...file.metadata } };
}

/** `bytes` with its tensors and metadata changed by `change`. */
function rebuilt(
  bytes: Uint8Array,
  change: (tensors: TensorOut[], metadata: Record<string, string>) => TensorOut[] | void,
): Uint8Array {
  const { tensors, metadata } = tensorsOf(bytes);
  return writeSafetensors(change(tensors, metadata) ?? tensors, metadata);
}

/** A RegExp's source matching `text`, quoted as JSON, literally. */
function escaped(text: string): string {
  return JSON.stringify(text).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Copies of `vars` under the same names (a new invocation's model), the old ones disposed. */
function remade(vars: tf.Variable[]): tf.Variable[] {
  const values = vars.map((v) => [v.name, v.shape, v.dataSync().slice()] as const);
  tf.dispose(vars);
  return values.map(([name, shape, data]) => tf.variable(tf.tensor(data, shape), true, name));
}

/** The optimizer's weights by name (the variables' prefix left out), values copied. */
async function weightsOf(opt: TfOptimizer): Promise<[string, number[]][]> {
  return (await opt.getWeights()).map((w) => [
    w.name.replace(/^ckextras\d+\//, ""),
    [...w.tensor.dataSync()],
  ]);
}

const CASES: [string, () => TfOptimizer][] = [
  ["accumulation", () => tfOptimizer(radam({ lr: 1e-2 }), { gradientAccumulationSteps: 4 })],
  ["ema", () => tfOptimizer(radam({ lr: 1e-2 }), { ema: { momentum: 0.9 } })],
  [
    "both, Ranger",
    () => tfOptimizer(ranger({ lr: 1e-2, k: 3 }), { gradientAccumulationSteps: 3, ema: true }),
  ],
];

for (const backend of CPU_BACKENDS) {
  for (const [what, make] of CASES) {
    Deno.test(`tfjs: saveState(optimizer.state) → optimizer.loadState carries the sums and averages bit for bit, ${what}, ${backend}`, async () => {
      await useBackend(backend);
      const whole = seededVars(named, 1, 8), a = make();
      for (let t = 0; t < 13; t++) stepWith(a, whole, t);
      const b = make();
      let vars = seededVars(named, 1, 8);
      for (let t = 0; t < 6; t++) stepWith(b, vars, t);
      const bytes = await saveState(b.state!);
      const before = b.accumulatedBatches;
      b.dispose();
      vars = remade(vars);
      const c = make();
      await c.loadState(bytes);
      assert.equal(c.accumulatedBatches, before);
      for (let t = 6; t < 13; t++) stepWith(c, vars, t);
      assert.equal(c.iterations, a.iterations);
      assert.equal(c.accumulatedBatches, a.accumulatedBatches);
      vars.forEach((v, i) => assert.deepEqual(v.dataSync(), whole[i].dataSync(), v.name));
      assert.deepEqual(await weightsOf(c), await weightsOf(a));
      if (c.averages !== undefined) {
        c.averages.swap(), a.averages!.swap();
        vars.forEach((v, i) => assert.deepEqual(v.dataSync(), whole[i].dataSync(), v.name));
      }
      tf.dispose([...whole, ...vars]);
      a.dispose();
      c.dispose();
    });
  }
}

Deno.test("tfjs: a checkpoint of optimizer.state without sums or averages holds nothing more, and the core loadState ignores them", async () => {
  await useBackend("cpu");
  const vars = seededVars(named, 2, 8);
  const opt = tfOptimizer(radam(), { gradientAccumulationSteps: 4 });
  for (let t = 0; t < 4; t++) stepWith(opt, vars, t);
  const plain = await saveState(opt.state!);
  const plainFile = parseSafetensors(plain);
  assert.deepEqual([...plainFile.tensors.keys()].filter((n) => /\.(accum|average)$/.test(n)), []);
  assert.equal(plainFile.metadata.accum_count, undefined);
  // Byte for byte what the core writes of the same state.
  const again = await saveState(await loadState(plain));
  assert.deepEqual(again, plain);
  stepWith(opt, vars, 4);
  const bytes = await saveState(opt.state!);
  const file = parseSafetensors(bytes);
  assert.equal(file.metadata.accum_count, "1");
  const sums = [...file.tensors.keys()].filter((n) => n.endsWith(".accum"));
  assert.deepEqual(sums, vars.map((v) => `${v.name}.accum`));
  const state = await loadState(bytes);
  assert.equal(state.step, 1);
  assert.deepEqual(await readParams(state), await readParams(await loadState(plain)));
  assert.deepEqual(await saveState(state), plain); // ignored: not kept either
  tf.dispose(vars);
  opt.dispose();
});

Deno.test("tfjs: optimizer.loadState refuses malformed sums and averages, naming them, nothing changed", async () => {
  await useBackend("cpu");
  const vars = seededVars(named, 3, 8);
  const options: TfOptimizerOptions = {
    gradientAccumulationSteps: 4,
    ema: true,
  };
  const source = tfOptimizer(radam({ nonFinite: "throw" }), options);
  for (let t = 0; t < 6; t++) stepWith(source, vars, t);
  const bytes = await saveState(source.state!);
  source.dispose();
  const target = tfOptimizer(radam({ nonFinite: "throw" }), options);
  for (let t = 0; t < 5; t++) stepWith(target, vars, 10 + t);
  const before = await weightsOf(target);
  const kernel = vars[0].name;
  const sum = (t: TensorOut) => t.name === `${kernel}.accum`;
  const cases: [string, Uint8Array, ErrorConstructor, RegExp][] = [
    // (No count, or not F32: the core's check of tensors saved beside a state, first.)
    ["no count", rebuilt(bytes, (_, m) => void delete m.accum_count), RangeError, /accum_count/],
    // An out-of-range count is a damaged (or another optimizer's) file too: CheckpointError.
    ...["4", "0", "-1", "1.5", "2e0", " 2", "0x2", "", "1000000000000000"].map((
      count,
    ): [string, Uint8Array, ErrorConstructor, RegExp] => [
      `count ${JSON.stringify(count)}`,
      rebuilt(bytes, (_, m) => void (m.accum_count = count)),
      CheckpointError as ErrorConstructor,
      new RegExp(`"accum_count" must be an integer from 1 to 3 .*got ${escaped(count)}$`),
    ]),
    [
      "a count without sums (it was a TypeError: the core loaded it)",
      rebuilt(bytes, (ts) => ts.filter((t) => !t.name.endsWith(".accum"))),
      CheckpointError as ErrorConstructor,
      /lacks the gradients accumulated that its metadata "accum_count" counts/,
    ],
    [
      "a sum of another dtype",
      rebuilt(
        bytes,
        (ts) =>
          ts.map((t) =>
            sum(t) ? { ...t, shape: [t.data.byteLength], data: new Uint8Array(t.data.buffer) } : t
          ),
      ),
      RangeError,
      new RegExp(`"${kernel}.accum" is U8; expected F32`),
    ],
    [
      "a sum of another shape",
      rebuilt(bytes, (ts) => ts.map((t) => sum(t) ? { ...t, shape: [3, 8] } : t)),
      RangeError,
      new RegExp(`"${kernel}.accum".*\\[3,8\\]|"${kernel}.accum".*shape`),
    ],
    [
      "an average of another shape",
      rebuilt(
        bytes,
        (ts) => ts.map((t) => t.name === `${kernel}.average` ? { ...t, shape: [24] } : t),
      ),
      RangeError,
      new RegExp(`"${kernel}.average"`),
    ],
    [
      "a NaN sum",
      rebuilt(bytes, (ts) => void ((ts.find(sum)!.data as Float32Array)[5] = NaN)),
      RangeError,
      new RegExp(`"${kernel}.accum"\\[5\\] is NaN`),
    ],
    [
      "a NaN average",
      rebuilt(
        bytes,
        (ts) =>
          void ((ts.find((t) => t.name === `${kernel}.average`)!.data as Float32Array)[2] = NaN),
      ),
      RangeError,
      new RegExp(`"${kernel}.average"\\[2\\] is NaN`),
    ],
  ];
  for (const [what, file, type, message] of cases) {
    await assert.rejects(() => target.loadState(file), (e: Error) => {
      assert.ok(e instanceof type, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    });
    assert.deepEqual(await weightsOf(target), before, what);
  }
  // Without accumulation, sums are refused too (as setWeights refuses them); without ema,
  // averages are ignored.
  const plain = tfOptimizer(radam(), { ema: true });
  await assert.rejects(
    () => plain.loadState(bytes),
    (e: Error) => e instanceof CheckpointError && /"accum_count" must be absent/.test(e.message),
  );
  const noEma = tfOptimizer(radam(), { gradientAccumulationSteps: 4 });
  await noEma.loadState(bytes);
  assert.equal(noEma.accumulatedBatches, 2);
  tf.dispose(vars);
  for (const o of [target, plain, noEma]) o.dispose();
});

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs: one call per invocation (a new optimizer, loadState, one call, saveState) goes on as one run, sums and averages carried, ${backend}`, async () => {
    await useBackend(backend);
    const make = () =>
      tfOptimizer(ranger({ lr: 1e-2, k: 2 }), { gradientAccumulationSteps: 4, ema: true });
    const whole = seededVars(named, 4, 8), a = make();
    for (let t = 0; t < 11; t++) stepWith(a, whole, t);
    let vars = seededVars(named, 4, 8);
    let bytes: Uint8Array | undefined;
    for (let t = 0; t < 11; t++) {
      const opt = make();
      if (bytes !== undefined) await opt.loadState(bytes);
      stepWith(opt, vars, t);
      assert.notEqual(opt.state, undefined, `call ${t}`); // before the first step too
      bytes = await saveState(opt.state!);
      assert.equal(opt.accumulatedBatches, (t + 1) % 4);
      opt.dispose();
      vars = remade(vars);
    }
    const last = make();
    await last.loadState(bytes!);
    assert.equal(last.iterations, a.iterations);
    assert.equal(last.accumulatedBatches, 3);
    vars.forEach((v, i) => assert.deepEqual(v.dataSync(), whole[i].dataSync(), v.name));
    assert.deepEqual(await weightsOf(last), await weightsOf(a));
    tf.dispose([...whole, ...vars]);
    a.dispose();
    last.dispose();
  });
}

Deno.test("tfjs: optimizer.loadState takes the sums and averages as the bytes are at its call (transferred or reused before it resolves)", async () => {
  await useBackend("cpu");
  const vars = seededVars(named, 6, 8);
  const make = () => tfOptimizer(radam(), { gradientAccumulationSteps: 3, ema: true });
  const source = make();
  for (let t = 0; t < 4; t++) stepWith(source, vars, t);
  const bytes = await saveState(source.state!);
  source.dispose();
  const intact = make();
  await intact.loadState(bytes);
  const expected = await weightsOf(intact);
  assert.equal(intact.accumulatedBatches, 1);
  for (
    const [what, change] of [
      [
        "transferred",
        (b: Uint8Array) => void structuredClone(b, { transfer: [b.buffer as ArrayBuffer] }),
      ],
      ["reused", (b: Uint8Array) => void b.fill(0)],
    ] as const
  ) {
    const given = bytes.slice(), target = make();
    const loading = target.loadState(given);
    change(given);
    await loading;
    assert.equal(target.accumulatedBatches, 1, what);
    assert.deepEqual(await weightsOf(target), expected, what);
    target.dispose();
  }
  tf.dispose(vars);
  intact.dispose();
});
