/**
 * Valid checkpoints of several kinds and the ways tests/checkpoint_hostile_fuzz_test.ts damages
 * them: bytes flipped, the file cut at each place its structure changes (the header length, the
 * header, each tensor's bounds), and the header's JSON edited (dtypes, shapes, offsets, names,
 * metadata, hyperparameters, the order and groups of the tensors, an 8-bit moment's codes and
 * scales), each edit drawn from values a hostile or careless writer could give
 * (tests/checkpoint_edit_arb.ts).
 */
import {
  adamw,
  linearWarmup,
  lion,
  lookahead,
  type OptimizerState,
  radam,
  ranger,
  saveState,
  sgd,
  type ShapedTensor,
  step,
} from "../mod.ts";
import { addCheckpointExtras } from "../core/checkpoint_extras.ts";
import { type Header, join, split } from "./checkpoint_files.ts";
import type { Edit } from "./checkpoint_edit_arb.ts";

export { type Edit, editArb } from "./checkpoint_edit_arb.ts";
import { randoms } from "./util.ts";

/** A valid checkpoint, and the `lr` it loads with (a schedule's must be given again). */
export interface Sample {
  readonly what: string;
  readonly bytes: Uint8Array;
  readonly lr?: (t: number) => number;
}

/** Steps a state three times with seeded gradients. */
async function trained(
  make: () => Promise<OptimizerState>,
  shapes: Record<string, number>,
): Promise<OptimizerState> {
  let state = await make();
  for (let t = 0; t < 3; t++) {
    const grads: Record<string, Float32Array> = {};
    Object.entries(shapes).forEach(([name, n], i) => grads[name] = randoms(n, 10 * t + i));
    state = step(state, grads);
  }
  return state;
}

/** A tensor of `n` seeded values, of `shape` where given. */
function tensor(n: number, seed: number, shape?: number[]): Float32Array | ShapedTensor {
  const data = randoms(n, seed);
  return shape ? { data, shape } : data;
}

/** The schedule of the scheduled sample (passed again to `loadState`). */
const SCHEDULE = linearWarmup(0.01, { warmupSteps: 2 });

/**
 * The samples: RAdam (32-bit, a rank-2 tensor), Ranger with 8-bit moments (tensors above and
 * below the 4096-element threshold), LookAhead(AdamW) with parameter groups, SGD with momentum
 * and 8-bit moments whose holder saves gradients accumulated and moving averages beside it, and
 * Lion on a schedule.
 */
export async function samples(): Promise<Sample[]> {
  const radamState = await trained(
    () => radam({ lr: 0.01 }).init({ "fc.weight": tensor(6, 1, [2, 3]), "fc.bias": tensor(2, 2) }),
    { "fc.weight": 6, "fc.bias": 2 },
  );
  const rangerState = await trained(
    () =>
      ranger({ lr: 0.01, states: "8bit", k: 2 }).init({
        a: tensor(4100, 3),
        b: tensor(3, 4),
        c: tensor(4096, 5, [64, 64]),
      }),
    { a: 4100, b: 3, c: 4096 },
  );
  const groupsState = await trained(
    () =>
      lookahead(
        adamw({
          lr: 0.01,
          weightDecay: 0.1,
          groups: [{ match: /bias/, lrScale: 2, weightDecay: 0 }],
        }),
        { k: 3, alpha: 0.4 },
      ).init({ "l.weight": tensor(5, 6), "l.bias": tensor(2, 7), "é.ü": tensor(1, 8) }),
    { "l.weight": 5, "l.bias": 2, "é.ü": 1 },
  );
  const sgdState = await trained(
    () =>
      sgd({ lr: 0.01, momentum: 0.9, states: "8bit" }).init({
        w: tensor(4097, 9),
        b: tensor(4, 10),
      }),
    { w: 4097, b: 4 },
  );
  addCheckpointExtras(sgdState, () => ({
    metadata: { accum_count: "2" },
    tensors: Promise.resolve([
      { name: "w.accum", shape: [4097], data: randoms(4097, 11) },
      { name: "b.average", shape: [2, 2], data: randoms(4, 12) },
      { name: "frozen.average", shape: [3], data: randoms(3, 13) },
    ]),
  }));
  const lionState = await trained(
    () => lion({ lr: SCHEDULE }).init({ x: tensor(7, 14) }),
    { x: 7 },
  );
  return [
    { what: "radam", bytes: await saveState(radamState) },
    { what: "ranger 8bit", bytes: await saveState(rangerState) },
    { what: "lookahead(adamw) groups", bytes: await saveState(groupsState) },
    { what: "sgd 8bit extras", bytes: await saveState(sgdState) },
    { what: "lion schedule", bytes: await saveState(lionState), lr: SCHEDULE },
  ];
}

