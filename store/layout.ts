/**
 * The params-first layout of a stored checkpoint: the same bytes as the checkpoint (a
 * safetensors file), reordered so that a reader finds the header and every parameter at the
 * start, and can fetch just them, not the moments or whatever other sections the state has.
 *
 * A checkpoint is `[8-byte header length N][N bytes of JSON header][data]`, where the header
 * gives each tensor's byte range in the data. Its params-first form is
 * `[8 + N bytes, unchanged][the parameters' ranges, in data order][every other byte of the data,
 * in order]`: the parameters are the tensors the metadata's `tensor_order` names (each F32); all
 * the rest, of any name and dtype, follows. The header says where everything was, so the
 * checkpoint is rebuilt exactly, byte for byte.
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";
import { describedData, truncatedData } from "../base/_safetensors_extent.ts";
import { decodeUtf8 } from "../base/_utf8.ts";
import { headerLengthProblem, jsonBoundsProblem } from "../base/_json_bounds.ts";
import { truncatedMessage } from "../base/_errors.ts";

/** The parameters of a checkpoint, read from the start of its params-first form. */
export interface ParamsView {
  /** The optimizer step the checkpoint was saved at. */
  readonly step: number;
  /**
   * The name of the optimizer it was saved by (its metadata's `optimizer`, e.g. `"radam"`);
   * absent where a store does not say.
   */
  readonly optimizer?: string;
  /**
   * The parameter names, in the checkpoint's `tensor_order`: the order they were given to
   * `init` (a checkpoint saved by version 0.2.0 of an 8-bit state: its arena's).
   */
  readonly names: readonly string[];
  /** Each parameter's shape. */
  readonly shapes: Readonly<Record<string, readonly number[]>>;
  /** The parameters (copies), by name. */
  readonly params: Readonly<Record<string, Float32Array>>;
}

/** Where the parameters lie in a checkpoint, from its header. */
interface Plan {
  /** 8 + the header's length: where the data starts. */
  readonly dataStart: number;
  /** The parameters, sorted by where their bytes begin in the data. */
  readonly params: readonly { name: string; shape: number[]; begin: number; end: number }[];
  readonly step: number;
  readonly optimizer: string;
  readonly names: readonly string[];
  /** The bytes of the parameters, in all. */
  readonly paramBytes: number;
}

const bad = (what: string) => new CheckpointError(`Stored checkpoint ${what}`);

