/**
 * What a checkpoint's bytes must be (a `Uint8Array`), and what to say where something else was
 * given: its source (a path, a URL, the file read as text or as base64, a view, the bytes, a
 * Node Buffer or a state through JSON), an optimizer (or its factory) given first, or the hints
 * of any bytes argument.
 * @module
 */
import { factoryName } from "./_call_hints.ts";
import { described, isOptimizerValue } from "./_errors.ts";
import { bytesHint } from "./_input_hints.ts";
import { isStateCopy } from "./_state_errors.ts";
import { decodeBase64 } from "./_base64.ts";

/**
 * Throws a TypeError unless `bytes` is a `Uint8Array`, saying what it got and how to read a
 * checkpoint's bytes from it: a file's path or URL, the file read as text, an optimizer given
 * first (`loadState(optimizer, bytes)`, as PyTorch's `optimizer.load_state_dict`), and those of
 * `bytesHint`.
 */
export function checkCheckpointBytes(bytes: unknown): void {
  if (bytes instanceof Uint8Array) return;
  throw new TypeError(
    `A checkpoint must be a Uint8Array, got ${described(bytes)}${
      sourceHint(bytes) || bytesHint(bytes)
    }`,
  );
}

/** What to add where a checkpoint's source was given for its bytes, or an optimizer; else "". */
function sourceHint(value: unknown): string {
  if (typeof value === "string" && value.includes('{"__metadata__"')) {
    return " (the file read as text: read its bytes, await Deno.readFile(path), Node's " +
      "await readFile(path), new Uint8Array(await response.arrayBuffer()))";
  }
  if (isBase64Checkpoint(value)) {
    return ' (a checkpoint as base64 text: decode it, Node\'s Buffer.from(text, "base64"), ' +
      "or Uint8Array.from(atob(text), (c) => c.charCodeAt(0)))";
  }
  if (value === "{}" || isStateCopy(value)) {
    return " (an optimizer state through JSON, which writes it as {}: a state's checkpoint is " +
      "await saveState(state), bytes; keep those, or base64 text of them)";
  }
  if (typeof value === "string" || value instanceof URL) {
    return " (a file's path or URL? loadState takes its bytes: await Deno.readFile(path), " +
      "Node's await readFile(path), new Uint8Array(await (await fetch(url)).arrayBuffer()))";
  }
  if (ArrayBuffer.isView(value) && value.constructor?.name !== "Uint8Array") {
    return ` (a view of its bytes: new Uint8Array(view.buffer, view.byteOffset, view.byteLength))`;
  }
  if (isIndexedBytes(value)) {
    return " (a Uint8Array that went through JSON, which writes it as an object of indices: " +
      "keep a checkpoint as bytes, or as base64 text; new Uint8Array(Object.values(o)) recovers it)";
  }
  if (isBufferJson(value)) {
    return ' (a Node Buffer that went through JSON, which writes it as { type: "Buffer", data }: ' +
      "keep a checkpoint as bytes, or as base64 text; new Uint8Array(o.data) recovers it)";
  }
  const what = isOptimizerValue(value)
    ? "an optimizer: the checkpoint holds its own"
    : factoryName(value) !== undefined
    ? "a factory: the checkpoint holds its optimizer"
    : undefined;
  return what === undefined
    ? ""
    : ` (${what} and goes first, loadState(bytes), or loadState(bytes, { lr }))`;
}

/** Whether `value` is what `JSON.parse(JSON.stringify(uint8Array))` gives: { "0": byte, … }. */
function isIndexedBytes(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  if (ArrayBuffer.isView(value)) return false; // (another realm's: bytesHint says so)
  const keys = Object.keys(value);
  return keys.length > 0 && keys[0] === "0" && keys.every((k, i) => k === String(i)) &&
    Object.values(value).every((b) =>
      typeof b === "number" && Number.isInteger(b) && b >= 0 && b <= 255
    );
}

/** Whether `value` is what `JSON.parse(JSON.stringify(buffer))` gives of a Node Buffer. */
function isBufferJson(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const { type, data } = value as { type?: unknown; data?: unknown };
  return type === "Buffer" && Array.isArray(data) &&
    data.every((b) => typeof b === "number" && Number.isInteger(b) && b >= 0 && b <= 255);
}

/**
 * Whether `value` is a checkpoint's bytes as base64 text: base64 characters only, whose ninth
 * byte opens the header's JSON (after its 8-byte length), as every checkpoint's does.
 */
function isBase64Checkpoint(value: unknown): boolean {
  if (typeof value !== "string" || value.length < 16) return false;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return false;
  return decodeBase64(value.slice(0, 12))[8] === 0x7b;
}
