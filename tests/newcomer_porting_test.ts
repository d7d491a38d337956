/**
 * What a user porting a PyTorch training script, or writing a Deno pipeline that checkpoints to
 * a file, writes first, where the call failed with a misleading message: `loadState(optimizer,
 * bytes)` (as `optimizer.load_state_dict(sd)` reads) was an "Unknown option 0", and a file's
 * path, a `URL`, or the file read as text said only that a checkpoint must be a Uint8Array.
 */
import assert from "node:assert/strict";
import { adam, loadState, readParams, saveState } from "../mod.ts";
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
