// The TensorFlow.js adapter of the bundle on tfjs-backend-webgl, tfjs's default backend in
// browsers, in headless Chromium (WebGL 2 on SwiftShader: webgl_page.mjs): steps that give the
// library's bits with every tensor a GPU texture, model.fit with RAdam and Ranger, a checkpoint
// of `optimizer.state` resumed by `optimizer.loadState` bit for bit, and no tensor left behind;
// and the same on half-float textures (a GPU without float32 ones), where bits cannot match.
import assert from "node:assert/strict";
import { test } from "node:test";
import { webglPage } from "./webgl_page.mjs";

/** What every run of the page must show: webgl ran, and model.fit trained without a leak. */
function checkFit(result, exact) {
  assert.equal(result.info.backend, "webgl", "the page did not run on tfjs-backend-webgl");
  assert.equal(result.info.version, 2);
  assert.deepEqual(result.onGpu, { texture: true, packed: true, values: false });
  for (const [rule, run] of Object.entries(result.fit)) {
    assert.ok(["wasm", "js"].includes(run.backend), `${rule}: ${run.backend}`);
    assert.equal(run.stateBackend, run.backend, rule);
    assert.equal(run.iterations, 16, rule);
    assert.ok(run.loss.every(Number.isFinite), `${rule}: ${run.loss}`);
    assert.ok(run.loss.at(-1) < 0.9 * run.loss[0], `${rule}: the loss did not fall: ${run.loss}`);
    // One epoch after another: the same tensors and tfjs data alive after each.
    for (const c of run.counts.slice(2)) assert.deepEqual(c, run.counts[1], rule);
    assert.equal(run.resumed.iterations, 16, rule);
    if (exact) {
      assert.deepEqual(run.resumed.loss, run.after, `${rule}: the resumed losses`);
      assert.deepEqual(run.resumed.bits, run.bits, `${rule}: the resumed weights' bits`);
    } else {
      run.resumed.loss.forEach((x, i) => {
        const y = run.after[i];
        assert.ok(Math.abs(x - y) <= 1e-2 * y, `${rule}: resumed loss ${i}: ${x} vs ${y}`);
      });
    }
  }
  // Everything made was disposed: nothing of the adapter's left with tfjs.
  assert.deepEqual(result.counts[1], result.counts[0]);
}

test("tfjs-backend-webgl in headless Chromium: the library's bits, model.fit with RAdam and Ranger, loadState resumes bit for bit, no leak", async () => {
  const result = await webglPage("cases");
  console.log(`WebGL renderer: ${result.info.renderer}`);
  assert.equal(result.info.float32, true, "no float32 textures: the bits cannot be compared");
  assert.deepEqual(result.bits.adapter, result.bits.core);
  checkFit(result, true);
});

test("tfjs-backend-webgl on half-float textures: the adapter steps its float32 copy, close to the library's, and model.fit trains", async () => {
  const result = await webglPage("cases&f16");
  assert.equal(result.info.float32, false);
  result.bits.adapter.flat().forEach((x, i) => {
    const y = result.bits.core.flat()[i];
    assert.ok(Math.abs(x - y) <= 1e-3 * (1 + Math.abs(y)), `value ${i}: ${x} vs ${y}`);
  });
  assert.notDeepEqual(result.bits.adapter, result.bits.core); // (float16 did round them)
  checkFit(result, false);
});