/** A tensor entry of a parsed header. */
type Entry = { dtype: unknown; shape: unknown; data_offsets: [number, number] };

/** The tensors' names of a header (not its metadata), in the file's order. */
function tensorKeys(header: Header): string[] {
  return Object.keys(header).filter((k) => k !== "__metadata__");
}

/** The places a file's structure changes: the header length, the header, each tensor's bounds. */
export function structuralPoints(bytes: Uint8Array): number[] {
  const { header, data } = split(bytes);
  const dataStart = bytes.length - data.length;
  const points = [0, 1, 7, 8, 9, dataStart - 1, dataStart, bytes.length - 1];
  for (const key of tensorKeys(header)) {
    const [begin, end] = (header[key] as Entry).data_offsets;
    points.push(dataStart + begin, dataStart + end);
  }
  return points;
}

/** `value`, JSON text, parsed. */
function parsed(value: string): unknown {
  return JSON.parse(value);
}

/** Sets (or deletes) `path` (dot-separated) of `target`. */
function setPath(target: Record<string, unknown>, path: string, value: unknown, remove: boolean) {
  const keys = path.split(".");
  let at: Record<string, unknown> = target;
  for (const key of keys.slice(0, -1)) {
    const next = at[key];
    if (typeof next !== "object" || next === null) return;
    at = next as Record<string, unknown>;
  }
  const last = keys[keys.length - 1];
  if (remove) delete at[last];
  else Object.defineProperty(at, last, { value, enumerable: true, writable: true });
}

/** The file `good` edited by `e`. */
export function applyEdit(good: Uint8Array, e: Edit): Uint8Array {
  switch (e.kind) {
    case "flip": {
      const out = good.slice();
      for (const bit of e.bits) out[(bit >> 3) % out.length] ^= 1 << (bit & 7);
      return out;
    }
    case "cut": {
      const points = structuralPoints(good);
      const at = points[e.at % points.length] + e.delta;
      return good.slice(0, Math.max(0, Math.min(good.length - 1, at)));
    }
    case "length": {
      const out = good.slice();
      const view = new DataView(out.buffer);
      const n = view.getBigUint64(0, true) + BigInt(e.delta);
      view.setBigUint64(0, n < 0n ? 0n : n, true);
      return out;
    }
    case "float":
    case "scale":
    case "code":
      return pokeData(good, e);
  }
  const { header, data } = split(good);
  const keys = tensorKeys(header);
  const text = editHeader(header, keys, e);
  return join(text ?? JSON.stringify(header), data);
}

/**
 * Writes one float (of an F32 tensor, or of an 8-bit moment's scales) or one byte (of its codes)
 * of the data of a drawn tensor.
 */
function pokeData(
  good: Uint8Array,
  e: Edit & { kind: "float" | "scale" | "code" },
): Uint8Array {
  const out = good.slice();
  const { header, data } = split(out);
  const keys = tensorKeys(header).filter((k) =>
    e.kind === "code"
      ? k.endsWith(".codes")
      : e.kind === "scale"
      ? k.endsWith(".scales")
      : (header[k] as Entry).dtype === "F32"
  );
  if (keys.length === 0) return out;
  const [begin, end] = (header[keys[e.tensor % keys.length]] as Entry).data_offsets;
  if (end === begin) return out;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (e.kind === "code") view.setUint8(begin + e.at % (end - begin), e.value);
  else view.setFloat32(begin + 4 * (e.at % ((end - begin) / 4)), e.value, true);
  return out;
}

