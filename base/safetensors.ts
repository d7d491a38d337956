/**
 * The safetensors container, with the dtypes checkpoints use (`F32`, and `I8` and `U8` for the
 * codes of 8-bit moments): writing one, and parsing and validating one before anything is
 * allocated for its tensors.
 *
 * A file is an 8-byte little-endian header length `N`, `N` bytes of JSON, then the raw
 * little-endian data. The JSON maps each tensor name to `{dtype, shape, data_offsets}` (offsets
 * relative to the start of the data) and may hold `__metadata__`, a map of strings.
 *
 * @module
 */
import { checkCheckpointBytes } from "./_checkpoint_bytes.ts";
import { described, truncatedMessage } from "./_errors.ts";
import { HEADER_CAP, headerCap, headerLengthProblem, jsonBoundsProblem } from "./_json_bounds.ts";
import { allZeros, describedData, METADATA_KEY, truncatedData } from "./_safetensors_extent.ts";
import { decodeUtf8, encodeUtf8 } from "./_utf8.ts";
import { hasIndexName, headerBytes, writeHeaderJson } from "./_header_json.ts";

/**
 * The largest JSON header a checkpoint may have, in bytes (100,000,000, the cap of the
 * reference safetensors implementation, so that every file written here can be read there):
 * `loadState` refuses a longer header length before anything is read or allocated, and `init`
 * refuses a state whose checkpoint's header would be longer (about 280,000 RAdam tensors with names of
 * 30 characters, fewer with longer names or shapes).
 *
 * @example
 * ```ts
 * import { MAX_HEADER_BYTES } from "./safetensors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(MAX_HEADER_BYTES, 100_000_000);
 * ```
 */
export const MAX_HEADER_BYTES: number = HEADER_CAP;

export { METADATA_KEY };

/**
 * A damaged, hostile or incompatible checkpoint. Its message names what is wrong; nothing was
 * allocated or changed when it is thrown. `name` is `"CheckpointError"`; it is a RangeError.
 *
 * @example Tell a bad file from a bug
 * ```ts
 * import { CheckpointError, loadState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * try {
 *   await loadState(new Uint8Array([1, 2, 3]));
 *   assert.fail("a damaged file loads");
 * } catch (e) {
 *   if (!(e instanceof CheckpointError)) throw e;
 *   assert.ok(e instanceof RangeError);
 *   assert.match(e.message, /truncated/);
 * }
 * ```
 */
