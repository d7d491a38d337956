/**
 * Every rule of the table resumed at a step count of a long run (a million steps, either side of
 * 2³¹ and 2³², just below 2⁵³ − 1: β^t underflowed to 0, RAdam's ρt at ρ∞, a checkpoint's count
 * past what a u32 or an i32 holds): each step against the float64 reference at its own t, and
 * wasm, js and wasm on 2 threads bit for bit, in 32-bit and 8-bit states.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { dispose, loadState, type OptimizerState, saveState, step } from "../mod.ts";
import { assertSameBits, CPU_BACKENDS, readAll } from "./cases.ts";
import { edit } from "./checkpoint_files.ts";
import { codeTolerance } from "./q8_reference.ts";
import { firstMismatch } from "./reference.ts";
import { FORMATS, optimizerOf, RULE_TABLE } from "./rule_table.ts";
import { prng, randomTensor } from "./util.ts";

/** Step counts a long run resumes at. */
const STARTS = [1e6, 2 ** 31 - 2, 2 ** 32 - 1, 2 ** 32 + 3, Number.MAX_SAFE_INTEGER - 4];

for (const row of RULE_TABLE) {
  for (const states of FORMATS) {
    Deno.test(`${row.rule} (${states}): resumed at a long run's step count, every step matches the reference and the CPU backends agree bit for bit`, async () => {
      let compared = 0;
      await fc.assert(
        fc.asyncProperty(
          row.cases(true),
          fc.constantFrom(...STARTS),
          fc.constantFrom(17, 4097),
          fc.integer({ min: 0, max: 2 ** 31 - 1 }),
          async (c, start, n, seed) => {
            const rand = prng(seed);
            const params = { w: randomTensor(rand, n) };
            const grads = Array.from({ length: 5 }, () => ({ w: randomTensor(rand, n) }));
            // Two steps from zero moments, then the count of a long run.
            let first = await optimizerOf(row, c, "js", { states }).init(params);
            for (let t = 0; t < 2; t++) first = step(first, { w: grads[t].w.slice() });
            let bytes: Uint8Array;
            try {
              bytes = await saveState(first);
            } catch {
              return; // a state gone non-finite (eps = 0 over a zero gradient) saves not
            }
            const at = edit(bytes, (h) => h.__metadata__.step = String(start));
            const resumed: OptimizerState<unknown>[] = [];
            try {
              for (const { backend, threads } of CPU_BACKENDS) {
                resumed.push(await loadState(at, { backend, threads, threadThreshold: 0 }));
              }
              const reference = row.reference(c);
              const lr = c.options.lr as number;
              for (let k = 2; k < grads.length; k++) {
                const before = (await readAll(resumed[1])).w;
                for (let i = 0; i < resumed.length; i++) {
                  resumed[i] = step(resumed[i], { w: grads[k].w.slice() });
                }
                const t = start + k - 1;
                assert.equal(resumed[1].step, t);
                for (let i = 0; i < resumed.length; i += 2) {
                  await assertSameBits(resumed[i], resumed[1], `${row.rule} at step ${t}`);
                }
                const after = (await readAll(resumed[1])).w;
                const ref = reference(before, grads[k].w, t, lr);
                const codes = states === "8bit" && n >= 4096;
                const checks = [
                  ["p", ref.p, ref.tolP],
                  ["m", ref.m, codes ? codeTolerance(ref.m, ref.tolM, true) : ref.tolM],
                  ["v", ref.v, codes ? codeTolerance(ref.v, ref.tolV, false) : ref.tolV],
                ] as const;
                for (const [field, expected, tol] of checks.slice(0, 1 + row.moments(c).length)) {
                  const i = firstMismatch(after[field], expected, tol);
                  assert.equal(
                    i,
                    -1,
                    `${field}[${i}] at step ${t}: ${after[field][i]}, reference ${expected[i]} ± ${
                      tol[i]
                    } (${JSON.stringify(c)})`,
                  );
                }
                compared++;
              }
            } finally {
              resumed.forEach(dispose);
            }
          },
        ),
        { numRuns: 25 },
      );
      assert.ok(compared > 0, "no case could be saved");
    });
  }
}
