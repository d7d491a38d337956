/**
 * Headers that lie about an 8-bit checkpoint (tests/checkpoint_codes_test.ts mutates its bytes):
 * a number of the header (offsets, shapes) replaced, two tensors' entries swapped, the metadata
 * that says how the moments are held changed. On a LookAhead(Lion) state of mixed tensors, each
 * file loads a working state with finite moments or is refused with a CheckpointError; no other
 * error, hang or crash.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { lion, lookahead, readMoments, readParams, saveState, step } from "../mod.ts";
import { join, loadOrRefused, split } from "./checkpoint_files.ts";

/** A checkpoint of LookAhead(Lion) with 8-bit moments: tensors of 4100, 3 and 4096 elements. */
async function sample(): Promise<Uint8Array> {
  const wave = (n: number, f: (i: number) => number) =>
    Float32Array.from({ length: n }, (_, i) => f(i));
  let s = await lookahead(lion({ lr: 0.01, states: "8bit" }), { k: 2 }).init({
    a: wave(4100, Math.sin),
    b: new Float32Array([0.1, 0.2, 3]),
    c: wave(4096, Math.cos),
  });
  for (let t = 0; t < 3; t++) {
    s = step(s, {
      a: wave(4100, (i) => Math.cos(i * t)),
      b: new Float32Array([1, -1, 2]),
      c: wave(4096, (i) => Math.sin(i * t)),
    });
  }
  return saveState(s);
}

const lieArb = fc.oneof(
  fc.record({
    kind: fc.constant("number" as const),
    which: fc.nat(),
    value: fc.constantFrom(
      "0",
      "1",
      "-1",
      "16",
      "17",
      "256",
      "4096",
      "4099",
      "4100",
      "3.5",
      "1e300",
      "null",
      "[]",
      "[17]",
      "[1,4100]",
      '"I8"',
      '"U8"',
      '"F32"',
    ),
  }),
  fc.record({ kind: fc.constant("swap" as const), a: fc.nat(), b: fc.nat() }),
  fc.record({
    kind: fc.constant("meta" as const),
    key: fc.constantFrom("states", "q8", "tensor_order", "optimizer"),
    value: fc.constantFrom("8bit", "32bit", "", '["c","b","a"]', '["a","c"]', "lion", "ranger"),
  }),
);

type Lie = typeof lieArb extends fc.Arbitrary<infer L> ? L : never;

function lie(good: Uint8Array, m: Lie): Uint8Array {
  const { header, data } = split(good);
  if (m.kind === "number") {
    const text = JSON.stringify(header);
    const numbers = [...text.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/g)];
    const hit = numbers[m.which % numbers.length];
    return join(text.slice(0, hit.index) + m.value + text.slice(hit.index! + hit[0].length), data);
  }
  if (m.kind === "swap") {
    const keys = Object.keys(header).filter((k) => k !== "__metadata__");
    const [x, y] = [keys[m.a % keys.length], keys[m.b % keys.length]];
    [header[x], header[y]] = [header[y], header[x]];
  } else {
    header.__metadata__[m.key] = m.value;
  }
  return join(JSON.stringify(header), data);
}

Deno.test("fuzz: 8-bit checkpoints whose header lies load a working state or throw a CheckpointError", async () => {
  const good = await sample();
  let loaded = 0, refused = 0;
  await fc.assert(
    fc.asyncProperty(lieArb, async (m) => {
      const bytes = lie(good, m);
      let state = await loadOrRefused(bytes);
      if (state === undefined) return void refused++;
      loaded++;
      for (const byName of Object.values(await readMoments(state))) {
        for (const x of Object.values(byName)) assert.ok(x.every(Number.isFinite), "finite");
      }
      const params = await readParams(state);
      state = step(state, Object.fromEntries(state.names.map((n) => [n, params[n].fill(1)])));
      assert.equal(state.step, Number(split(bytes).header.__metadata__.step) + 1);
    }),
    { numRuns: 2000 },
  );
  assert.ok(loaded > 0 && refused > loaded, `${loaded} loaded, ${refused} refused`);
});
