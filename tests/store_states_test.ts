/**
 * The serverless store with 8-bit moments: it saves and loads their (smaller) checkpoints with no
 * change of its own, and a state stepped through it, loaded and saved at every request, is the
 * state stepped in one process, bit for bit.
 */
import assert from "node:assert/strict";
import { loadState, radam, readMoments, readParams, saveState, step } from "../mod.ts";
import { kvCheckpointStore, memoryCheckpointStore, optimisticStep } from "../kv.ts";
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
