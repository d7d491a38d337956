/**
 * The ring of per-step scalars of the WebGPU backend: the host's float64 scalars of each step t
 * (rounded to f32), written ahead into entry `t mod RING_SIZE` of a GPU buffer and tagged with
 * t, so that the kernels read the entry of the step count the device keeps.
 *
 * One table, {@linkcode RING_ENTRY}, lays an entry out (name → word, type); the host's writer
 * and the WGSL struct and accessor the kernels use are both made from it, and so is the row of
 * each parameter group ({@linkcode RING_GROUP_ROW}).
 *
 * @module
 */
import { emptyScalars, type StepScalars } from "../core/scalars.ts";
import { wgslStruct, wordsOf, type WordType } from "./_wgsl.ts";

/**
 * Steps' scalars the ring keeps before t (the device may lag the host by this many unreported
 * steps; see `HALT.noScalars` in device_counter.ts).
 */
export const RING_KEPT = 1024;

/** Steps' scalars the host writes at once, from t on, uploaded together (`scalarsAhead`). */
export const RING_AHEAD = 64;

/** Entries of the ring. */
export const RING_SIZE = RING_KEPT + RING_AHEAD;

/**
 * The words of a ring entry: the fields of {@linkcode StepScalars} the kernels use (same names),
 * the step t the entry was written for (`tag`), and padding to 16 words.
 *
 * @example The word of a field
 * ```ts
 * import { RING_WORD } from "./scalar_ring.ts";
 *
 * RING_WORD.tag; // 10
 * ```
 */
export const RING_ENTRY = {
  gradScale: "f32",
  coupledDecay: "f32",
  beta1: "f32",
  oneMinusBeta1: "f32",
  beta2: "f32",
  oneMinusBeta2: "f32",
  paramDecay: "f32",
  stepSize: "f32",
  eps: "f32",
  mode: "u32",
  tag: "u32",
  sync: "u32",
  alpha: "f32",
  gradMix: "f32",
  pad0: "u32",
  pad1: "u32",
} as const satisfies Record<string, WordType>;

/** The word of each field of a ring entry. */
export const RING_WORD = wordsOf(RING_ENTRY);

/** The words of a parameter group's row, after an entry's head (one row a group). */
export const RING_GROUP_ROW = {
  stepSize: "f32",
  paramDecay: "f32",
  coupledDecay: "f32",
  pad0: "u32",
} as const satisfies Record<string, WordType>;

const HEAD_WORDS = Object.keys(RING_ENTRY).length;
const ROW_WORDS = Object.keys(RING_GROUP_ROW).length;

/**
 * u32 words of one ring entry for `groupCount` parameter groups (0 without groups): the head
 * ({@linkcode RING_ENTRY}), then a {@linkcode RING_GROUP_ROW} a group.
 *
 * @example
 * ```ts
 * import { ringStride } from "./scalar_ring.ts";
 *
 * ringStride(2); // 24
 * ```
 */
export function ringStride(groupCount: number): number {
  return HEAD_WORDS + ROW_WORDS * groupCount;
}

type ScalarName = keyof StepScalars;

/**
 * [word, field, is f32] of each field a ring entry takes from the step's scalars (all but the
 * tag and the padding, each a field of `StepScalars`).
 */
function copiedFields(table: Readonly<Record<string, WordType>>): [number, ScalarName, boolean][] {
  const known = emptyScalars();
  const out: [number, ScalarName, boolean][] = [];
  Object.entries(table).forEach(([name, type], word) => {
    if (name === "tag" || name.startsWith("pad")) return;
    if (!(name in known)) throw new Error(`Ring field ${name} is not a field of StepScalars`);
    out.push([word, name as ScalarName, type === "f32"]);
  });
  return out;
}
const HEAD_FIELDS = copiedFields(RING_ENTRY);
const ROW_FIELDS = copiedFields(RING_GROUP_ROW);

/** WGSL accessor of the words of a table at `base + word` of `ring`. */
function accessor(name: string, type: string, table: Readonly<Record<string, WordType>>): string {
  const args = Object.entries(table)
    .map(([, t], word) =>
      t === "f32" ? `bitcast<f32>(ring[base + ${word}u])` : `ring[base + ${word}u]`
    )
    .join(",\n    ");
  return `fn ${name}(base: u32) -> ${type} {\n  return ${type}(\n    ${args},\n  );\n}`;
}