/** The header length and its JSON, from the first bytes of a checkpoint. */
function headerOf(bytes: Uint8Array): { dataStart: number; header: Record<string, unknown> } {
  if (bytes.length < 8) throw bad(truncatedMessage(8, "its header length", bytes.length));
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  // (The cap of loadState's reader, first: no file passes it, however many bytes follow.)
  const tooLong = headerLengthProblem(n);
  if (tooLong !== undefined) throw bad(tooLong);
  if (n > BigInt(bytes.length - 8)) {
    throw bad(truncatedMessage(8n + n, `8 + its header of ${n}`, bytes.length));
  }
  const dataStart = 8 + Number(n);
  let text: string;
  try {
    text = decodeUtf8(bytes.slice(8, dataStart), true);
  } catch {
    throw bad("header is not valid JSON");
  }
  // (Refused before it is parsed: what would take V8 gigabytes, or abort the process.)
  const problem = jsonBoundsProblem(text);
  if (problem !== undefined) throw bad(`header ${problem}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    throw bad("header is not valid JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw bad("header is not a JSON object");
  }
  return { dataStart, header: header as Record<string, unknown> };
}

/**
 * A checkpoint's metadata (its header's `__metadata__`; empty when it has none), read from its
 * header alone. A CheckpointError if the bytes do not start with a safetensors header.
 */
export function checkpointMetadata(bytes: Uint8Array): Readonly<Record<string, unknown>> {
  const metadata = headerOf(bytes).header.__metadata__;
  return typeof metadata === "object" && metadata !== null
    ? metadata as Record<string, unknown>
    : {};
}

/**
 * A checkpoint's `tensor_order`, read from its header alone: the order its parameters are
 * named in, which a contribution's flat gradient follows. A CheckpointError if there is none.
 */
export function checkpointOrder(bytes: Uint8Array): string[] {
  return metadataOf(headerOf(bytes).header).names;
}

/** The parameter names, step and optimizer a checkpoint's metadata gives. */
function metadataOf(
  header: Record<string, unknown>,
): { names: string[]; step: number; optimizer: string } {
  const metadata = header.__metadata__ as Record<string, unknown> | undefined;
  const order = String(metadata?.tensor_order);
  let names: unknown;
  try {
    names = jsonBoundsProblem(order) === undefined ? JSON.parse(order) : undefined;
  } catch {
    names = undefined;
  }
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === "string")) {
    throw bad("has no tensor_order naming its parameters");
  }
  const step = Number(metadata?.step);
  if (!/^(0|[1-9][0-9]*)$/.test(String(metadata?.step)) || !Number.isSafeInteger(step)) {
    throw bad(`has an invalid step ${JSON.stringify(metadata?.step)}`);
  }
  const optimizer = metadata?.optimizer;
  if (typeof optimizer !== "string") throw bad("has no optimizer name");
  // 0.1.0 named Ranger "lookahead(ranger)"; loadState reads it as "ranger".
  return { names, step, optimizer: optimizer === "lookahead(ranger)" ? "ranger" : optimizer };
}

/** Where each parameter lies, checked: F32, within the data, not overlapping. */
function planOf(bytes: Uint8Array, total: number): Plan {
  const { dataStart, header } = headerOf(bytes);
  const { names, step, optimizer } = metadataOf(header);
  const dataLength = total - dataStart;
  const described = describedData(header);
  if (described !== undefined && described > dataLength) {
    throw bad(truncatedData(dataStart, described, total));
  }
  const params = names.map((name) => {
    const entry = Object.hasOwn(header, name) ? header[name] as Record<string, unknown> : null;
    const offsets = entry?.data_offsets as unknown[] | undefined;
    const shape = entry?.shape as unknown[] | undefined;
    if (
      entry?.dtype !== "F32" || !Array.isArray(offsets) || !Array.isArray(shape) ||
      !offsets.every(Number.isSafeInteger) || !shape.every(Number.isSafeInteger)
    ) {
      throw bad(`has no F32 entry for the parameter ${JSON.stringify(name)}`);
    }
    if (!(shape as number[]).every((d) => d >= 0)) {
      throw bad(`has the shape ${JSON.stringify(shape)} for the parameter ${JSON.stringify(name)}`);
    }
    const [begin, end] = offsets as number[];
    const size = (shape as number[]).reduce((a, b) => a * b, 4);
    if (!(begin >= 0 && end === begin + size && end <= dataLength)) {
      throw bad(`has invalid data_offsets for the parameter ${JSON.stringify(name)}`);
    }
    return { name, shape: shape as number[], begin, end };
  }).sort((a, b) => a.begin - b.begin);
  let paramBytes = 0;
  params.forEach((p, i) => {
    if (i > 0 && p.begin < params[i - 1].end) throw bad(`has overlapping parameters`);
    paramBytes += p.end - p.begin;
  });
  return { dataStart, params, step, optimizer, names, paramBytes };
}

/**
 * Copies the data of a checkpoint (`from`, starting at `fromData`) into a params-first form
 * (`to`, starting at `toData`), or back with `back`.
 */
function permute(plan: Plan, from: Uint8Array, to: Uint8Array, back: boolean): void {
  const start = plan.dataStart;
  let p = start; // next parameter byte in the params-first form
  let q = start + plan.paramBytes; // next other byte in the params-first form
  let at = start; // next byte of the checkpoint
  const copy = (checkpointAt: number, formAt: number, length: number) => {
    if (back) to.set(from.subarray(formAt, formAt + length), checkpointAt);
    else to.set(from.subarray(checkpointAt, checkpointAt + length), formAt);
  };
  for (const param of plan.params) {
    const begin = start + param.begin;
    copy(at, q, begin - at);
    q += begin - at;
    copy(begin, p, param.end - param.begin);
    p += param.end - param.begin;
    at = start + param.end;
  }
  copy(at, q, from.length - at);
}

/**
 * A checkpoint's params-first form, and how many of its first bytes hold the header and the
 * parameters. A CheckpointError if `checkpoint` is not a checkpoint of this library.
 */
export function toParamsFirst(checkpoint: Uint8Array): { bytes: Uint8Array; prefix: number } {
  const plan = planOf(checkpoint, checkpoint.length);
  const out = new Uint8Array(checkpoint.length);
  out.set(checkpoint.subarray(0, plan.dataStart));
  permute(plan, checkpoint, out, false);
  return { bytes: out, prefix: plan.dataStart + plan.paramBytes };
}

/** The checkpoint a params-first form holds, byte for byte. */
export function fromParamsFirst(form: Uint8Array): Uint8Array<ArrayBuffer> {
  const plan = planOf(form, form.length);
  const out = new Uint8Array(form.length);
  out.set(form.subarray(0, plan.dataStart));
  permute(plan, form, out, true);
  return out;
}

/** A copy of a parameter's values, refused unless finite. */
function valuesOf(bytes: Uint8Array, at: number, length: number, name: string): Float32Array {
  const values = new Float32Array(length);
  new Uint8Array(values.buffer).set(bytes.subarray(at, at + length * 4));
  for (let i = 0; i < length; i++) {
    if (values[i] - values[i] !== 0) {
      throw bad(
        `parameter ${JSON.stringify(name)}[${i}] is ${values[i]}; expected a finite number`,
      );
    }
  }
  return values;
}

/**
 * The parameters of a checkpoint, from the first `prefix` bytes of its params-first form
 * (`total`: the length of the whole form) or, with `checkpoint`, from a whole checkpoint as
 * saved.
 */
export function readParamsPrefix(bytes: Uint8Array, total: number, checkpoint = false): ParamsView {
  const plan = planOf(bytes, total);
  const needed = checkpoint ? total : plan.dataStart + plan.paramBytes;
  if (bytes.length < needed) {
    throw bad(truncatedMessage(needed, "its header and parameters", bytes.length));
  }
  const params: [string, Float32Array][] = [];
  const shapes: [string, readonly number[]][] = [];
  let at = plan.dataStart;
  for (const p of plan.params) {
    const from = checkpoint ? plan.dataStart + p.begin : at;
    params.push([p.name, valuesOf(bytes, from, (p.end - p.begin) / 4, p.name)]);
    shapes.push([p.name, p.shape]);
    at += p.end - p.begin;
  }
  // Plain objects (a structured clone, as of an RPC of Cloudflare's, refuses a null prototype),
  // each name an own property (Object.fromEntries defines them: "__proto__" too).
  return {
    step: plan.step,
    optimizer: plan.optimizer,
    names: plan.names,
    shapes: Object.fromEntries(shapes),
    params: Object.fromEntries(params),
  };
}

/**
 * {@linkcode readParamsPrefix} for a store's `loadParams`: its CheckpointError names the store
 * (`store`, its name), as those of a whole checkpoint's load do.
 */
export function readStoredParams(
  store: string,
  bytes: Uint8Array,
  total: number,
  checkpoint = false,
): ParamsView {
  try {
    return readParamsPrefix(bytes, total, checkpoint);
  } catch (error) {
    if (!(error instanceof CheckpointError)) throw error;
    throw ofStore(store, error);
  }
}

/**
 * `error`, of a stored checkpoint, naming the store it is in (`store`): its own subject,
 * "Checkpoint" or "Stored checkpoint", replaced (`Checkpoint user-7 truncated: …`), else put
 * after it (`Checkpoint user-7: …`).
 *
 * @example
 * ```ts
 * import { CheckpointError } from "@optim/radam";
 * import { ofStore } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new CheckpointError("Checkpoint truncated: expected at least 8 bytes, got 3");
 * const named = ofStore("user-7", error).message;
 * assert.equal(named, "Checkpoint user-7 truncated: expected at least 8 bytes, got 3");
 * assert.equal(ofStore("u", new CheckpointError("Bad")).message, "Checkpoint u: Bad");
 * ```
 */
export function ofStore(store: string, error: CheckpointError): CheckpointError {
  const rest = /^(?:Stored c|C)heckpoint (.*)$/s.exec(error.message)?.[1];
  return new CheckpointError(
    rest === undefined ? `Checkpoint ${store}: ${error.message}` : `Checkpoint ${store} ${rest}`,
  );
}
