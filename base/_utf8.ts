/**
 * UTF-8 in one place: the library encodes and decodes text (checkpoint headers, stored
 * metadata) only through this module, which uses the runtime's `TextEncoder` and `TextDecoder`
 * where it has them, and where it has not (Hermes, React Native's engine) an encoder and a
 * decoder of its own with the same results: lone surrogates encoded as U+FFFD, a leading byte
 * order mark dropped, and invalid bytes either refused (`fatal`) or each maximal invalid part
 * read as one U+FFFD, as the WHATWG Encoding Standard's decoder does. Private to the library.
 *
 * @module
 */

/** The global of `name`, where the runtime has one (read at each call: a test may hide it). */
function global<T>(name: "TextEncoder" | "TextDecoder"): T | undefined {
  const value = (globalThis as Record<string, unknown>)[name];
  return typeof value === "function" ? value as T : undefined;
}

/** The runtime's encoder, made once for each `TextEncoder` class it has. */
let encoder: { of: typeof TextEncoder; encoder: TextEncoder } | undefined;

/**
 * Bytes of the UTF-8 encoding of a string (a lone surrogate as U+FFFD, three bytes, as
 * `TextEncoder` encodes it). At least `text.length`.
 *
 * @example
 * ```ts
 * import { utf8Length } from "./_utf8.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(utf8Length("a€😀"), 1 + 3 + 4);
 * assert.equal(utf8Length("\ud800"), 3);
 * ```
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a pair: two units, four bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/**
 * The UTF-8 bytes of `text`, as `new TextEncoder().encode(text)`: by the runtime's
 * `TextEncoder` where it has one, else by {@linkcode encodeUtf8Fallback}.
 *
 * @example
 * ```ts
 * import { encodeUtf8 } from "./_utf8.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(encodeUtf8("é"), new Uint8Array([0xc3, 0xa9]));
 * ```
 */
export function encodeUtf8(text: string): Uint8Array<ArrayBuffer> {
  const Encoder = global<typeof TextEncoder>("TextEncoder");
  if (Encoder === undefined) return encodeUtf8Fallback(text);
  if (encoder?.of !== Encoder) encoder = { of: Encoder, encoder: new Encoder() };
  // A new ArrayBuffer's bytes; Deno 2.2 to 2.4's lib types them as ArrayBufferLike.
  return encoder.encoder.encode(text) as Uint8Array<ArrayBuffer>;
}

/**
 * The text of UTF-8 `bytes`, as `new TextDecoder("utf-8", { fatal }).decode(bytes)` (a leading
 * byte order mark dropped; with `fatal`, a TypeError for bytes that are not UTF-8, else each
 * maximal invalid part read as U+FFFD): by the runtime's `TextDecoder` where it has one, else
 * by {@linkcode decodeUtf8Fallback}.
 *
 * @example
 * ```ts
 * import { decodeUtf8 } from "./_utf8.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(decodeUtf8(new Uint8Array([0x61, 0xc3, 0xa9])), "aé");
 * assert.equal(decodeUtf8(new Uint8Array([0x61, 0xff])), "a\ufffd");
 * assert.throws(() => decodeUtf8(new Uint8Array([0x61, 0xff]), true), TypeError);
 * ```
 */
export function decodeUtf8(bytes: Uint8Array, fatal = false): string {
  const Decoder = global<typeof TextDecoder>("TextDecoder");
  if (Decoder === undefined) return decodeUtf8Fallback(bytes, fatal);
  return new Decoder("utf-8", { fatal }).decode(bytes);
}

/**
 * The order of two strings by their UTF-8 bytes, as Deno KV orders strings in keys (that is, by
 * code points: UTF-16 units would put "\u{1f600}" before "\uff00"); negative, 0 or positive.
 *
 * @example
 * ```ts
 * import { compareUtf8 } from "./_utf8.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(compareUtf8("\uff00", "\u{1f600}") < 0); // where "\uff00" > "\u{1f600}" in UTF-16
 * assert.ok(compareUtf8("ab", "a") > 0);
 * assert.equal(compareUtf8("é", "é"), 0);
 * ```
 */
