/**
 * What a checkpoint of many tensors leaves to the collector, per tensor, told by counts: loading
 * one sorts nothing and makes no Set for each tensor (its header's entries were sorted twice,
 * and a Set was made for each entry's keys); saving one makes no view of each tensor's bytes,
 * and writes its header without an object of every entry (the bytes are those
 * `JSON.stringify` wrote of that object).
 *
 * Counted at 50 and 200 tensors (tests/work_counts.ts): what is made once a load, whatever
 * the tensors, counts the same at both.
 */
import assert from "node:assert/strict";
import { counted, made } from "./work_counts.ts";
import { loadState, radam, readParams, saveState } from "../mod.ts";
import {
  headerJsonLength,
  parseSafetensors,
  type TensorOut,
  writeSafetensors,
} from "../base/safetensors.ts";

/** `n` parameters of 3 elements, in names of one length. */
function paramsOf(n: number): Record<string, Float32Array> {
  const params: Record<string, Float32Array> = {};
  for (let i = 0; i < n; i++) {
    params[`layers.${String(i).padStart(7, "0")}.b`] = new Float32Array([i, -i, 1]);
  }
  return params;
}

/** A checkpoint of RAdam's state of `n` parameters (3n tensors). */
async function fileOf(n: number): Promise<Uint8Array> {
  return await saveState(await radam({ lr: 1e-2 }).init(paramsOf(n)));
}

Deno.test("loadState sorts no tensors of a checkpoint written in order", async () => {
  const [few, many] = [await fileOf(50), await fileOf(200)];
  await loadState(few); // (what is done once, the first time, is not counted)
  const a = await counted(async () => void await loadState(few));
  const b = await counted(async () => void await loadState(many));
  assert.equal(b.get("Array.sort") ?? 0, a.get("Array.sort") ?? 0, "sorted at 50 and 200");
});

Deno.test("loadState makes no Set for each tensor of a checkpoint", async () => {
  const [few, many] = [await fileOf(50), await fileOf(200)];
  await loadState(few);
  const a = await made(async () => void await loadState(few));
  const b = await made(async () => void await loadState(many));
  assert.equal(b.get("Set") ?? 0, a.get("Set") ?? 0, "Sets made at 50 and 200 parameters");
});

Deno.test("loadState checks a header whose entries are not in the order of their offsets", async () => {
  const bytes = await fileOf(3);
  const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  const { __metadata__, ...tensors } = header;
  const reversed = { __metadata__, ...Object.fromEntries(Object.entries(tensors).reverse()) };
  const json = new TextEncoder().encode(JSON.stringify(reversed).padEnd(length));
  const out = bytes.slice();
  out.set(json, 8);
  const state = await loadState(out);
  assert.deepEqual(await loadState(bytes).then((s) => s.names), state.names);
  // The second tensor's offsets made the first's (shorter JSON): an overlap, refused as before.
  const [first, second] = Object.keys(tensors);
  const overlapping = {
    ...header,
    [second]: { ...tensors[second], data_offsets: tensors[first].data_offsets },
  };
  const bad = bytes.slice();
  bad.set(new TextEncoder().encode(JSON.stringify(overlapping).padEnd(length)), 8);
  await assert.rejects(loadState(bad), /overlaps another/);
});

Deno.test("saveState makes no byte view for each tensor it writes", async () => {
  const [few, many] = [await radam().init(paramsOf(50)), await radam().init(paramsOf(200))];
  await saveState(few);
  const a = await made(async () => void await saveState(few));
  const b = await made(async () => void await saveState(many));
  assert.equal(b.get("Uint8Array") ?? 0, a.get("Uint8Array") ?? 0, "made at 50 and 200 parameters");
});

/** The header `JSON.stringify` writes of the object of these tensors, in this order. */
function headerByObject(tensors: TensorOut[], metadata: Record<string, string>): string {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const end = offset + t.data.byteLength;
    const dtype = t.data instanceof Float32Array
      ? "F32"
      : t.data instanceof Int8Array
      ? "I8"
      : "U8";
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  return JSON.stringify(header);
}

Deno.test("writeSafetensors writes the header JSON.stringify writes of its object", () => {
  const f = (n: number) => new Float32Array(n).map((_, i) => i - 1.5);
  const cases: [string, TensorOut[], Record<string, string>][] = [
    ["plain names", [
      { name: "w", shape: [2, 3], data: f(6) },
      { name: "b", shape: [], data: f(1) },
      { name: "e", shape: [0, 4], data: f(0) },
    ], { format: "x", "1": "index key" }],
    ["names to escape, bytes last", [
      { name: 'a "quoted" \\ name\n', shape: [1], data: f(1) },
      { name: "ünï €😀", shape: [12], data: f(12) },
      { name: "codes", shape: [3], data: new Int8Array([-1, 0, 1]) },
      { name: "ucodes", shape: [2], data: new Uint8Array([255, 7]) },
    ], { 'quote"': "ü\u0001" }],
    ["a name that is an array index comes first", [
      { name: "w", shape: [2], data: f(2) },
      { name: "10", shape: [1], data: f(1) },
      { name: "2", shape: [1], data: f(1) },
      { name: "01", shape: [1], data: f(1) },
    ], {}],
    ["an F32 after a byte", [
      { name: "u", shape: [1], data: new Uint8Array([9]) },
      { name: "w", shape: [3], data: f(3) },
    ], {}],
  ];
  for (const [what, tensors, metadata] of cases) {
    const bytes = writeSafetensors(tensors, metadata);
    const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const json = new TextDecoder().decode(bytes.subarray(8, 8 + length)).trimEnd();
    assert.equal(json, headerByObject(tensors, metadata), what);
    assert.equal(
      headerJsonLength(
        tensors.map((t) => ({
          name: t.name,
          shape: t.shape,
          dtype: t.data instanceof Float32Array ? "F32" : t.data instanceof Int8Array ? "I8" : "U8",
          byteLength: t.data.byteLength,
        })),
        metadata,
      ),
      new TextEncoder().encode(json).length,
      what,
    );
    const parsed = parseSafetensors(bytes);
    for (const t of tensors) {
      const e = parsed.tensors.get(t.name)!;
      const at = parsed.dataStart + e.begin;
      const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      assert.deepEqual(bytes.subarray(at, parsed.dataStart + e.end), data, `${what}: ${t.name}`);
    }
  }
});

Deno.test("readParams defines nothing per tensor on each Promise it returns", async () => {
  const [few, many] = [await radam().init(paramsOf(50)), await radam().init(paramsOf(200))];
  await readParams(few), await readParams(many); // (a state's first read makes what is shared)
  const a = await counted(async () => void await readParams(few));
  const b = await counted(async () => void await readParams(many));
  const key = "Object.defineProperty";
  assert.equal(b.get(key) ?? 0, a.get(key) ?? 0, `${key} at 50 and 200 parameters`);
  // The hint of a read not awaited is as it was, whichever state's Promise is read.
  for (const state of [few, many, few]) {
    const pending = readParams(state) as unknown as Record<string, unknown>;
    assert.throws(() => pending["layers.0000001.b"], /await readParams\(state\)\)\["layers/);
    assert.equal(pending.missing, undefined);
    assert.deepEqual(Object.keys(pending), []);
    assert.ok(pending instanceof Promise);
    assert.deepEqual((await pending)["layers.0000001.b"], new Float32Array([1, -1, 1]));
  }
});
