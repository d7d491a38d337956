/**
 * The clauses of the conformance kit about size: a checkpoint of the largest size a binding
 * must hold (the option `largestCheckpoint`) saved, committed and loaded bit for bit, and a
 * gradient of that size submitted and read back. A binding that writes one value per checkpoint
 * into a database whose values are limited (400 KB, 512 KiB, 25 MiB) fails here, not at the
 * first checkpoint past its limit.
 *
 * @module
 */
import { saveState, sgd } from "../mod.ts";
import type { VersionedCheckpointStore } from "./contract.ts";
import type { CommitResult, TrainingStore } from "./training.ts";
import { answer, Broken, type Clause, expect, show } from "./_conformance_kit.ts";
import { firstSave } from "./_conformance_checkpoint.ts";
import { commitOf, submitNew } from "./_conformance_calls.ts";

/** The default of the option `largestCheckpoint`: 4 MiB. */
export const LARGEST_CHECKPOINT = 4 * 1024 * 1024;

/** Bytes of `length` drawn from `seed` (xorshift32): no run or period a store could shorten. */
export function largeBytes(seed: number, length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  const words = new Uint32Array(bytes.buffer, 0, length >>> 2);
  let x = (seed * 0x9e3779b9) >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  for (let i = 0; i < words.length; i++) words[i] = next();
  for (let i = words.length * 4; i < length; i++) bytes[i] = next() & 255;
  return bytes;
}

/**
 * A checkpoint (SGD, one tensor `w`) of at least `bytes` bytes, and its parameters: each a
 * float32 in [-1, 1) drawn from `seed`.
 */
async function largeCheckpoint(seed: number, bytes: number) {
  const words = new Uint32Array(largeBytes(seed, Math.ceil(bytes / 4) * 4).buffer);
  const w = Float32Array.from(words, (u) => u / 2 ** 31 - 1);
  const state = await sgd({ backend: "js" }).init({ w });
  return { checkpoint: await saveState(state), w };
}

/**
 * Throws {@linkcode Broken} unless `got` is bytes equal to `expected`, saying where they first
 * differ (a message that shows megabytes is no help).
 */
export function expectBytes(did: string, got: unknown, expected: Uint8Array): void {
  const wanted = `the ${expected.length} bytes given, bit for bit`;
  if (!(got instanceof Uint8Array) && !ArrayBuffer.isView(got)) {
    throw new Broken(did, wanted, show(got));
  }
  const bytes = new Uint8Array(got.buffer, got.byteOffset, got.byteLength);
  if (bytes.length !== expected.length) {
    throw new Broken(did, wanted, `${bytes.length} bytes`);
  }
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== expected[i]) {
      throw new Broken(did, wanted, `bytes that differ first at byte ${i}`);
    }
  }
}

/** The size the kit checks, as a message says it. */
const sizeOf = (n: number) =>
  n >= 1 << 20 && n % (1 << 20) === 0
    ? `${n >> 20} MiB`
    : n >= 1024 && n % 1024 === 0
    ? `${n >> 10} KiB`
    : `${n} bytes`;

/** The clause of {@linkcode VersionedCheckpointStore} about size. */
export const LARGE_CHECKPOINT_CLAUSES: readonly Clause<VersionedCheckpointStore>[] = [
  {
    id: "save.large",
    promise: "a checkpoint of largestCheckpoint bytes (an option; default 4 MiB) is saved, " +
      "replaced and loaded bit for bit, and a small one saved over it loads as it was saved",
    async run(make, { largestCheckpoint: n }) {
      const store = await make();
      const size = sizeOf(n);
      const first = largeBytes(1, n);
      let version = await firstSave(store, first);
      let did = `load() after a save of ${size}`;
      let loaded = await answer(did, () => store.load());
      expect(loaded?.version === version, did, `the version ${show(version)}`, loaded?.version);
      expectBytes(did, loaded!.bytes, first);
      const second = largeBytes(2, n);
      did = `save(other bytes of ${size}, its version)`;
      const v2 = await answer(did, () => store.save(second, version));
      expect(typeof v2 === "string", did, "a new version", v2);
      did = `load() after a second save of ${size}`;
      loaded = await answer(did, () => store.load());
      expect(loaded?.version === v2, did, `the version ${show(v2)}`, loaded?.version);
      expectBytes(did, loaded!.bytes, second);
      did = `save(16 bytes, the version of the ${size})`;
      version = (await answer(did, () => store.save(largeBytes(3, 16), v2!)))!;
      expect(typeof version === "string", did, "a new version", version);
      did = `load() after a save of 16 bytes over ${size}`;
      expectBytes(did, (await answer(did, () => store.load()))?.bytes, largeBytes(3, 16));
    },
  },
];

/** The clauses of {@linkcode TrainingStore} about size. */
export const LARGE_TRAINING_CLAUSES: readonly Clause<TrainingStore>[] = [
  {
    id: "commit.large",
    promise: "a commit of a checkpoint of at least largestCheckpoint bytes (as an optimistic " +
      "step with an id or a fold makes) is loaded bit for bit, and loadParams gives its " +
      "parameters, the first commit and one over it",
    async run(make, { largestCheckpoint: n }) {
      const store = await make();
      let expected: string | null = null;
      for (const step of [1, 2]) {
        const { checkpoint, w } = await largeCheckpoint(step, n);
        const size = `${checkpoint.length} bytes`;
        let did = `commit of a checkpoint of ${size} (step ${step}) applying a fresh id`;
        const at: string | null = expected;
        const done: CommitResult | null = await answer(did, () =>
          store.commit(commitOf({
            checkpoint,
            expected: at,
            step,
            seq: step,
            applied: [{ id: `f${step}`, base: step - 1, samples: 1 }],
            fresh: [`f${step}`],
          })));
        expect(typeof done?.version === "string", did, "{ version: a new one, lease: null }", done);
        expected = done!.version;
        did = `load() after a commit of ${size}`;
        const loaded = await answer(did, () => store.load());
        expect(loaded?.version === expected, did, `the version ${show(expected)}`, loaded?.version);
        expectBytes(did, loaded!.bytes, checkpoint);
        did = `loadParams() after a commit of ${size}`;
        const params = await answer(did, () => store.loadParams());
        expectBytes(did, params?.params.w, new Uint8Array(w.buffer));
      }
    },
  },
  {
    id: "submit.large",
    promise: "a gradient of largestCheckpoint bytes (a contribution to a model of that size " +
      "at most) is submitted and read back bit for bit",
    async run(make, { largestCheckpoint: n }) {
      const store = await make();
      const gradient = largeBytes(4, Math.ceil(n / 4) * 4);
      await submitNew(store, "r", 0, gradient);
      const [p] = await answer("pending(1)", () => store.pending(1));
      expect(p?.id === "r", `pending(1) after a submit of ${sizeOf(n)}`, 'the contribution "r"', p);
      const did = `gradient(pending) of a submit of ${gradient.length} bytes`;
      expectBytes(did, await answer(did, () => store.gradient(p)), gradient);
    },
  },
];
