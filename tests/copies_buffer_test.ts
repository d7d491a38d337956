/**
 * What `saveState`, `readParams`, `readMoments` and `readSlowWeights` give is a copy over an
 * `ArrayBuffer` of its own (never the arena's `SharedArrayBuffer` of a threaded state), and is
 * typed so (`Uint8Array<ArrayBuffer>`, `Float32Array<ArrayBuffer>`): a checkpoint goes to
 * `new Response`, `new Blob` and `crypto.subtle.digest` as it is. They were typed over
 * `ArrayBufferLike`, which TypeScript 5.7 and later (Deno 2) refuse there: this file then did
 * not type-check. The state's own views (`state.params`, `state.grads`) stay `ArrayBufferLike`:
 * a threaded state's are over shared memory.
 */
import assert from "node:assert/strict";
import {
  dispose,
  lion,
  type Optimizer,
  radam,
  ranger,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  sgd,
  step,
} from "../mod.ts";

/** Where a copy of the library's may go with no conversion: a body, a blob, a digest. */
async function useAsItIs(bytes: Uint8Array<ArrayBuffer>, values: Float32Array<ArrayBuffer>) {
  const body: BodyInit = bytes;
  assert.equal((await new Response(body).arrayBuffer()).byteLength, bytes.byteLength);
  assert.equal(new Blob([bytes, values]).size, bytes.byteLength + values.byteLength);
  assert.equal((await crypto.subtle.digest("SHA-256", bytes)).byteLength, 32);
}

const cases: [string, Optimizer, { threads?: number }][] = [
  ["radam, wasm", radam({ backend: "wasm" }), {}],
  ["ranger, js, 8-bit", ranger({ backend: "js", states: "8bit" }), {}],
  ["lion, two threads", lion({ threads: 2, threadThreshold: 0 }), { threads: 2 }],
  ["sgd with momentum", sgd({ momentum: 0.9 }), {}],
];

for (const [name, optimizer, { threads }] of cases) {
  Deno.test(`copies are over ArrayBuffers of their own, typed so: ${name}`, async () => {
    let state = await optimizer.init({ w: new Float32Array(4096).fill(1), b: new Float32Array(3) });
    try {
      if (threads !== undefined && state.threads === threads) {
        assert.ok(state.params.w.buffer instanceof SharedArrayBuffer);
      }
      state.grads.w.fill(0.5);
      state.grads.b.fill(-0.5);
      state = step(state);
      const bytes = await saveState(state);
      const params = await readParams(state);
      const moments = await readMoments(state);
      const copies = [
        ...Object.values(params),
        ...Object.values(moments).flatMap((m) => Object.values(m)),
      ];
      if (optimizer.settings.lookahead !== undefined) {
        copies.push(...Object.values(await readSlowWeights(state)));
      }
      for (const copy of [bytes, ...copies]) {
        assert.equal(Object.getPrototypeOf(copy.buffer), ArrayBuffer.prototype);
        assert.notEqual(copy.buffer, state.params.w.buffer);
      }
      await useAsItIs(bytes, params.w);
    } finally {
      dispose(state);
    }
  });
}
