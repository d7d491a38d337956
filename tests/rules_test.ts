/**
 * Every rule of the table (tests/rule_table.ts) on the CPU backends: each step against the
 * rule's float64 reference on random cases (every training-loop feature), wasm = js = threads bit
 * for bit, checkpoints (N steps, save, load on any CPU backend, M steps is N + M steps), the
 * tensors and metadata a checkpoint holds, the arena a state takes, hand-computed values, and
 * bad options.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { dispose, loadState, lookahead, readMoments, saveState, step } from "../mod.ts";
import { stateInternals } from "../core/state.ts";
import {
  assertSameBits,
  caseArb,
  caseData,
  checkAgainstReference,
  checkReferenceVector,
  checkVector,
  lrOf,
  optimizerFor,
} from "./cases.ts";
import { optimizerOf, RULE_TABLE } from "./rule_table.ts";

const CPU = ["wasm", "js"] as const;

for (const row of RULE_TABLE) {
  for (const backend of CPU) {
    Deno.test(`${row.rule}, ${backend}: every step matches the float64 reference on random cases`, async () => {
      await fc.assert(
        fc.asyncProperty(caseArb(row, 50), async (c) => {
          await checkAgainstReference(c, (params) => optimizerFor(c, backend).init(params));
        }),
        { numRuns: 150 },
      );
    });
  }

  Deno.test(`${row.rule}: wasm and js give the same bits at every step`, async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(row, 50), async (c) => {
        const { params, grads } = caseData(c);
        let wasm = await optimizerFor(c, "wasm").init(params);
        let js = await optimizerFor(c, "js").init(params);
        assert.equal(wasm.backend, "wasm");
        assert.equal(js.backend, "js");
        for (let t = 1; t <= c.steps; t++) {
          wasm = step(wasm, grads(t));
          js = step(js, grads(t));
          await assertSameBits(wasm, js, `step ${t}`);
        }
      }),
      { numRuns: 100 },
    );
  });

  Deno.test(`${row.rule}: 2 and 3 threads give the bits of one, every feature, at every step`, async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(row, 30), fc.constantFrom(2, 3), async (c, threads) => {
        const { params, grads } = caseData(c);
        let one = await optimizerFor(c, "wasm").init(params);
        let many = await optimizerFor(c, "wasm", { threads, threadThreshold: 0 }).init(params);
        try {
          assert.equal(one.threads, 1);
          assert.equal(many.threads, threads);
          for (let t = 1; t <= c.steps; t++) {
            one = step(one, grads(t));
            many = step(many, grads(t));
            await assertSameBits(many, one, `step ${t}`);
          }
        } finally {
          dispose(many);
        }
      }),
      { numRuns: 40 },
    );
  });

  Deno.test(`${row.rule}: N steps, save, load (any CPU backend, threads), M steps is N + M steps`, async () => {
    let resumedRuns = 0;
    const targets = [["js", 1], ["wasm", 1], ["wasm", 2]] as const;
    await fc.assert(
      fc.asyncProperty(
        caseArb(row, 0),
        fc.nat(),
        fc.constantFrom(...CPU),
        fc.constantFrom(...targets),
        async (c, cut, from, [to, threads]) => {
          const n = cut % (c.steps + 1);
          const { params, grads } = caseData(c);
          let straight = await optimizerFor(c, from).init(params);
          for (let t = 1; t <= n; t++) straight = step(straight, grads(t));
          let bytes: Uint8Array;
          try {
            bytes = await saveState(straight);
          } catch (e) {
            // A state gone non-finite (e.g. eps = 0 and a zero gradient) cannot be saved.
            assert.match((e as Error).message, /^Cannot checkpoint: .* is (NaN|-?Infinity|-)/);
            return;
          }
          const lr = c.schedule ? lrOf(c) : undefined;
          let resumed = await loadState(bytes, { backend: to, threads, threadThreshold: 0, lr });
          try {
            assert.equal(resumed.backend, to);
            assert.equal(resumed.step, straight.step);
            assert.equal(resumed.skippedSteps, straight.skippedSteps);
            assert.deepEqual(resumed.names, straight.names);
            for (let t = n + 1; t <= c.steps; t++) {
              straight = step(straight, grads(t));
              resumed = step(resumed, grads(t));
            }
            // (A state loaded and not stepped since has no norm of a last step.)
            await assertSameBits(resumed, straight, `${from} → ${to} × ${threads}`, n < c.steps);
          } finally {
            dispose(resumed);
          }
          resumedRuns++;
        },
      ),
      { numRuns: 100 },
    );
    assert.ok(resumedRuns >= 50, `only ${resumedRuns} of 100 cases could be saved`);
  });

  /** The first optimizer with its defaults, and the row's example. */
  const named = [{ optimizer: Object.keys(row.optimizers)[0], options: {} }, row.example];

  Deno.test(`${row.rule}: a checkpoint holds its params and moments, and the options of its factory`, async () => {
    for (const c of named) {
      const state = await optimizerOf(row, c, "auto").init({
        a: new Float32Array(5),
        b: new Float32Array(3),
      });
      assert.equal(stateInternals(state).config.rule, row.rule);
      assert.deepEqual(Object.keys(await readMoments(state)), row.moments(c));
      const bytes = await saveState(state);
      const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
      assert.deepEqual(
        Object.keys(header).filter((k) => k !== "__metadata__").sort(),
        ["a", "b"].flatMap((t) => [t, ...row.moments(c).map((m) => `${t}.${m}`)]).sort(),
      );
      assert.equal(header.__metadata__.optimizer, c.optimizer);
      if (c === named[0]) {
        assert.deepEqual(JSON.parse(header.__metadata__.hyperparameters), row.stored);
      }
      assert.equal(lookahead(optimizerOf(row, c, "auto")).name, `lookahead(${c.optimizer})`);
    }
  });

  Deno.test(`${row.rule}: the arena holds params, grads, the rule's moments (and slow weights)`, async () => {
    for (const c of named) {
      const sections = 2 + row.moments(c).length;
      const n = 1 << 20;
      const state = await optimizerOf(row, c, "auto").init({ w: new Float32Array(n) });
      const layout = stateInternals(state).backend.layout;
      assert.equal(layout.sectionCount, sections);
      // 4 bytes a parameter a section, and the gaps between sections (at most 5% of one).
      assert.ok(layout.byteLength <= sections * 4 * n * 1.05, `${layout.byteLength} bytes`);
      assert.ok(layout.byteLength >= sections * 4 * n);
      const slow = await lookahead(optimizerOf(row, c, "auto")).init({ a: new Float32Array(5) });
      assert.equal(stateInternals(slow).backend.layout.sectionCount, sections + 1);
    }
  });

  Deno.test(`${row.rule}: bad options name the option`, () => {
    for (const [make, type, message] of row.invalid) {
      assert.throws(make, (e: Error) => {
        assert.ok(e instanceof type, `${e.constructor.name}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      });
    }
  });

  for (const vector of row.vectors) {
    Deno.test(`${row.rule}: ${vector.name} (hand-computed; the reference, wasm and js)`, async () => {
      checkReferenceVector(row, vector);
      for (const backend of CPU) await checkVector(row, vector, backend);
    });
  }
}
