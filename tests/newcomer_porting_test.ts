/**
 * What a user porting a PyTorch training script, or writing a Deno pipeline that checkpoints to
 * a file, writes first, where the call failed with a misleading message: `loadState(optimizer,
 * bytes)` (as `optimizer.load_state_dict(sd)` reads) was an "Unknown option 0", and a file's
 * path, a `URL`, or the file read as text said only that a checkpoint must be a Uint8Array;
 * `state.lr = x` (PyTorch's `param_groups[0]["lr"] = x`, tfjs's `learningRate = x`) added a
 * property that no step read, silently, where the way to change it mid-run is a schedule.
 */
import assert from "node:assert/strict";
import { adam, loadState, radam, readParams, saveState, step } from "../mod.ts";
import { saying } from "./util.ts";

Deno.test("loadState given the optimizer first says the checkpoint goes first and holds its own", async () => {
  const optimizer = adam({ lr: 0.1 });
  const bytes = await saveState(await optimizer.init({ w: new Float32Array([1, 2]) }));
  await assert.rejects(
    loadState(optimizer as never, bytes as never),
    saying(
      TypeError,
      "A checkpoint must be a Uint8Array, got Object (an optimizer: the checkpoint holds its own and goes first, loadState(bytes), or loadState(bytes, { lr }))",
    ),
  );
  assert.deepEqual((await readParams(await loadState(bytes))).w, new Float32Array([1, 2]));
});

Deno.test("loadState given a file's path, its URL, or the file read as text says to read its bytes", async () => {
  const bytes = await saveState(await adam().init({ w: new Float32Array([1, 2]) }));
  const path = "a file's path or URL? loadState takes its bytes: await Deno.readFile(path), " +
    "Node's await readFile(path), new Uint8Array(await (await fetch(url)).arrayBuffer())";
  await assert.rejects(
    loadState("checkpoints/latest.safetensors" as never),
    saying(TypeError, `got a string "checkpoints/latest.safetensors" (${path})`),
  );
  await assert.rejects(
    loadState(new URL("file:///tmp/latest.safetensors") as never),
    saying(TypeError, `got URL (${path})`),
  );
  const text = new TextDecoder().decode(bytes);
  await assert.rejects(
    loadState(text as never),
    saying(
      TypeError,
      "(the file read as text: read its bytes, await Deno.readFile(path), Node's await readFile(path), new Uint8Array(await response.arrayBuffer()))",
    ),
  );
});

Deno.test("state.lr = x (or learningRate) is a TypeError saying how to change the lr mid-run; that way works", async () => {
  let state = await radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) });
  state = step(state, { w: new Float32Array([1, 1]) });
  for (const key of ["lr", "learningRate"]) {
    assert.throws(
      () => ((state as unknown as Record<string, number>)[key] = 0),
      saying(
        TypeError,
        `A state has no ${key} to set (the assignment would change nothing): its learning rate is its optimizer's. To change it mid-run, give lr as a schedule that reads yours, let lr = 1e-3; radam({ lr: () => lr })`,
      ),
    );
  }
  // Nothing changed, and the state steps on.
  assert.equal(state.step, 1);
  state = step(state, { w: new Float32Array([1, 1]) });
  assert.equal(state.step, 2);
  // What it says: a schedule reading a variable, set mid-run, takes effect at the next step.
  let lr = 0.1;
  let read = await radam({ lr: () => lr }).init({ w: new Float32Array([1, 2]) });
  for (let t = 0; t < 6; t++) read = step(read, { w: new Float32Array([1, 1]) });
  lr = 0;
  const before = read.params.w.slice();
  read = step(read, { w: new Float32Array([1, 1]) });
  assert.deepEqual(read.params.w, before);
  // Its checkpoint holds no lr: it resumes with the schedule given again.
  const resumed = await loadState(await saveState(read), { lr: () => lr });
  assert.equal(resumed.step, 7);
});
