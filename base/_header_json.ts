/**
 * The JSON header of a safetensors file, measured and written byte by byte into the file:
 * `{"__metadata__":{…},"name":{"dtype":…,"shape":[…],"data_offsets":[begin,end]},…}`, the
 * bytes `JSON.stringify` writes of that object, without the object (of as many keys as the file
 * has tensors), its strings or its arrays being made. Private to the library
 * (base/safetensors.ts).
 *
 * @module
 */
import { METADATA_KEY } from "./_safetensors_extent.ts";
import { encodeUtf8, utf8Length } from "./_utf8.ts";

/**
 * What a header entry is written of: a tensor's name, shape, and dtype and bytes, as planned or
 * of its data (`F32` of a Float32Array, `I8` of an Int8Array, `U8` of a Uint8Array).
 */
export type HeaderEntry =
  & {
    readonly name: string;
    readonly shape: readonly number[];
  }
  & (
    | { readonly dtype: string; readonly byteLength: number }
    | { readonly data: Float32Array | Int8Array | Uint8Array }
  );

/** The dtype of a header entry. */
export function dtypeOf(t: HeaderEntry): string {
  if (!("data" in t)) return t.dtype;
  return t.data instanceof Float32Array ? "F32" : t.data instanceof Int8Array ? "I8" : "U8";
}

/** The bytes of a header entry's tensor. */
function bytesOf(t: HeaderEntry): number {
  return "data" in t ? t.data.byteLength : t.byteLength;
}

/**
 * Bytes of the JSON header of `tensors`, in this order (offsets from 0, each where the last
 * ended), and `metadata`; {@linkcode writeHeaderJson} writes as many.
 *
 * @example
 * ```ts
 * import { headerBytes } from "./_header_json.ts";
 * import assert from "node:assert/strict";
 *
 * const w = { name: "w", shape: [2], dtype: "F32", byteLength: 8 };
 * const json = '{"__metadata__":{},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
 * assert.equal(headerBytes([w], {}), json.length);
 * ```
 */
export function headerBytes(
  tensors: readonly HeaderEntry[],
  metadata: Readonly<Record<string, string>>,
): number {
  // `{"__metadata__":{…}}`, and `,"name":{…}` for each tensor before its last `}`.
  let bytes = utf8Length(JSON.stringify({ [METADATA_KEY]: metadata }));
  let offset = 0;
  for (const t of tensors) {
    const end = offset + bytesOf(t);
    bytes += 2 + stringBytes(t.name) + entryBytes(t, offset, end);
    offset = end;
  }
  return bytes;
}

/**
 * Writes the JSON header of `tensors` (as {@linkcode headerBytes} measures it) into `out` at
 * `at`; the index after it. A name that is an array index (`"0"`) is put by `JSON.stringify`
 * of an object before the others: such tensors are the caller's to write so
 * ({@linkcode hasIndexName}).
 *
 * @example
 * ```ts
 * import { headerBytes, writeHeaderJson } from "./_header_json.ts";
 * import assert from "node:assert/strict";
 *
 * const w = { name: "w", shape: [2], dtype: "F32", byteLength: 8 };
 * const out = new Uint8Array(headerBytes([w], { a: "1" }));
 * assert.equal(writeHeaderJson(out, 0, [w], { a: "1" }), out.length);
 * const entry = { dtype: "F32", shape: [2], data_offsets: [0, 8] };
 * assert.equal(new TextDecoder().decode(out), JSON.stringify({ __metadata__: { a: "1" }, w: entry }));
 * ```
 */
export function writeHeaderJson(
  out: Uint8Array,
  at: number,
  tensors: readonly HeaderEntry[],
  metadata: Readonly<Record<string, string>>,
): number {
  const head = encodeUtf8(JSON.stringify({ [METADATA_KEY]: metadata }));
  out.set(head.subarray(0, head.length - 1), at); // (its last `}` closes the whole)
  at += head.length - 1;
  let offset = 0;
  for (const t of tensors) {
    const end = offset + bytesOf(t);
    out[at++] = 0x2c; // ,
    at = writeString(out, at, t.name);
    at = writeAscii(out, at, ':{"dtype":');
    at = writeString(out, at, dtypeOf(t));
    at = writeAscii(out, at, ',"shape":[');
    for (let i = 0; i < t.shape.length; i++) {
      if (i > 0) out[at++] = 0x2c;
      at = writeNumber(out, at, t.shape[i]);
    }
    at = writeAscii(out, at, '],"data_offsets":[');
    at = writeNumber(out, at, offset);
    out[at++] = 0x2c;
    at = writeNumber(out, at, end);
    at = writeAscii(out, at, "]}");
    offset = end;
  }
  out[at++] = 0x7d; // }
  return at;
}

/**
 * Whether a name may be an array index (`"0"` to `"4294967294"`), which objects keep first: true
 * of those, and of a few decimals that are none (`"1.5"`), whose header the caller then writes
 * by its object too, the same bytes.
 */
export function hasIndexName(tensors: readonly HeaderEntry[]): boolean {
  for (const { name } of tensors) {
    const c = name.charCodeAt(0);
    if (c >= 0x30 && c <= 0x39 && String(Number(name)) === name && Number(name) < 2 ** 32 - 1) {
      return true;
    }
  }
  return false;
}

/** Whether `JSON.stringify(text)` is `text` in quotes: printable ASCII, no `"` or `\`. */
function isPlain(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 /* " */ || c === 0x5c /* \ */) return false;
  }
  return true;
}

/** Bytes of `JSON.stringify(text)` in UTF-8 (no string made for a plain one). */
function stringBytes(text: string): number {
  return isPlain(text) ? text.length + 2 : utf8Length(JSON.stringify(text));
}

/** Writes `JSON.stringify(text)` in UTF-8 at `at`; the index after it. */
function writeString(out: Uint8Array, at: number, text: string): number {
  if (!isPlain(text)) {
    const bytes = encodeUtf8(JSON.stringify(text));
    out.set(bytes, at);
    return at + bytes.length;
  }
  out[at++] = 0x22;
  at = writeAscii(out, at, text);
  out[at++] = 0x22;
  return at;
}

/** Writes ASCII `text` at `at`; the index after it. */
function writeAscii(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
  return at;
}

/** Bytes of a header entry, `{"dtype":…,"shape":[…],"data_offsets":[begin,end]}`. */
function entryBytes(t: HeaderEntry, begin: number, end: number): number {
  let bytes = '{"dtype":,"shape":[],"data_offsets":[,]}'.length + stringBytes(dtypeOf(t));
  bytes += numberBytes(begin) + numberBytes(end) + Math.max(t.shape.length - 1, 0);
  for (const d of t.shape) bytes += numberBytes(d);
  return bytes;
}

/** Bytes of `JSON.stringify` of a number in an array (`null` for one not finite). */
function numberBytes(d: number): number {
  if (!Number.isSafeInteger(d) || d < 0) return (JSON.stringify(d) ?? "null").length;
  let digits = 1;
  for (let x = d; x >= 10; x = Math.floor(x / 10)) digits++;
  return digits;
}

/** Writes `JSON.stringify` of a number in an array at `at`; the index after it. */
function writeNumber(out: Uint8Array, at: number, d: number): number {
  if (!Number.isSafeInteger(d) || d < 0) return writeAscii(out, at, JSON.stringify(d) ?? "null");
  const end = at + numberBytes(d);
  let x = d;
  for (let i = end - 1; i >= at; i--) {
    out[i] = 0x30 + x % 10;
    x = Math.floor(x / 10);
  }
  return end;
}
