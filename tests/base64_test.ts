/**
 * Base64 is decoded by the library's own decoder (base/_base64.ts), since `atob` is missing on
 * React Native's Hermes before 0.74: the wasm kernels load without `atob`, and the decoder
 * agrees with `atob` on every input: the same bytes, or both refusing it.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeBase64 } from "../base/_base64.ts";
import { dispose, radam, step } from "../mod.ts";

// First in the file: the kernels' bytes are decoded once, at the first wasm state.
Deno.test("wasm states start where the runtime has no atob (Hermes before React Native 0.74)", async () => {
  const g = globalThis as Record<string, unknown>;
  const saved = g.atob;
  delete g.atob;
  try {
    for (const threads of [1, 2]) {
      let state = await radam({ backend: "wasm", threads, threadThreshold: 0 }).init({
        w: new Float32Array(8).fill(1),
      });
      try {
        state = step(state, { w: new Float32Array(8).fill(0.5) });
        assert.equal(state.step, 1);
        assert.ok(state.params.w[0] < 1);
      } finally {
        dispose(state);
      }
    }
  } finally {
    g.atob = saved;
  }
});

/** `atob`'s bytes of `text`, or null where it refuses it. */
function viaAtob(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** The decoder's bytes of `text`, or null where it refuses it (a TypeError). */
function viaOwn(text: string): Uint8Array | null {
  try {
    return decodeBase64(text);
  } catch (error) {
    assert.ok(error instanceof TypeError, String(error));
    return null;
  }
}

Deno.test("the base64 decoder decodes what btoa encodes, as atob does", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const text = btoa(String.fromCharCode(...bytes));
      assert.deepEqual(decodeBase64(text), bytes);
      assert.deepEqual(decodeBase64(text.replace(/=+$/, "")), bytes); // padding optional
    }),
    { numRuns: 2000 },
  );
});

Deno.test("the base64 decoder agrees with atob on any string: the same bytes, or both refuse", () => {
  // Characters of base64 and near it: padding anywhere, whitespace (ignored), others refused.
  const char = fc.constantFrom(
    ..."ABCXYZabcxyz0189+/",
    "=",
    " ",
    "\t",
    "\n",
    "\r",
    "\f",
    "\v",
    "-",
    "_",
    ".",
    "é",
    "\u00a0",
    "\u0100",
  );
  fc.assert(
    fc.property(fc.array(char, { maxLength: 24 }), (chars) => {
      const text = chars.join("");
      assert.deepEqual(viaOwn(text), viaAtob(text), JSON.stringify(text));
    }),
    { numRuns: 20_000 },
  );
});
