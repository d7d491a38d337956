/**
 * UTF-8 without TextEncoder and TextDecoder (Hermes, React Native's engine, has neither): the
 * library's own encoder and decoder give what the globals give, on any text (astral characters,
 * lone surrogates) and any bytes (invalid sequences, a byte order mark), fatal or not; and a
 * checkpoint saves and loads with the globals hidden.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeUtf8,
  decodeUtf8Fallback,
  encodeUtf8,
  encodeUtf8Fallback,
  utf8Length,
} from "../base/_utf8.ts";
import {
  CheckpointError,
  loadState,
  radam,
  readMoments,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import { join } from "./checkpoint_files.ts";

/** Text of any code units: astral characters (pairs), lone surrogates, ASCII, the rest. */
const textArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  fc.string({ unit: fc.constantFrom("a", "é", "€", "😀", "\ud800", "\udfff", "\ufeff", "\u0000") }),
);

/** Bytes near UTF-8's boundaries (leads, continuations, their bounds), random, or text's. */
const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 48 }),
  fc.array(
    fc.constantFrom(
      0x00,
      0x41,
      0x7f,
      0x80,
      0x8f,
      0x90,
      0x9f,
      0xa0,
      0xbb,
      0xbf,
      0xc0,
      0xc1,
      0xc2,
      0xdf,
      0xe0,
      0xed,
      0xef,
      0xf0,
      0xf4,
      0xf5,
      0xf8,
      0xfe,
      0xff,
    ),
    { maxLength: 48 },
  ).map((b) => new Uint8Array(b)),
  // Valid text with bytes cut out or put in, and a byte order mark in front.
  fc.tuple(textArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), fc.boolean()).map(
    ([text, at, byte, cut, bom]) => {
      const bytes = [...(bom ? [0xef, 0xbb, 0xbf] : []), ...new TextEncoder().encode(text)];
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      if (cut) bytes.splice(i, 1);
      else bytes.splice(i, 0, byte);
      return new Uint8Array(bytes);
    },
  ),
);

/** What the global decoder gives: its text, or that it threw a TypeError. */
function decoded(decode: () => string): string | { threw: string } {
  try {
    return decode();
  } catch (error) {
    return { threw: (error as Error).constructor.name };
  }
}

Deno.test("utf8: the fallback encoder gives TextEncoder's bytes, and utf8Length their count", () => {
  fc.assert(
    fc.property(textArb, (text) => {
      const want = new TextEncoder().encode(text);
      assert.deepEqual(encodeUtf8Fallback(text), want);
      assert.equal(utf8Length(text), want.length);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("utf8: the fallback decoder gives TextDecoder's text, fatal or not, on any bytes", () => {
  fc.assert(
    fc.property(bytesArb, fc.boolean(), (bytes, fatal) => {
      const want = decoded(() => new TextDecoder("utf-8", { fatal }).decode(bytes));
      assert.deepEqual(decoded(() => decodeUtf8Fallback(bytes, fatal)), want);
    }),
    { numRuns: 5000 },
  );
  // Past a chunk of decoded units, and around it with a pair.
  const long = "a".repeat(8191) + "😀" + "é".repeat(9000) + "\u{10ffff}";
  const bytes = new TextEncoder().encode(long);
  assert.equal(decodeUtf8Fallback(bytes, true), long);
  assert.equal(new TextDecoder().decode(encodeUtf8Fallback(long)), long);
});

/** Runs `body` with the runtime's TextEncoder and TextDecoder hidden, as on Hermes. */
async function withoutTextCodecs(body: () => Promise<void>): Promise<void> {
  const saved = ["TextEncoder", "TextDecoder"].map((name) =>
    [name, Object.getOwnPropertyDescriptor(globalThis, name)!] as const
  );
  try {
    for (const [name] of saved) delete (globalThis as Record<string, unknown>)[name];
    assert.equal(typeof (globalThis as Record<string, unknown>).TextDecoder, "undefined");
    await body();
  } finally {
    for (const [name, descriptor] of saved) Object.defineProperty(globalThis, name, descriptor);
  }
}

Deno.test("utf8: a checkpoint saves and loads without TextEncoder and TextDecoder, the same bytes", async () => {
  const params = { "é.weight": new Float32Array([1, -2, 3]), "😀\ud800": new Float32Array([4]) };
  const grads = { "é.weight": new Float32Array([0.5, 1, -1]), "😀\ud800": new Float32Array([2]) };
  const want = await saveState(step(await radam({ lr: 1e-2 }).init(params), grads));
  const bad = join('{"__metadata__":{"x":"\u00ff"}}', new Uint8Array(0));
  bad[bad.indexOf(0xc3)] = 0xff; // (ÿ's lead byte)
  await withoutTextCodecs(async () => {
    assert.equal(decodeUtf8(encodeUtf8("😀é")), "😀é");
    const bytes = await saveState(step(await radam({ lr: 1e-2 }).init(params), grads));
    assert.deepEqual(bytes, want);
    const state = await loadState(bytes);
    assert.deepEqual(state.names, Object.keys(params));
    assert.deepEqual(await saveState(state), want);
    assert.deepEqual(await readParams(state), await readParams(await loadState(want)));
    assert.deepEqual(await readMoments(state), await readMoments(await loadState(want)));
    // A header that is not UTF-8 is refused as with the globals.
    await assert.rejects(
      () => loadState(bad),
      (e: Error) => e instanceof CheckpointError && /not valid UTF-8/.test(e.message),
    );
  });
  assert.equal(typeof globalThis.TextDecoder, "function");
});
