/**
 * How far the JSON of a checkpoint may nest and how many keys an object of it may have, checked
 * before it is parsed: what no valid file passes, and what would take V8 gigabytes, or abort the
 * process, to parse, and the cap on a header's length. Private to the library
 * (base/safetensors.ts checks a header and the JSON its metadata strings hold; store/layout.ts
 * the header of a checkpoint it reads alone).
 *
 * @module
 */

/** The largest JSON header a checkpoint may have, in bytes (base/safetensors.ts exports it). */
export const HEADER_CAP = 100_000_000;

/** The cap in force: {@linkcode HEADER_CAP}, unless a test lowered it ({@linkcode setHeaderCap}). */
let cap = HEADER_CAP;

/**
 * The cap on a header's length in force, in bytes: {@linkcode HEADER_CAP}, except in tests of the
 * cap that lowered it with {@linkcode setHeaderCap}. Every check of a header's length reads it
 * (a file's header length, a state's checkpoint at `init` and `loadState`, a save).
 *
 * @example
 * ```ts
 * import { HEADER_CAP, headerCap } from "./_json_bounds.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(headerCap(), HEADER_CAP);
 * ```
 */
export function headerCap(): number {
  return cap;
}

/**
 * Test hook: lowers the cap on a header's length to `bytes` (a positive integer up to
 * {@linkcode HEADER_CAP}), so that a test of what happens at the cap builds headers of a few
 * kilobytes rather than of 100 MB; no argument: {@linkcode HEADER_CAP} again. Not part of the
 * library's API (a private module); the library never calls it.
 *
 * @example
 * ```ts
 * import { HEADER_CAP, headerCap, headerLengthProblem, setHeaderCap } from "./_json_bounds.ts";
 * import assert from "node:assert/strict";
 *
 * setHeaderCap(4096);
 * try {
 *   assert.equal(headerLengthProblem(4104n), "header length 4104 is above the 4096-byte cap");
 * } finally {
 *   setHeaderCap();
 * }
 * assert.equal(headerCap(), HEADER_CAP);
 * ```
 */
export function setHeaderCap(bytes?: number): void {
  if (bytes !== undefined && !(Number.isInteger(bytes) && bytes > 0 && bytes <= HEADER_CAP)) {
    throw new RangeError(`A header cap must be an integer from 1 to ${HEADER_CAP}, got ${bytes}`);
  }
  cap = bytes ?? HEADER_CAP;
}

/**
 * What is wrong with the header length a checkpoint's first 8 bytes give (`header length N is
 * above the 100000000-byte cap`), or undefined where it is within {@linkcode headerCap}:
 * checked before anything is read, allocated or decoded (base/safetensors.ts for a checkpoint,
 * store/layout.ts for a stored one read from its first bytes).
 *
 * @example
 * ```ts
 * import { headerLengthProblem } from "./_json_bounds.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(headerLengthProblem(100_000_000n), undefined);
 * assert.equal(
 *   headerLengthProblem(2n ** 40n),
 *   "header length 1099511627776 is above the 100000000-byte cap",
 * );
 * ```
 */
export function headerLengthProblem(length: bigint): string | undefined {
  return length > BigInt(cap) ? `header length ${length} is above the ${cap}-byte cap` : undefined;
}

/**
 * The most keys a JSON object of a header may have: a tensor's entry takes at least 50 bytes
 * (`"":{"dtype":"U8","shape":[],"data_offsets":[0,0]},`), so no header within the cap holds
 * more. Refused before the JSON is parsed: V8 aborts the process (it cannot be caught) on an
 * object of about 9 million keys, which a hostile header of 100 MB can hold.
 */
export const MAX_JSON_KEYS = HEADER_CAP / 50;

/**
 * The deepest nesting of a header (the header, a tensor's entry, its shape) and of the JSON a
 * metadata string holds (`hyperparameters`, its `groups`, a group). Refused before the JSON is
 * parsed: 100 MB of nested arrays took V8 5 GB and 16 s to parse.
 */
export const MAX_JSON_DEPTH = 3;

/**
 * What is wrong with the bounds of JSON `text` (`nests deeper than 3 levels at character i`, or
 * `has an object of more than 2000000 keys`), or undefined where it is within them. One linear
 * scan of the text, which need not be valid JSON (its strings skipped, `:` counted).
 *
 * @example
 * ```ts
 * import { jsonBoundsProblem } from "./_json_bounds.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(jsonBoundsProblem('{"a":{"b":[0]},"c":"[[[["}'), undefined);
 * assert.equal(jsonBoundsProblem("[[[[0]]]]"), "nests deeper than 3 levels at character 3");
 * ```
 */
export function jsonBoundsProblem(text: string): string | undefined {
  const keys: number[] = []; // per open bracket: the keys of an object so far, -1 for an array
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) {
        if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (keys.length === MAX_JSON_DEPTH) {
        return `nests deeper than ${MAX_JSON_DEPTH} levels at character ${i}`;
      }
      keys.push(c === 0x7b ? 0 : -1);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      keys.pop();
    } else if (c === 0x3a /* : */ && keys.length > 0 && keys[keys.length - 1] >= 0) {
      if (++keys[keys.length - 1] > MAX_JSON_KEYS) {
        return `has an object of more than ${MAX_JSON_KEYS} keys`;
      }
    }
  }
  return undefined;
}