/**
 * WGSL of the ring as the kernels read it (`ring: array<u32>` and the `Consts` uniform `s` with
 * `ring_size` and `stride` must be bound): `ring_entry(t)` (the first word of t's entry),
 * `ring_tag(e0)`, `scalars_at(e0)` (a `Scalars` struct, the fields of {@linkcode RING_ENTRY})
 * and `group_scalars_at(e0, group)` (a `GroupScalars`, those of {@linkcode RING_GROUP_ROW}).
 */
export const RING_WGSL = /* wgsl */ `
${wgslStruct("Scalars", RING_ENTRY)}
${wgslStruct("GroupScalars", RING_GROUP_ROW)}

fn ring_entry(t: u32) -> u32 { return (t % s.ring_size) * s.stride; }

fn ring_tag(e0: u32) -> u32 { return ring[e0 + ${RING_WORD.tag}u]; }

${accessor("scalars_at", "Scalars", RING_ENTRY)}

${accessor("group_row_at", "GroupScalars", RING_GROUP_ROW)}

fn group_scalars_at(e0: u32, group: u32) -> GroupScalars {
  return group_row_at(e0 + ${HEAD_WORDS}u + ${ROW_WORDS}u * group);
}
`;

/**
 * The ring of one state: its GPU buffer and a host copy of it. {@linkcode ScalarRing.write}
 * fills the host copy; {@linkcode ScalarRing.upload} sends what changed since the last upload
 * with one `writeBuffer` (two where it wraps).
 *
 * @example
 * ```ts ignore
 * const ring = new ScalarRing(device, 0);
 * ring.write(1, scalars, [scalars]);
 * ring.upload(); // before the submission of step 1
 * ```
 */
export class ScalarRing {
  /** The GPU buffer (`ring: array<u32>` in the kernels). */
  readonly buffer: GPUBuffer;
  /** u32 words of an entry. */
  readonly stride: number;
  readonly #queue: GPUQueue;
  readonly #f32: Float32Array<ArrayBuffer>;
  readonly #u32: Uint32Array<ArrayBuffer>;
  readonly #tags = new Float64Array(RING_SIZE).fill(-1);
  /** The steps `[#from, #to)` whose entries are not uploaded yet. */
  #from = Infinity;
  #to = -Infinity;

  constructor(device: GPUDevice, groupCount: number) {
    this.stride = ringStride(groupCount);
    const data = new ArrayBuffer(RING_SIZE * this.stride * 4);
    this.#f32 = new Float32Array(data);
    this.#u32 = new Uint32Array(data);
    this.#queue = device.queue;
    this.buffer = device.createBuffer({
      label: "radam step scalars",
      size: data.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
  }

  /** Whether the entry of step `t` holds t's scalars. */
  has(t: number): boolean {
    return this.#tags[t % RING_SIZE] === t;
  }

  /** Forgets every entry (a state restarting its count). */
  clear(): void {
    this.#tags.fill(-1);
    this.#from = Infinity;
    this.#to = -Infinity;
  }

  /** Writes the entry of step `t` (uploaded by the next {@linkcode ScalarRing.upload}). */
  write(t: number, s: StepScalars, groups: readonly StepScalars[]): void {
    if (t > 0xffffffff) throw new RangeError("The WebGPU backend counts at most 2³² − 1 steps");
    const slot = t % RING_SIZE;
    const e0 = slot * this.stride;
    const f = this.#f32, u = this.#u32;
    for (const [word, name, float] of HEAD_FIELDS) {
      if (float) f[e0 + word] = s[name] as number;
      else u[e0 + word] = (s[name] as number) >>> 0;
    }
    u[e0 + RING_WORD.tag] = t;
    for (let g = 0, row = e0 + HEAD_WORDS; row < e0 + this.stride; g++, row += ROW_WORDS) {
      for (const [word, name] of ROW_FIELDS) f[row + word] = groups[g][name] as number;
    }
    this.#tags[slot] = t;
    this.#from = Math.min(this.#from, t);
    this.#to = Math.max(this.#to, t + 1);
  }

  /** Uploads the entries written since the last upload. */
  upload(): void {
    if (this.#from >= this.#to) return;
    const stride = this.stride;
    const send = (a: number, b: number) =>
      this.#queue.writeBuffer(this.buffer, a * stride * 4, this.#u32, a * stride, (b - a) * stride);
    if (this.#to - this.#from >= RING_SIZE) send(0, RING_SIZE);
    else {
      const from = this.#from % RING_SIZE;
      const to = (this.#to - 1) % RING_SIZE + 1;
      if (from < to) send(from, to);
      else {
        send(from, RING_SIZE);
        send(0, to);
      }
    }
    this.#from = Infinity;
    this.#to = -Infinity;
  }
}
