/**
 * What a checkpoint of many tensors leaves to the collector, per tensor, told by counts: loading
 * one sorts nothing and makes no Set for each tensor (its header's entries were sorted twice,
 * and a Set was made for each entry's keys).
 *
 * Counted at 50 and 200 tensors (tests/work_counts.ts): what is made once a load, whatever
 * the tensors, counts the same at both.
 */
import assert from "node:assert/strict";
import { counted, made } from "./work_counts.ts";
import { loadState, radam, saveState } from "../mod.ts";

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
