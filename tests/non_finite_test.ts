/**
 * The default non-finite check without clipping (a test of the gradients' exponent bits, fused
 * into the copy of copied-in gradients, split across threads): it finds a NaN or ±Infinity at
 * any position of any tensor, on wasm, js and 2 threads, zero-copy and copied in, and nothing
 * else (huge finite values, subnormals, −0); a skipped step changes nothing; "throw" names the
 * first tensor and index; `lastGradNorm` is NaN unless clipping computes the norm.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  dispose,
  loadState,
  type OptimizerState,
  radam,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import { readAll } from "./cases.ts";
import { bits, saying } from "./util.ts";

const BACKENDS = [
  { label: "wasm", backend: "wasm", threads: 1 },
  { label: "js", backend: "js", threads: 1 },
  { label: "wasm on 2 threads", backend: "wasm", threads: 2 },
] as const;

/** Tensor lengths around the 16-element vector loop and the 16384-element runs of the check. */
const LENGTHS = [1, 3, 17, 16383, 16384, 16385, 40_003];

async function stateOn(
  which: (typeof BACKENDS)[number],
  lengths: readonly number[],
  nonFinite: "skip" | "throw" = "skip",
): Promise<OptimizerState> {
  const params: Record<string, Float32Array> = {};
  lengths.forEach((n, t) => params[`t${t}`] = Float32Array.from({ length: n }, (_, i) => i % 7));
  return await radam({
    backend: which.backend,
    threads: which.threads,
    threadThreshold: 0,
    nonFinite,
  }).init(params);
}

function gradsFor(lengths: readonly number[], value = 1e-3): Record<string, Float32Array> {
  const g: Record<string, Float32Array> = {};
  lengths.forEach((n, t) => g[`t${t}`] = new Float32Array(n).fill(value));
  return g;
}

