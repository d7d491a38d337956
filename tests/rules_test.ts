/**
 * Every rule of the table (tests/rule_table.ts) on the CPU backends, with 32-bit and with 8-bit
 * moments (`states`; tests/rule_table.ts `FORMATS`): each step against the rule's float64
 * reference on random cases (every training-loop feature; 8-bit moments within one code step of
 * the reference, teacher-forced: each step from the state's decoded moments), wasm = js =
 * threads bit for bit (codes and scales included), checkpoints (N steps, save, load on any CPU
 * backend, M steps is N + M steps), the tensors and metadata a checkpoint holds, the arena a
 * state takes, hand-computed values, and bad options.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { dispose, loadState, lookahead, readMoments, saveState, step } from "../mod.ts";
import { stateInternals } from "../core/state.ts";
import { Q8_VERSION } from "../base/q8.ts";
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
import { FORMATS, optimizerOf, RULE_TABLE } from "./rule_table.ts";

const CPU = ["wasm", "js"] as const;

type Row = (typeof RULE_TABLE)[number];
type Format = (typeof FORMATS)[number];

for (const row of RULE_TABLE) {
  for (const states of FORMATS) {
    const name = `${row.rule} (${states})`;
    stepSuite(row, states, name);
    checkpointSuite(row, states, name);
    checkpointContents(row, states, name);
    stateSuite(row, states, name);
  }
}

/** Each step against the reference, and the backends and threads against each other. */
function stepSuite(row: Row, states: Format, name: string): void {
  for (const backend of CPU) {
    Deno.test(`${name}, ${backend}: every step matches the float64 reference on random cases`, async () => {
      await fc.assert(
        fc.asyncProperty(caseArb(row, 50, true, states), async (c) => {
          await checkAgainstReference(c, (params) => optimizerFor(c, backend).init(params));
        }),
        { numRuns: 150 },
      );
    });
  }

  Deno.test(`${name}: wasm and js give the same bits at every step`, async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(row, 50, true, states), async (c) => {
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

  Deno.test(`${name}: 2 and 3 threads give the bits of one, every feature, at every step`, async () => {
    await fc.assert(
      fc.asyncProperty(
        caseArb(row, 30, true, states),
        fc.constantFrom(2, 3),
        async (c, threads) => {
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
        },
      ),
      { numRuns: 40 },
    );
  });
}

/** Checkpoints: a resume on any CPU backend, and what a checkpoint holds. */
function checkpointSuite(row: Row, states: Format, name: string): void {
  Deno.test(`${name}: N steps, save, load (any CPU backend, threads), M steps is N + M steps`, async () => {
    let resumedRuns = 0;
    const targets = [["js", 1], ["wasm", 1], ["wasm", 2]] as const;
    await fc.assert(
      fc.asyncProperty(
        caseArb(row, 0, true, states),
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
}

/** What a checkpoint holds: its tensors (codes and scales with 8-bit moments) and metadata. */
function checkpointContents(row: Row, states: Format, name: string): void {
  /** The first optimizer with its defaults, and the row's example. */
  const named = [{ optimizer: Object.keys(row.optimizers)[0], options: {} }, row.example];

  Deno.test(`${name}: a checkpoint holds its params and moments, and the options of its factory`, async () => {
    for (const c of named) {
      const state = await optimizerOf(row, c, "auto", { states }).init({
        a: new Float32Array(5),
        b: new Float32Array(3),
        c: new Float32Array(5000).fill(0.5),
      });
      assert.equal(stateInternals(state).config.rule, row.rule);
      assert.equal(stateInternals(state).config.run.states, states);
      assert.deepEqual(Object.keys(await readMoments(state)), row.moments(c));
      const bytes = await saveState(state);
      const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
      // 8-bit: the tensor of 4096 elements or more holds codes and scales for each moment
      const held = (t: string, m: string) =>
        states === "8bit" && t === "c" ? [`${t}.${m}.codes`, `${t}.${m}.scales`] : [`${t}.${m}`];
      assert.deepEqual(
        Object.keys(header).filter((k) => k !== "__metadata__").sort(),
        ["a", "b", "c"].flatMap((t) => [t, ...row.moments(c).flatMap((m) => held(t, m))]).sort(),
      );
      const meta = header.__metadata__;
      assert.equal(meta.optimizer, c.optimizer);
      assert.equal(meta.states, states);
      assert.equal(
        meta.q8,
        states === "8bit" && row.moments(c).length > 0 ? Q8_VERSION : undefined,
      );
      if (states === "8bit") {
        row.moments(c).forEach((m, k) => {
          const signed = k === 0 || row.rule !== "adam";
          assert.equal(header[`c.${m}.codes`].dtype, signed ? "I8" : "U8");
          assert.deepEqual(header[`c.${m}.codes`].shape, [5000]);
          assert.deepEqual(header[`c.${m}.scales`], {
            dtype: "F32",
            shape: [20],
            data_offsets: header[`c.${m}.scales`].data_offsets,
          });
        });
      }
      if (c === named[0]) {
        assert.deepEqual(JSON.parse(meta.hyperparameters), row.stored);
      }
      assert.equal(lookahead(optimizerOf(row, c, "auto")).name, `lookahead(${c.optimizer})`);
    }
  });
}

/** The arena a state takes, bad options, hand-computed values. */
function stateSuite(row: Row, states: Format, name: string): void {
  /** The first optimizer with its defaults, and the row's example. */
  const named = [{ optimizer: Object.keys(row.optimizers)[0], options: {} }, row.example];

  Deno.test(`${name}: the arena holds params, grads, the rule's moments (and slow weights)`, async () => {
    for (const c of named) {
      const moments = row.moments(c).length;
      const compact = states === "8bit" && moments > 0;
      // f32: 4 bytes a parameter a section; 8-bit: 1 a moment's codes, and 4 per 256 its scales
      const sections = 2 + (compact ? 2 : 1) * moments;
      const bytes = 8 + (compact ? moments * (1 + 4 / 256) : 4 * moments);
      const n = 1 << 20;
      const state = await optimizerOf(row, c, "auto", { states }).init({ w: new Float32Array(n) });
      const layout = stateInternals(state).backend.layout;
      assert.equal(layout.sectionCount, sections);
      // and the gaps between sections (at most 5% of a section each)
      assert.ok(layout.byteLength <= bytes * n * 1.05, `${layout.byteLength} bytes`);
      assert.ok(layout.byteLength >= bytes * n);
      const slow = await lookahead(optimizerOf(row, c, "auto", { states })).init({
        a: new Float32Array(5),
      });
      // (a tensor of 5 elements keeps f32 moments)
      assert.equal(stateInternals(slow).backend.layout.sectionCount, 3 + moments);
    }
  });

  if (states === "32bit") {
    Deno.test(`${row.rule}: bad options name the option`, () => {
      for (const [make, type, message] of row.invalid) {
        assert.throws(make, (e: Error) => {
          assert.ok(e instanceof type, `${e.constructor.name}: ${e.message}`);
          assert.match(e.message, message);
          return true;
        });
      }
    });
  }

  for (const vector of row.vectors) {
    Deno.test(`${name}: ${vector.name} (hand-computed; the reference, wasm and js)`, async () => {
      checkReferenceVector(row, vector);
      for (const backend of CPU) await checkVector(row, vector, backend, undefined, states);
    });
  }
}