export class CheckpointError extends RangeError {
  /** An error with the given message, named "CheckpointError". */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** The dtypes this library reads and writes, and the bytes of one element of each. */
const DTYPE_BYTES = { F32: 4, I8: 1, U8: 1 } as const;

/** A dtype this library reads and writes. */
export type Dtype = keyof typeof DTYPE_BYTES;

/** One tensor to write: its name, shape and data (its dtype is the array's). */
export interface TensorOut {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array | Int8Array | Uint8Array;
}

/** The dtype of an array to write. */
function dtypeOf(data: TensorOut["data"]): Dtype {
  return data instanceof Float32Array ? "F32" : data instanceof Int8Array ? "I8" : "U8";
}

/**
 * Copies the tensors' data into `out` from `at` on, each with one `set` of its own type into a
 * view of `out` made once (a view of its bytes made for each where an F32 is not aligned).
 */
function copyData(out: Uint8Array<ArrayBuffer>, at: number, tensors: readonly TensorOut[]): void {
  const floats = new Float32Array(out.buffer, 0, out.length >> 2);
  const signed = new Int8Array(out.buffer);
  for (const t of tensors) {
    const data = t.data;
    if (data instanceof Float32Array && at % 4 === 0) floats.set(data, at >> 2);
    else if (data instanceof Int8Array) signed.set(data, at);
    else if (data instanceof Uint8Array) out.set(data, at);
    else out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
}

/** The header of `entries` as an object, keys in the order given (array indices first). */
function headerObject(
  entries: readonly TensorOut[],
  metadata: Readonly<Record<string, string>>,
): Record<string, unknown> {
  // (No prototype: a tensor named "__proto__" is a key of its own where `__proto__` is the
  // accessor of Object.prototype, as in Node.)
  const header: Record<string, unknown> = Object.create(null);
  header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const t of entries) {
    const end = offset + t.data.byteLength;
    header[t.name] = { dtype: dtypeOf(t.data), shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  return header;
}

/** One tensor of a file being planned: its name, shape, dtype and bytes, without its data. */
export interface TensorPlan {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: Dtype;
  readonly byteLength: number;
}

/**
 * The length of the (padded) JSON header `writeSafetensors` writes for these tensors, in this
 * order, and this metadata, computed without writing it: a state whose checkpoint's header
 * would be above {@linkcode MAX_HEADER_BYTES} is refused when it is made, not when it is saved.
 */
export function headerLength(
  tensors: readonly TensorPlan[],
  metadata: Readonly<Record<string, string>>,
): number {
  return paddedHeaderLength(headerJsonLength(tensors, metadata));
}

/**
 * The length, in bytes, of the JSON of the header `writeSafetensors` writes for these tensors,
 * in this order, and this metadata, before its padding ({@linkcode paddedHeaderLength}): a
 * metadata value longer by k bytes makes it longer by k bytes.
 *
 * @example
 * ```ts
 * import { headerJsonLength } from "./safetensors.ts";
 * import assert from "node:assert/strict";
 *
 * const w = { name: "w", shape: [2], dtype: "F32", byteLength: 8 } as const;
 * const json = '{"__metadata__":{"a":"1"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
 * assert.equal(headerJsonLength([w], { a: "1" }), json.length);
 * assert.equal(headerJsonLength([w], { a: "123" }), json.length + 2);
 * ```
 */
export function headerJsonLength(
  tensors: readonly TensorPlan[],
  metadata: Readonly<Record<string, string>>,
): number {
  return headerBytes(tensors, metadata);
}

/**
 * The length a header whose JSON is `json` bytes long is written with: padded with spaces to a
 * multiple of 8 bytes (what the cap on a header's length is compared with).
 *
 * @example
 * ```ts
 * import { paddedHeaderLength } from "./safetensors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([81, 88, 89].map(paddedHeaderLength), [88, 88, 96]);
 * ```
 */
export function paddedHeaderLength(json: number): number {
  return Math.ceil(json / 8) * 8;
}

/** Where one tensor lies, as read from a header (byte offsets relative to the data). */
export interface TensorEntry {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A parsed and validated header. */
export interface ParsedSafetensors {
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  /** Byte offset of the data within the file. */
  readonly dataStart: number;
}

/** Throws a CheckpointError unless this host stores numbers little-endian. */
function requireLittleEndian(): void {
  if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
    throw new CheckpointError(
      "This host is big-endian; checkpoints are little-endian and are not byte-swapped",
    );
  }
}

/**
 * Writes tensors (in the order given) and metadata as one safetensors file. The header is
 * padded with spaces so that the data starts at a multiple of 8 bytes and each tensor is copied
 * with one typed-array `set`; a tensor starts at a multiple of its element's bytes when those
 * before it leave it there (put the 1-byte tensors last).
 */
export function writeSafetensors(
  tensors: readonly TensorOut[],
  metadata: Readonly<Record<string, string>>,
): Uint8Array<ArrayBuffer> {
  requireLittleEndian();
  // (The header's metadata is a key of it too: a tensor of its name would be a second.)
  const names = new Set<string>([METADATA_KEY]);
  for (const t of tensors) {
    if (names.has(t.name)) {
      throw new RangeError(`Tensor name ${JSON.stringify(t.name)} occurs twice in a checkpoint`);
    }
    names.add(t.name);
  }
  // (A name that is an array index comes first in the object `JSON.stringify` wrote it of.)
  const json = hasIndexName(tensors)
    ? encodeUtf8(JSON.stringify(headerObject(tensors, metadata)))
    : undefined;
  const jsonLength = json?.length ?? headerBytes(tensors, metadata);
  const headerLength = paddedHeaderLength(jsonLength);
  if (headerLength > headerCap()) {
    throw new RangeError(
      `The checkpoint header would be ${headerLength} bytes, above the ${headerCap()} cap`,
    );
  }
  let offset = 0;
  for (const t of tensors) offset += t.data.byteLength;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  if (json === undefined) writeHeaderJson(out, 8, tensors, metadata);
  else out.set(json, 8);
  out.fill(0x20, 8 + jsonLength, 8 + headerLength);
  copyData(out, 8 + headerLength, tensors);
  return out;
}

/**
 * Throws a CheckpointError if any JSON object in `text` has a key twice (JSON.parse would keep
 * the last silently). One linear scan; `text` is known to be valid JSON.
 */
export function checkDuplicateKeys(text: string, what: string): void {
  const stack: (Set<string> | null)[] = []; // null: an array
  // The keys of the objects open at each depth: one Set a depth, emptied for each object there
  // (not one for each of a header's many tensor entries).
  const sets: Set<string>[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      const keys = sets[stack.length] ??= new Set();
      keys.clear();
      stack.push(keys);
      i++;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      i++;
    } else if (c === 0x22 /* " */) {
      let j = i + 1, escaped = false;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j += 2;
        } else if (d === 0x22) break;
        else j++;
      }
      const start = i;
      i = j + 1;
      const top = stack[stack.length - 1];
      if (!top) continue;
      let k = i;
      while (
        k < n && (text[k] === " " || text[k] === "\t" || text[k] === "\n" || text[k] === "\r")
      ) {
        k++;
      }
      if (text[k] !== ":") continue; // a value, not a key
      // (Read as JSON only where escaped: a header of many tensors has as many keys.)
      const key = escaped
        ? JSON.parse(text.slice(start, j + 1)) as string
        : text.slice(start + 1, j);
      if (top.has(key)) {
        throw new CheckpointError(`${what} has the key ${JSON.stringify(key)} twice`);
      }
      top.add(key);
    } else {
      i++;
    }
  }
}

