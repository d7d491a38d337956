/**
 * 8-bit moments stay codes (1 byte an element) from a `loadState` or `setWeights` until the step
 * that takes them: a checkpoint saved under gradient centralization (`gc`, a kernel held
 * transposed) loaded into an optimizer without it, as the other way round, gives its kernels'
 * codes back from `getWeights` as they were saved, marked with their order, and steps as the
 * optimizer given the same codes by `setWeights`; and the check that some loaded tensor fits a
 * variable of the model judges from shapes and sizes, reading no code.
 */
import assert from "node:assert/strict";
import { radam, readMoments, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import type { CompactMoment } from "../../base/arena.ts";
import { checkSomeTensorFits } from "../../tfjs/matching.ts";
import type { Kept } from "../../tfjs/kept.ts";
import { entryOf } from "../../tfjs/layout.ts";
import { clonedWeights, randoms, tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("codes");
/** A kernel held in 8 bits (4096 elements or more), and a bias (f32). */
const SHAPES = [[80, 70], [70]];

/** Variables of SHAPES, and the gradients of step `t`. */
function variables() {
  const names = [name("kernel"), name("bias")];
  const vars = SHAPES.map((s, i) =>
    tf.variable(tf.tensor(randoms(s[0] * (s[1] ?? 1), i + 3), s), true, names[i])
  );
  const grads = (t: number) =>
    Object.fromEntries(
      names.map((n, i) => [n, tf.tensor(randoms(vars[i].size, 17 * t + i), SHAPES[i])]),
    );
  return { names, vars, grads };
}

/** The values of weights, by name (codes as their int32 words). */
async function valuesOf(weights: { name: string; tensor: tf.Tensor }[]) {
  return new Map(
    await Promise.all(weights.map(async (w) => [w.name, await w.tensor.data()] as const)),
  );
}

Deno.test("tfjs: loadState across gc keeps 8-bit kernel codes as saved, marked with their order, until the step", async () => {
  await useBackend("cpu");
  for (const [fromGc, mark] of [[true, ".transposed"], [false, ""]] as const) {
    const label = fromGc ? "gc → no gc" : "no gc → gc";
    const v = variables();
    const a = tfOptimizer(radam({ lr: 1e-2, gc: fromGc, states: "8bit" }));
    for (let t = 0; t < 2; t++) {
      const g = v.grads(t);
      a.applyGradients(g);
      tf.dispose(Object.values(g));
    }
    const bytes = await saveState(a.state!);
    const given = await clonedWeights(a);
    const b = tfOptimizer(radam({ lr: 1e-2, gc: !fromGc, states: "8bit" }));
    await b.loadState(bytes);
    const loaded = await valuesOf(await b.getWeights());
    const kernel = v.names[0];
    for (const m of ["m", "v"]) {
      // Codes and scales as saved (the sender's own weights), not f32 moments (4 bytes each).
      assert.ok(!loaded.has(`${kernel}/${m}`), `${label}: ${kernel}/${m} decoded at load`);
      for (const part of ["codes", "scales"]) {
        const weight = `${kernel}/${m}${mark}.${part}`;
        const sent = given.find((w) => w.name === weight);
        assert.ok(sent && loaded.has(weight), `${label}: ${weight}`);
        assert.deepEqual(loaded.get(weight), await sent.tensor.data(), `${label}: ${weight}`);
      }
    }
    // The step takes them as it takes the same weights given to setWeights: bit for bit.
    const at = await Promise.all(v.vars.map(async (x) => (await x.data()).slice()));
    const g = v.grads(2);
    b.applyGradients(g);
    const after = await Promise.all(v.vars.map(async (x) => (await x.data()).slice()));
    v.vars.forEach((x, i) => x.assign(tf.tensor(at[i], SHAPES[i])));
    const c = tfOptimizer(radam({ lr: 1e-2, gc: !fromGc, states: "8bit" }));
    await c.setWeights(given);
    c.applyGradients(g);
    const twin = await Promise.all(v.vars.map((x) => x.data()));
    assert.deepEqual(twin, after, label);
    assert.deepEqual(await readMoments(c.state!), await readMoments(b.state!), label);
    tf.dispose([...Object.values(g), ...given.map((w) => w.tensor), ...v.vars]);
    for (const opt of [a, b, c]) opt.dispose();
  }
});

/** A moment's codes and scales that count the reads of either. */
function watched(n: number): { moment: CompactMoment; reads: () => number } {
  const codes = new Int8Array(n), scales = new Float32Array(Math.ceil(n / 256));
  let reads = 0;
  const moment = {
    get codes() {
      reads++;
      return codes;
    },
    get scales() {
      reads++;
      return scales;
    },
  };
  return { moment, reads: () => reads };
}

Deno.test("tfjs: the check that loaded 8-bit weights fit the model reads no code (from shapes and sizes)", async () => {
  await useBackend("cpu");
  const [rows, cols] = SHAPES[0], size = rows * cols;
  const k = tf.variable(tf.zeros([rows, cols]), true, name("kernel"));
  for (const gc of [false, true]) {
    const m = watched(size), v = watched(size);
    const codes = [m.moment, v.moment];
    // As setWeights reads `<kernel>/m.transposed.codes` with its f32 slow weights (shape known),
    // without them (sizes only), and as loadState reads a checkpoint of another gc (flat).
    const cases: Kept[] = [
      {
        entry: entryOf(k.name, [rows, cols], gc),
        sections: [],
        codes,
        codesTransposed: [!gc, !gc],
      },
      {
        entry: entryOf(k.name, [size], gc),
        sections: [],
        codes,
        codesTransposed: [!gc, !gc],
        sizes: [size - 3, size],
      },
      {
        entry: entryOf(k.name, [size], false),
        arenaShape: [size],
        sections: [],
        codes,
        codesTransposed: [!gc, !gc],
      },
    ];
    for (const [i, kept] of cases.entries()) {
      checkSomeTensorFits(new Map([[k.name, kept]]), 3, gc);
      const other = { ...kept, entry: entryOf(k.name, [rows + 1, cols], gc), sizes: undefined };
      assert.throws(() => checkSomeTensorFits(new Map([[k.name, other]]), 3, gc), RangeError);
      assert.equal(m.reads() + v.reads(), 0, `gc ${gc}, case ${i}: codes read`);
    }
  }
  k.dispose();
});