export function compareUtf8(a: string, b: string): number {
  const x = encodeUtf8(a), y = encodeUtf8(b);
  for (let i = 0; i < x.length && i < y.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * The UTF-8 bytes of `text`, without `TextEncoder`: each code point in one to four bytes, a
 * lone surrogate (not half of a pair) as U+FFFD.
 *
 * @example
 * ```ts
 * import { encodeUtf8Fallback } from "./_utf8.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(encodeUtf8Fallback("😀"), new Uint8Array([0xf0, 0x9f, 0x98, 0x80]));
 * assert.deepEqual(encodeUtf8Fallback("\udc00"), new Uint8Array([0xef, 0xbf, 0xbd]));
 * ```
 */
export function encodeUtf8Fallback(text: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(utf8Length(text));
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[o++] = c;
      continue;
    }
    if (c < 0x800) {
      out[o++] = 0xc0 | (c >> 6);
      out[o++] = 0x80 | (c & 0x3f);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const low = text.charCodeAt(i + 1); // (NaN past the end)
      if (c <= 0xdbff && (low & 0xfc00) === 0xdc00) {
        const p = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        out[o++] = 0xf0 | (p >> 18);
        out[o++] = 0x80 | ((p >> 12) & 0x3f);
        out[o++] = 0x80 | ((p >> 6) & 0x3f);
        out[o++] = 0x80 | (p & 0x3f);
        i++;
        continue;
      }
      c = 0xfffd; // a lone surrogate
    }
    out[o++] = 0xe0 | (c >> 12);
    out[o++] = 0x80 | ((c >> 6) & 0x3f);
    out[o++] = 0x80 | (c & 0x3f);
  }
  return out;
}

/** Code units decoded before they are turned into a string, at most (two more for a pair). */
const CHUNK = 8192;

/**
 * The text of UTF-8 `bytes`, without `TextDecoder`, by the WHATWG Encoding Standard's UTF-8
 * decoder: a leading byte order mark dropped; a byte that cannot begin a sequence, or a
 * sequence cut short (by a byte out of its range, or by the end), is an error: with `fatal`, a
 * TypeError, else one U+FFFD for the bytes taken so far, and the byte that cut it short read
 * again as the start of the next.
 *
 * @example
 * ```ts
 * import { decodeUtf8Fallback } from "./_utf8.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(decodeUtf8Fallback(new Uint8Array([0xf0, 0x9f, 0x98, 0x80])), "😀");
 * // A cut sequence is one U+FFFD; the byte that cut it (here "a") is read on its own.
 * assert.equal(decodeUtf8Fallback(new Uint8Array([0xf0, 0x9f, 0x61])), "\ufffda");
 * assert.throws(() => decodeUtf8Fallback(new Uint8Array([0xc0, 0x80]), true), TypeError);
 * ```
 */
export function decodeUtf8Fallback(bytes: Uint8Array, fatal = false): string {
  const n = bytes.length;
  const units = new Uint16Array(CHUNK + 2);
  const parts: string[] = [];
  let u = 0;
  let i = n >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (i < n) {
    if (u >= CHUNK) {
      parts.push(String.fromCharCode.apply(null, units.subarray(0, u) as unknown as number[]));
      u = 0;
    }
    const b = bytes[i];
    if (b < 0x80) {
      units[u++] = b;
      i++;
      continue;
    }
    const end = sequenceEnd(bytes, i);
    if (end < 0) {
      if (fatal) throw new TypeError("The bytes are not valid UTF-8");
      units[u++] = 0xfffd;
      i = -end; // past the maximal invalid part
      continue;
    }
    const p = codePoint(bytes, i, end);
    if (p < 0x10000) units[u++] = p;
    else {
      units[u++] = 0xd800 + ((p - 0x10000) >> 10);
      units[u++] = 0xdc00 + ((p - 0x10000) & 0x3ff);
    }
    i = end;
  }
  parts.push(String.fromCharCode.apply(null, units.subarray(0, u) as unknown as number[]));
  return parts.join("");
}

/**
 * Where the sequence whose lead byte (≥ 0x80) is at `i` ends, or, where it is invalid, minus
 * where its maximal invalid part ends (the lead byte alone where it cannot lead; else up to the
 * first continuation byte out of range, or the end).
 */
function sequenceEnd(bytes: Uint8Array, i: number): number {
  const b = bytes[i];
  // Continuation bytes and the bounds on the first one (no overlong or surrogate encoding, no
  // code point past U+10FFFF).
  let need: number, lower = 0x80, upper = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) need = 1;
  else if (b >= 0xe0 && b <= 0xef) {
    need = 2;
    if (b === 0xe0) lower = 0xa0;
    if (b === 0xed) upper = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    need = 3;
    if (b === 0xf0) lower = 0x90;
    if (b === 0xf4) upper = 0x8f;
  } else return -(i + 1);
  let j = i + 1;
  for (let k = 0; k < need; k++, j++) {
    const c = bytes[j]; // (undefined past the end)
    if (!(c >= lower && c <= upper)) return -j;
    lower = 0x80;
    upper = 0xbf;
  }
  return j;
}

/** The code point of the valid sequence from `i` to `end`. */
function codePoint(bytes: Uint8Array, i: number, end: number): number {
  const length = end - i;
  let p = bytes[i] & (length === 2 ? 0x1f : length === 3 ? 0x0f : 0x07);
  for (let j = i + 1; j < end; j++) p = (p << 6) | (bytes[j] & 0x3f);
  return p;
}
