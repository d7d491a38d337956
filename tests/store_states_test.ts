/**
 * The serverless store with 8-bit moments: it saves and loads their (smaller) checkpoints with no
 * change of its own, and a state stepped through it, loaded and saved at every request, is the
 * state stepped in one process, bit for bit. What a redeploy changes: the optimizer's `states`
 * converts the stored moments, its backend is the resumed state's, a constant lr replaces a
 * stored schedule; a stored constant lr is kept.
 */
import assert from "node:assert/strict";
import { cosineDecay, loadState, radam, readMoments, readParams, saveState, step } from "../mod.ts";
import { dataParallel, kvCheckpointStore, memoryCheckpointStore, optimisticStep } from "../kv.ts";
import { PREFIX } from "./kv_fakes.ts";
import { split } from "./checkpoint_files.ts";
import { bits, randoms } from "./util.ts";

const N = 6000;

Deno.test({
  name: "the store keeps 8-bit checkpoints: each request resumes exactly, the file half the size",
  permissions: {},
  async fn() {
    const kv = await Deno.openKv(":memory:");
    try {
      for (const store of [memoryCheckpointStore(), kvCheckpointStore(kv, PREFIX)]) {
        const optimizer = radam({ lr: 1e-2, states: "8bit" });
        const init = () => ({ w: randoms(N, 1) });
        let straight = await optimizer.init(init());
        for (let t = 1; t <= 5; t++) {
          await optimisticStep(store, {
            optimizer,
            init,
            gradient: (state) => void state.grads.w.set(randoms(N, 10 + t)),
          });
          straight = step(straight, { w: randoms(N, 10 + t) });
        }
        const stored = (await store.load())!;
        const { header } = split(stored.bytes);
        assert.equal(header.__metadata__.states, "8bit");
        assert.ok(header["w.exp_avg.codes"] && header["w.exp_avg_sq.scales"]);
        const wide = await saveState(await radam().init(init()));
        assert.ok(stored.bytes.length < 0.55 * wide.length, `${stored.bytes.length} bytes`);
        const resumed = await loadState(stored.bytes);
        assert.equal(resumed.step, 5);
        assert.deepEqual(bits((await readParams(resumed)).w), bits((await readParams(straight)).w));
        const [a, b] = [await readMoments(resumed), await readMoments(straight)];
        assert.deepEqual(bits(a.exp_avg.w), bits(b.exp_avg.w));
        assert.deepEqual(bits(a.exp_avg_sq.w), bits(b.exp_avg_sq.w));
      }
    } finally {
      kv.close();
    }
  },
});

/** The stored checkpoint's metadata: its moments' format and its hyperparameters. */
async function storedSettings(store: { load(): Promise<{ bytes: Uint8Array } | null> }) {
  const { header } = split((await store.load())!.bytes);
  const metadata = header.__metadata__;
  return {
    states: metadata.states ?? "32bit",
    lr: JSON.parse(metadata.hyperparameters).lr,
    schedule: metadata.lr_schedule,
  };
}

Deno.test({
  name:
    "a redeploy with states changed converts the stored moments (both modes); a constant lr stays the stored one",
  permissions: {},
  async fn() {
    const kv = await Deno.openKv(":memory:");
    try {
      for (const store of [memoryCheckpointStore(), kvCheckpointStore(kv, PREFIX)]) {
        const init = () => ({ w: randoms(N, 1) });
        const gradient = (t: number) => (state: { grads: Record<string, Float32Array> }) =>
          void state.grads.w.set(randoms(N, 10 + t));
        await optimisticStep(store, {
          optimizer: radam({ lr: 1e-2 }),
          init,
          gradient: gradient(1),
        });
        const before = (await store.load())!.bytes;
        // The code now says 8-bit moments, and another lr: the moments are converted, as
        // loadState({ states }) converts them; the lr stays the stored one (loadOptions.lr changes it).
        const eight = radam({ lr: 0.5, states: "8bit" });
        const done = await optimisticStep(store, { optimizer: eight, init, gradient: gradient(2) });
        const expected = step(await loadState(before, { states: "8bit" }), { w: randoms(N, 12) });
        const want = await saveState(expected); // compared as a whole: a diff of 50 KB is slow
        const same = want.length === done.checkpoint.length &&
          want.every((b, i) => b === done.checkpoint[i]);
        assert.ok(same, "the converted state, stepped");
        assert.deepEqual(await storedSettings(store), {
          states: "8bit",
          lr: 1e-2,
          schedule: "false",
        });
        // The data-parallel mode, back to 32-bit.
        const trainer = dataParallel(store, { optimizer: radam({ lr: 1e-2 }), init });
        const { step: base } = await trainer.params();
        const answer = await trainer.submit({ id: "r3", base, gradient: { w: randoms(N, 13) } });
        assert.equal(answer.status === "applied" && answer.step, 3);
        await trainer.close();
        assert.deepEqual(await storedSettings(store), {
          states: "32bit",
          lr: 1e-2,
          schedule: "false",
        });
      }
    } finally {
      kv.close();
    }
  },
});

Deno.test("a redeploy from a schedule to a constant lr resumes with that lr; the optimizer's backend is the state's", async () => {
  const store = memoryCheckpointStore();
  const init = () => ({ w: new Float32Array(4) });
  const gradient = (state: { grads: Record<string, Float32Array> }) => void state.grads.w.fill(1);
  const scheduled = radam({ lr: cosineDecay(0.1, { decaySteps: 10 }) });
  await optimisticStep(store, { optimizer: scheduled, init, gradient });
  assert.deepEqual(await storedSettings(store), { states: "32bit", lr: null, schedule: "true" });
  // It was a TypeError telling to call loadState(bytes, { lr }), which the user never calls.
  const done = await optimisticStep(store, {
    optimizer: radam({ lr: 0.02, backend: "js" }),
    init,
    gradient,
  });
  assert.equal(done.step, 2);
  assert.equal(done.state.backend, "js", "the optimizer's backend (it resumed on auto)");
  assert.deepEqual(await storedSettings(store), { states: "32bit", lr: 0.02, schedule: "false" });
  const trainer = dataParallel(store, { optimizer: scheduled, init });
  const { step: base } = await trainer.params();
  const answer = await trainer.submit({ id: "r", base, gradient: { w: new Float32Array(4) } });
  assert.equal(answer.status === "applied" && answer.step, 3);
  await trainer.close();
  assert.deepEqual(await storedSettings(store), { states: "32bit", lr: null, schedule: "true" });
});