/** Edits the parsed header in place; returns the header's text where it must be written so. */
function editHeader(header: Header, keys: string[], e: Edit): string | undefined {
  const key = keys[("tensor" in e ? e.tensor : 0) % keys.length];
  const entry = header[key] as Entry;
  const meta = header.__metadata__ as Record<string, string>;
  switch (e.kind) {
    case "field": {
      if (e.field === "entry") header[key] = parsed(e.value);
      else if (e.field === "extra") (entry as Record<string, unknown>).extra = parsed(e.value);
      else setPath(entry as Record<string, unknown>, e.field, parsed(e.value), false);
      return;
    }
    case "dtype":
      entry.dtype = e.dtype;
      return;
    case "shape":
      entry.shape = reshaped(entry.shape as number[], e.how);
      return;
    case "offsets": {
      const other = header[keys[e.other % keys.length]] as Entry;
      const [begin, end] = entry.data_offsets;
      const moved: Record<typeof e.how, [number, number]> = {
        swap: other.data_offsets,
        shift: [begin + e.delta, end + e.delta],
        other: [begin, end + e.delta],
        past: [begin, end + 2 ** 40],
        reverse: [end, begin],
        huge: [2 ** 53 + e.delta, 2 ** 53 + e.delta + (end - begin)],
        share: [other.data_offsets[0], other.data_offsets[0] + (end - begin)],
      };
      if (e.how === "swap") other.data_offsets = entry.data_offsets;
      entry.data_offsets = moved[e.how];
      return;
    }
    case "name":
      return renamed(header, keys, key, e);
    case "metadata": {
      if (e.how === "delete") delete meta[e.key];
      else if (e.how === "text") {
        Object.defineProperty(meta, e.key, { value: e.text, enumerable: true, writable: true });
      } else Object.defineProperty(meta, e.key, { value: parsed(e.value), enumerable: true });
      return;
    }
    case "hyper": {
      const hp = JSON.parse(meta.hyperparameters);
      setPath(hp, e.path, parsed(e.value), e.how === "delete");
      meta.hyperparameters = JSON.stringify(hp);
      return;
    }
    case "order": {
      const order = JSON.parse(meta.tensor_order) as unknown[];
      const at = e.at % order.length;
      if (e.how === "reverse") order.reverse();
      if (e.how === "drop") order.splice(at, 1);
      if (e.how === "twice") order.push(order[at]);
      if (e.how === "add") order.splice(at, 0, e.name);
      if (e.how === "number") order[at] = at;
      if (e.how === "object") order[at] = { name: order[at] };
      meta.tensor_order = JSON.stringify(order);
      return;
    }
    case "groups": {
      if (!Object.hasOwn(meta, "tensor_groups")) return;
      const map = JSON.parse(meta.tensor_groups) as number[];
      map[e.at % map.length] = e.value;
      if (e.length < 0) map.pop();
      if (e.length > 0) map.push(0);
      meta.tensor_groups = JSON.stringify(map);
      return;
    }
  }
}

/** A shape edited as `how` says. */
function reshaped(shape: number[], how: string): unknown {
  const n = shape.reduce((a, b) => a * b, 1);
  switch (how) {
    case "reverse":
      return [...shape].reverse();
    case "flatten":
      return [n];
    case "ones":
      return [1, ...shape, 1];
    case "plusOne":
      return [n + 1];
    case "minusOne":
      return [n - 1];
    case "overflow":
      // 2^64 · n: a product past 2^53 whose f64 value is exact, and (mod 2^32, 2^64) n again.
      return [2 ** 32, 2 ** 32, n];
    case "zero":
      return [0, n];
    case "scalar":
      return [];
    default:
      return Array.from({ length: 1000 }, () => 1).concat([n]);
  }
}

/** A tensor renamed, deleted, given twice (in the JSON text) or copied, or two swapped. */
function renamed(
  header: Header,
  keys: string[],
  key: string,
  e: Edit & { kind: "name" },
): string | undefined {
  const entry = header[key];
  switch (e.how) {
    case "rename": {
      delete header[key];
      Object.defineProperty(header, e.name, { value: entry, enumerable: true, writable: true });
      return;
    }
    case "delete":
      delete header[key];
      return;
    case "duplicate": {
      const text = JSON.stringify(header);
      return text.replace("{", `{${JSON.stringify(key)}:${JSON.stringify(entry)},`);
    }
    case "copy":
      Object.defineProperty(header, e.name, {
        value: structuredClone(entry),
        enumerable: true,
        writable: true,
      });
      return;
    case "swap": {
      const other = keys[e.other % keys.length];
      [header[key], header[other]] = [header[other], header[key]];
      return;
    }
  }
}
