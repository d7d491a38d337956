/**
 * How far a safetensors file must reach: the data its header describes, and the words of a file
 * cut short of it. Private to the library (base/safetensors.ts parses; store/layout.ts reads
 * the parameters alone).
 *
 * @module
 */
import { truncatedMessage } from "./_errors.ts";

/** Key of the string-to-string metadata map in a safetensors header. */
export const METADATA_KEY = "__metadata__";

/**
 * What to add to the error of a file every byte of which is 0 (a buffer or file no checkpoint
 * was written into): that it is; empty for any other.
 *
 * @example
 * ```ts
 * import { allZeros } from "./_safetensors_extent.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(allZeros(new Uint8Array(10)), /its 10 bytes are all 0/);
 * assert.equal(allZeros(new Uint8Array([0, 1])), "");
 * ```
 */
export function allZeros(bytes: Uint8Array): string {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return "";
  return bytes.length === 0
    ? " (an empty file)"
    : ` (its ${bytes.length} bytes are all 0: a buffer or file no checkpoint was written into?)`;
}

/**
 * The bytes of data a parsed header describes, where its tensors' offsets tile them from 0 (a
 * file that holds fewer is truncated); undefined where they do not (a hostile header's, left to
 * the checks of each tensor and of the tiling). `names`: the header's keys, where the caller has
 * them (`Object.keys(header)`, made once for a header of many tensors).
 *
 * @example
 * ```ts
 * import { describedData } from "./_safetensors_extent.ts";
 * import assert from "node:assert/strict";
 *
 * const a = { dtype: "F32", shape: [2], data_offsets: [0, 8] };
 * const b = { dtype: "F32", shape: [1], data_offsets: [8, 12] };
 * assert.equal(describedData({ __metadata__: {}, b, a }), 12);
 * assert.equal(describedData({ b }), undefined); // a gap at [0, 8)
 * ```
 */
export function describedData(
  header: Record<string, unknown>,
  names?: readonly string[],
): number | undefined {
  const keys = names ?? Object.keys(header);
  // In the order written (a file this library wrote is), the spans tile the data as they come:
  // nothing is sorted or made for each tensor; else they are sorted by offset.
  let at = 0;
  for (const name of keys) {
    if (name === METADATA_KEY) continue;
    const span = spanOf(header[name]);
    if (span === undefined) return undefined;
    if (span[0] !== at) return describedSorted(header, keys);
    at = span[1];
  }
  return at;
}

/** {@linkcode describedData} of a header whose tensors are not in the order of their offsets. */
function describedSorted(
  header: Record<string, unknown>,
  names: readonly string[],
): number | undefined {
  const spans: (readonly [number, number])[] = [];
  for (const name of names) {
    if (name === METADATA_KEY) continue;
    const span = spanOf(header[name]);
    if (span === undefined) return undefined;
    spans.push(span);
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end] of spans) {
    if (begin !== at) return undefined;
    at = end;
  }
  return at;
}

/** A header entry's `data_offsets` where they are two indices in order, else undefined. */
function spanOf(raw: unknown): readonly [number, number] | undefined {
  const offsets = isPlainObject(raw) ? raw.data_offsets : undefined;
  if (!Array.isArray(offsets) || offsets.length !== 2) return undefined;
  const begin = offsets[0], end = offsets[1];
  return isIndex(begin) && isIndex(end) && begin <= end ? offsets as [number, number] : undefined;
}

/**
 * The words of a file of `total` bytes whose header (up to `dataStart`) describes `data` bytes
 * of data, more than it holds: `truncated: expected at least …`.
 *
 * @example
 * ```ts
 * import { truncatedData } from "./_safetensors_extent.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   truncatedData(24, 12, 30),
 *   "truncated: expected at least 36 bytes (8 + its header of 16 + the 12 bytes of data it describes), got 30",
 * );
 * ```
 */
export function truncatedData(dataStart: number, data: number, total: number): string {
  const what = `8 + its header of ${dataStart - 8} + the ${data} bytes of data it describes`;
  return truncatedMessage(dataStart + data, what, total);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isIndex(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}