for (const which of BACKENDS) {
  Deno.test(`${which.label}: a NaN or ±Infinity anywhere skips the step, finite values never do`, async () => {
    let s = await stateOn(which, LENGTHS);
    try {
      s = step(s, gradsFor(LENGTHS));
      assert.ok(Number.isNaN(s.lastGradNorm), "no norm without clipping");
      const rand = fc.sample(
        fc.record({
          tensor: fc.integer({ min: 0, max: LENGTHS.length - 1 }),
          where: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
          bad: fc.constantFrom(NaN, Infinity, -Infinity),
          copied: fc.boolean(),
        }),
        { numRuns: 24 },
      );
      let taken = 1, skipped = 0;
      for (const { tensor, where, bad, copied } of rand) {
        const g = gradsFor(LENGTHS);
        const name = `t${tensor}`;
        const i = Math.floor(where * g[name].length);
        // huge finite values, subnormals and −0 elsewhere are finite: never a skip
        g[name][0] = -3.4e38;
        g[name][g[name].length - 1] = 1e-45;
        if (g[name].length > 2) g[name][1] = -0;
        const before = await readAll(s);
        g[name][i] = bad;
        if (copied) s = step(s, g);
        else {
          for (const n of s.names) s.grads[n].set(g[n]);
          s = step(s);
        }
        skipped++;
        assert.equal(s.skippedSteps, skipped, `${bad} at ${name}[${i}] (copied: ${copied})`);
        assert.equal(s.step, taken);
        assert.deepEqual(await readAll(s), before);
        g[name][i] = 0.5;
        s = copied ? step(s, g) : (s.grads[name][i] = 0.5, step(s));
        taken++;
        assert.equal(s.step, taken);
        assert.equal(s.skippedSteps, skipped);
      }
    } finally {
      dispose(s);
    }
  });

  Deno.test(`${which.label}: a record mixing copies and the state's own slots is checked whole`, async () => {
    const lengths = [3, 5, 16390, 2, 7];
    let s = await stateOn(which, lengths);
    try {
      for (let bad = 0; bad < lengths.length; bad++) {
        for (const own of [bad, (bad + 1) % lengths.length]) {
          const g: Record<string, Float32Array> = gradsFor(lengths);
          s.grads[`t${own}`].fill(1e-3);
          g[`t${own}`] = s.grads[`t${own}`]; // passed as its own slot: not copied
          g[`t${bad}`][lengths[bad] - 1] = NaN;
          const skipped = s.skippedSteps;
          s = step(s, g);
          assert.equal(s.skippedSteps, skipped + 1, `NaN in t${bad}, t${own} given as its slot`);
        }
      }
      s = step(s, gradsFor(lengths));
      assert.equal(s.step, 1);
    } finally {
      dispose(s);
    }
  });

  Deno.test(`${which.label}: "throw" names the first tensor and index, zero-copy and copied`, async () => {
    const lengths = [5, 16385, 40_003];
    let s = await stateOn(which, lengths, "throw");
    try {
      s = step(s, gradsFor(lengths));
      const before = await readParams(s);
      for (const copied of [true, false]) {
        const g = gradsFor(lengths);
        g.t1[16384] = -Infinity;
        g.t2[7] = NaN;
        if (!copied) { for (const n of s.names) s.grads[n].set(g[n]); }
        assert.throws(() => copied ? step(s, g) : step(s), (e: Error) => {
          assert.ok(e instanceof RangeError);
          assert.match(e.message, /"t1".*-Infinity at index 16384/);
          return true;
        });
        assert.equal(s.step, 1);
        const after = await readParams(s);
        for (const n of s.names) assert.deepEqual(bits(after[n]), bits(before[n]));
      }
      s = step(s, gradsFor(lengths));
      assert.equal(s.step, 2);
    } finally {
      dispose(s);
    }
  });

  Deno.test(`${which.label}: "throw" names the first tensor in the order given, not the 8-bit arena's`, async () => {
    // The 8-bit arena puts the small tensors (f32 moments) first: the error named "b" here.
    for (const clipGradNorm of [undefined, 1]) {
      const options = {
        backend: which.backend,
        threads: which.threads,
        threadThreshold: 0,
        nonFinite: "throw",
        clipGradNorm,
      } as const;
      let s = await radam({ ...options, states: "8bit" }).init({
        w: new Float32Array(5000),
        b: new Float32Array(3),
      });
      try {
        assert.deepEqual(s.names, ["b", "w"]);
        const g = { w: new Float32Array(5000), b: new Float32Array(3) };
        g.w[4999] = NaN;
        g.b[1] = Infinity;
        for (const copied of [true, false]) {
          if (!copied) { for (const n of s.names) s.grads[n].set(g[n as "w" | "b"]); }
          assert.throws(
            () => copied ? step(s, g) : step(s),
            saying(RangeError, 'The gradient of parameter "w" holds NaN at index 4999'),
          );
        }
        assert.equal(s.step, 0);
        s = step(s, { w: new Float32Array(5000), b: new Float32Array(3) });
        assert.equal(s.step, 1);
        // A checkpoint of 32-bit moments (in the order given) loaded into 8 bits keeps it.
        const wide = await radam({ ...options, states: "32bit" }).init({
          w: new Float32Array(5000),
          b: new Float32Array(3),
        });
        const bytes = await saveState(wide);
        dispose(wide);
        dispose(s);
        const { backend, threads } = which;
        s = await loadState(bytes, { backend, threads, threadThreshold: 0, states: "8bit" });
        assert.deepEqual(s.names, ["b", "w"]);
        assert.throws(
          () => step(s, g),
          saying(RangeError, 'The gradient of parameter "w" holds NaN at index 4999'),
        );
      } finally {
        dispose(s);
      }
    }
  });

  Deno.test(`${which.label}: a state resumed from an 8-bit checkpoint names the tensor the uninterrupted run names`, async () => {
    // The checkpoint's tensor_order was the 8-bit arena's ("b" first): resumed, "throw" named
    // "b", where the uninterrupted run names "w", the first in the order given to init.
    const { backend, threads } = which;
    for (const clipGradNorm of [undefined, 1]) {
      const options = { backend, threads, threadThreshold: 0, nonFinite: "throw", clipGradNorm };
      const open: OptimizerState[] = [];
      try {
        let s = await radam({ ...options, nonFinite: "throw", states: "8bit" }).init({
          w: new Float32Array(5000).fill(0.5),
          b: new Float32Array(3).fill(0.5),
        });
        open.push(s);
        s = step(s, { w: new Float32Array(5000).fill(0.1), b: new Float32Array(3).fill(0.1) });
        open.push(s);
        const bytes = await saveState(s);
        const g = { w: new Float32Array(5000), b: new Float32Array(3) };
        g.w[4999] = NaN;
        g.b[1] = Infinity;
        const said = saying(RangeError, 'The gradient of parameter "w" holds NaN at index 4999');
        assert.throws(() => step(s, g), said);
        for (const states of ["8bit", "32bit"] as const) {
          const resumed = await loadState(bytes, { backend, threads, threadThreshold: 0, states });
          open.push(resumed);
          assert.deepEqual(resumed.names, states === "8bit" ? ["b", "w"] : ["w", "b"]);
          for (const copied of [true, false]) {
            if (!copied) { for (const n of resumed.names) resumed.grads[n].set(g[n as "w" | "b"]); }
            assert.throws(() => copied ? step(resumed, g) : step(resumed), said, states);
          }
        }
      } finally {
        for (const s of open) dispose(s);
      }
    }
  });

  Deno.test(`${which.label}: a missing or misshapen gradient of an 8-bit state is named first in the order given`, async () => {
    // The 8-bit arena puts "b" (f32 moments) first: its check named "b" here, as a 32-bit
    // state names "w"; and so did a state resumed from its checkpoint.
    const { backend, threads } = which;
    const init = () => ({ w: new Float32Array(5000), b: new Float32Array(3) });
    const cases = [
      [{}, saying(TypeError, 'Missing gradient for parameter "w"')],
      [
        { w: new Float32Array(4999), b: new Float32Array(2) },
        saying(RangeError, 'gradient of parameter "w" to have length 5000, got 4999'),
      ],
      [
        { w: [1, 2], b: [3] },
        saying(TypeError, 'Expected the gradient of parameter "w" to be a Float32Array'),
      ],
    ] as const;
    const open: OptimizerState[] = [];
    try {
      for (const states of ["32bit", "8bit"] as const) {
        const s = await radam({ backend, threads, threadThreshold: 0, states }).init(init());
        open.push(s);
        const resumed = await loadState(await saveState(s), { backend, threads });
        open.push(resumed);
        for (const state of [s, resumed]) {
          for (const [grads, said] of cases) {
            assert.throws(
              () => step(state, grads as unknown as Record<string, Float32Array>),
              said,
            );
          }
          assert.equal(state.step, 0);
        }
      }
    } finally {
      for (const s of open) dispose(s);
    }
  });

  Deno.test(`${which.label}: a schedule is called once for each t, not again while steps at it are skipped or refused`, async () => {
    // It was once called for every skipped or refused step, so a schedule that logged or
    // counted saw t = 2 three times here; it is called once for each t (before the check, so
    // that gradients it writes are checked), its value kept while steps at t are not taken.
    for (const nonFinite of ["skip", "throw"] as const) {
      for (const clipGradNorm of [undefined, 1]) {
        const seen: number[] = [];
        let s = await radam({
          backend: which.backend,
          threads: which.threads,
          threadThreshold: 0,
          nonFinite,
          clipGradNorm,
          lr: (t) => (seen.push(t), t === 4 && seen.length === 4 ? -1 : 1e-3),
        }).init({ w: new Float32Array(3), b: new Float32Array(2) });
        try {
          const good = () => ({ w: new Float32Array([1, 2, 3]), b: new Float32Array([4, 5]) });
          const bad = good();
          bad.b[1] = NaN;
          s = step(s, good());
          for (const copied of [true, false]) {
            if (!copied) { for (const n of s.names) s.grads[n].set(bad[n as "w" | "b"]); }
            if (nonFinite === "throw") {
              assert.throws(() => copied ? step(s, bad) : step(s), RangeError);
            } else s = copied ? step(s, bad) : step(s);
          }
          // Asked once for t = 2, before the check; its value kept while t = 2 is not taken.
          assert.deepEqual(seen, [1, 2], `${nonFinite}, clipGradNorm ${clipGradNorm}`);
          s = step(s, good());
          s = step(s, good());
          assert.deepEqual(seen, [1, 2, 3]);
          assert.equal(s.step, 3);
          assert.equal(s.skippedSteps, nonFinite === "skip" ? 2 : 0);
          // A step the schedule refuses changes nothing, the last norm included; asked again.
          const norm = s.lastGradNorm;
          assert.throws(() => step(s, { w: new Float32Array(3), b: new Float32Array(2) }));
          assert.ok(Object.is(s.lastGradNorm, norm));
          s = step(s, good());
          assert.deepEqual(seen, [1, 2, 3, 4, 4]);
          assert.equal(s.lastGradNorm, clipGradNorm ? Math.hypot(1, 2, 3, 4, 5) : NaN);
        } finally {
          dispose(s);
        }
      }
    }
  });

  Deno.test(`${which.label}: gradients a schedule writes are checked as nonFinite says`, async () => {
    // The schedule was called after the check: a NaN it wrote into the gradient slots (or,
    // copied in, into the gradients given) was stepped, whatever the policy.
    for (const nonFinite of ["skip", "throw"] as const) {
      for (const clipGradNorm of [undefined, 1]) {
        for (const copied of [true, false]) {
          const label = `${nonFinite}, clipGradNorm ${clipGradNorm}, copied ${copied}`;
          let poison: Float32Array[] = [];
          let s = await radam({
            backend: which.backend,
            threads: which.threads,
            threadThreshold: 0,
            nonFinite,
            clipGradNorm,
            lr: () => {
              for (const array of poison) array[array.length - 1] = NaN;
              return 1e-3;
            },
          }).init({ w: new Float32Array(3).fill(1), b: new Float32Array(2).fill(1) });
          try {
            const grads = { w: new Float32Array([1, 2, 3]), b: new Float32Array([4, 5]) };
            const slots = s.grads as Record<string, Float32Array>;
            if (!copied) { for (const n of s.names) slots[n].set(grads[n as "w" | "b"]); }
            poison = copied ? [grads.b, slots.b] : [slots.b];
            const before = await readAll(s);
            if (nonFinite === "throw") {
              assert.throws(() => copied ? step(s, grads) : step(s), RangeError, label);
            } else s = copied ? step(s, grads) : step(s);
            assert.equal(s.step, 0, label);
            assert.equal(s.skippedSteps, nonFinite === "skip" ? 1 : 0, label);
            assert.deepEqual(await readAll(s), before, label);
          } finally {
            dispose(s);
          }
        }
      }
    }
  });

  Deno.test(`${which.label}: with clipping the f64 norm is the check and is reported`, async () => {
    const lengths = [16385, 3];
    const opt = radam({
      backend: which.backend,
      threads: which.threads,
      threadThreshold: 0,
      clipGradNorm: 1,
    });
    let s = await opt.init(gradsFor(lengths, 0));
    try {
      const g = gradsFor(lengths, 0.5);
      s = step(s, g);
      const want = Math.sqrt((16385 + 3) * 0.25);
      assert.ok(Math.abs(s.lastGradNorm - want) <= 1e-12 * want);
      g.t1[2] = Infinity;
      s = step(s, g);
      assert.equal(s.skippedSteps, 1);
      assert.equal(s.lastGradNorm, Infinity);
    } finally {
      dispose(s);
    }
  });
}