/**
 * Throws a CheckpointError if JSON text of a checkpoint (its header, or, `what`, the JSON a
 * metadata string holds) nests deeper than a valid one or has an object of more keys than a valid
 * one can (base/_json_bounds.ts): what would take V8 gigabytes, or abort the process, to parse.
 *
 * @example
 * ```ts
 * import { CheckpointError, checkNesting } from "./safetensors.ts";
 * import assert from "node:assert/strict";
 *
 * checkNesting('{"groups":[{"lrScale":1}]}', "Checkpoint metadata hyperparameters");
 * assert.throws(() => checkNesting("[[[[0]]]]", "Checkpoint metadata tensor_order"), CheckpointError);
 * ```
 */
export function checkNesting(text: string, what = "Checkpoint header"): void {
  const problem = jsonBoundsProblem(text);
  if (problem !== undefined) throw new CheckpointError(`${what} ${problem}`);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isIndex(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Parses and validates a safetensors file: header length against the file and the cap, JSON
 * shape, duplicate keys, string metadata, dtypes F32, I8 and U8 only, shapes that agree with offsets, and
 * offsets that tile the data exactly (no overlap, gap, or byte outside it). Allocates nothing
 * in proportion to the data. Throws a CheckpointError naming the first problem.
 */
export function parseSafetensors(bytes: Uint8Array): ParsedSafetensors {
  requireLittleEndian();
  checkCheckpointBytes(bytes);
  const { header, dataStart } = headerOf(bytes);
  const metadata = metadataOf(header);
  const dataLength = bytes.length - dataStart;
  // (The keys are listed once: a header of many tensors is an object of as many keys.)
  const names = Object.keys(header);
  const described = describedData(header, names);
  if (described !== undefined && dataStart + described > bytes.length) {
    throw new CheckpointError(`Checkpoint ${truncatedData(dataStart, described, bytes.length)}`);
  }
  const tensors = new Map<string, TensorEntry>();
  for (const name of names) {
    if (name !== METADATA_KEY) tensors.set(name, tensorEntry(name, header[name], dataLength));
  }
  // Offsets that tile from 0 (`described`) are checked: what is left is their end.
  if (described === undefined) checkTiling(tensors, dataLength);
  else if (described !== dataLength) throw coverError(dataLength, described);
  return { metadata, tensors, dataStart };
}

/** The JSON header of a file (checked: length, UTF-8, JSON, an object, no key twice). */
function headerOf(bytes: Uint8Array): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) {
    throw new CheckpointError(
      `Checkpoint ${truncatedMessage(8, "its header length", bytes.length)}${allZeros(bytes)}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  const tooLong = headerLengthProblem(headerLength);
  if (tooLong !== undefined) throw new CheckpointError(`Checkpoint ${tooLong}`);
  const dataStart = 8 + Number(headerLength);
  if (dataStart > bytes.length) {
    throw new CheckpointError(
      `Checkpoint ${
        truncatedMessage(dataStart, `8 + its header of ${headerLength}`, bytes.length)
      }${allZeros(bytes)}`,
    );
  }
  if (headerLength < 2n) {
    // (The smallest header, `{}`, takes 2 bytes: a length of 0 or 1 is no file's.)
    throw new CheckpointError(
      `Checkpoint header length is ${headerLength}, under the 2 bytes of the smallest header ({})${
        allZeros(bytes)
      }`,
    );
  }
  let text: string;
  try {
    // A copy (the input may be shared memory), through a plain Uint8Array: the `slice` of a
    // subclass may be a view, as Node.js's Buffer's is.
    const header = new Uint8Array(bytes.buffer, bytes.byteOffset + 8, dataStart - 8).slice();
    text = decodeUtf8(header, true);
  } catch {
    throw new CheckpointError("Checkpoint header is not valid UTF-8");
  }
  checkNesting(text);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`Checkpoint header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(header)) {
    throw new CheckpointError("Checkpoint header must be a JSON object");
  }
  checkDuplicateKeys(text, "Checkpoint header");
  return { header, dataStart };
}

/** The header's metadata: an object of strings (empty when absent). */
function metadataOf(header: Record<string, unknown>): Record<string, string> {
  const rawMetadata = header[METADATA_KEY] ?? {};
  if (!isPlainObject(rawMetadata)) {
    throw new CheckpointError(`Checkpoint ${METADATA_KEY} must be an object of strings`);
  }
  for (const [key, value] of Object.entries(rawMetadata)) {
    if (typeof value !== "string") {
      throw new CheckpointError(
        `Checkpoint metadata ${JSON.stringify(key)} must be a string, got ${described(value)}`,
      );
    }
  }
  return rawMetadata as Record<string, string>;
}

/** One tensor's header entry, checked against itself and the `dataLength` bytes of data. */
function tensorEntry(name: string, raw: unknown, dataLength: number): TensorEntry {
  const label = () => `Tensor ${JSON.stringify(name)}`; // (made for an error alone)
  if (!isPlainObject(raw)) throw new CheckpointError(`${label()}: entry must be an object`);
  if (typeof raw.dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, raw.dtype)) {
    throw new CheckpointError(
      `${label()}: dtype ${
        JSON.stringify(raw.dtype) ?? "missing"
      }; only F32, I8 and U8 are supported`,
    );
  }
  const dtype = raw.dtype as Dtype;
  const size = DTYPE_BYTES[dtype];
  const shape = raw.shape;
  if (!Array.isArray(shape) || !shape.every(isIndex)) {
    throw new CheckpointError(`${label()}: shape must be an array of non-negative integers`);
  }
  const offsets = raw.data_offsets;
  if (
    !Array.isArray(offsets) || offsets.length !== 2 || !isIndex(offsets[0]) ||
    !isIndex(offsets[1]) || offsets[0] > offsets[1]
  ) {
    throw new CheckpointError(`${label()}: data_offsets must be [begin, end] with begin ≤ end`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) {
    throw new CheckpointError(
      `${label()}: data_offsets [${begin}, ${end}] run past the ${dataLength} bytes of data`,
    );
  }
  let elements = 1;
  for (const d of shape as number[]) elements *= d;
  if (elements * size !== end - begin) {
    throw new CheckpointError(
      `${label()}: shape [${shape.join(", ")}] of ${dtype} needs ${
        elements * size
      } bytes, data_offsets give ${end - begin}`,
    );
  }
  return { dtype, shape: shape as number[], begin, end };
}

/** Throws unless the tensors tile the data: sorted by offset, each starts where the last ended. */
function checkTiling(tensors: ReadonlyMap<string, TensorEntry>, dataLength: number): void {
  const sorted = [...tensors.entries()].sort((a, b) =>
    a[1].begin - b[1].begin || a[1].end - b[1].end
  );
  let at = 0;
  for (const [name, t] of sorted) {
    if (t.begin !== at) {
      throw new CheckpointError(
        t.begin < at
          ? `Tensor ${JSON.stringify(name)} overlaps another at byte ${t.begin}`
          : `Checkpoint data has a gap at bytes [${at}, ${t.begin})`,
      );
    }
    at = t.end;
  }
  if (at !== dataLength) throw coverError(dataLength, at);
}

/** The error of a file whose tensors tile bytes [0, at) of its `dataLength` bytes of data. */
function coverError(dataLength: number, at: number): CheckpointError {
  return new CheckpointError(
    `Checkpoint has ${dataLength} bytes of data but its tensors cover ${at}`,
  );
}
