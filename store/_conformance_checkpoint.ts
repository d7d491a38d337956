/**
 * The clauses of {@linkcode VersionedCheckpointStore} the conformance kit checks: load, the
 * check-and-set save, copies, metadata, and what concurrent saves and loads see.
 *
 * @module
 */
import { MAX_META_BYTES, type VersionedCheckpointStore } from "./contract.ts";
import {
  answer,
  asLoaded,
  Broken,
  bytesOf,
  type Clause,
  expect,
  expectSame,
  race,
  same,
  show,
} from "./_conformance_kit.ts";

type Store = VersionedCheckpointStore;

/** Saves `bytes` on an empty store, throwing {@linkcode Broken} unless a version came back. */
export async function firstSave(store: Store, bytes: Uint8Array, meta?: string): Promise<string> {
  const did = `save(${show(bytes)}, null${meta === undefined ? "" : ", meta"}) on an empty store`;
  const version = await answer(did, () => store.save(bytes, null, meta));
  expect(typeof version === "string", did, "a version (a string)", version);
  return version!;
}

/** Throws {@linkcode Broken} unless `store` loads `bytes` under `version` with `meta`. */
export async function expectLoads(
  store: Store,
  after: string,
  expected: { bytes: Uint8Array; version: string; meta?: string } | null,
): Promise<void> {
  const loaded = await answer(`load() after ${after}`, () => store.load().then(asLoaded));
  expectSame(`load() after ${after}`, loaded, expected);
}

/** The clauses of the check-and-set save. */
export const CHECKPOINT_CLAUSES: readonly Clause<Store>[] = [
  {
    id: "load.empty",
    promise: "a store nothing was saved to loads null",
    async run(make) {
      const store = await make();
      expectSame("load() on a new store", await answer("load()", () => store.load()), null);
    },
  },
  {
    id: "save.first",
    promise: "save(bytes, null, meta) on an empty store makes them current under a new version",
    async run(make) {
      const store = await make();
      const bytes = bytesOf(1);
      const version = await firstSave(store, bytes, "first");
      await expectLoads(store, "a first save", { bytes, version, meta: "first" });
    },
  },
  {
    id: "save.stale",
    promise: "save with a version that is not current (null on a non-empty store, a replaced " +
      "one, one never given) returns null and changes nothing",
    async run(make) {
      const store = await make();
      const v1 = await firstSave(store, bytesOf(1));
      const v2 = await answer("save(bytes, v1)", () => store.save(bytesOf(2), v1, "second"));
      expect(
        typeof v2 === "string" && v2 !== v1,
        "save(bytes, v1) with v1 current",
        "a new version",
        v2,
      );
      const current = { bytes: bytesOf(2), version: v2!, meta: "second" };
      for (
        const [expected, what] of [[null, "null"], [v1, "v1 (replaced)"], [
          `${v2}x`,
          "a version never given",
        ]] as const
      ) {
        const did = `save(other bytes, ${what}) with v2 current`;
        expectSame(did, await answer(did, () => store.save(bytesOf(3), expected, "stale")), null);
        await expectLoads(store, did, current);
      }
    },
  },
  {
    id: "save.versions",
    promise: "each save makes a version never given before, and meta is the save's own " +
      "(absent when the save gave none)",
    async run(make) {
      const store = await make();
      const seen = [await firstSave(store, bytesOf(0), "kept?")];
      for (let i = 1; i < 4; i++) {
        const did = `save #${i + 1} with the current version`;
        const v = await answer(did, () => store.save(bytesOf(i), seen.at(-1)!));
        expect(
          typeof v === "string" && !seen.includes(v),
          did,
          `a version other than ${show(seen)}`,
          v,
        );
        seen.push(v!);
        await expectLoads(store, `${did} (without meta)`, { bytes: bytesOf(i), version: v! });
      }
    },
  },
  {
    id: "save.copies",
    promise: "a store keeps its own copy of saved bytes and loads give the caller's own copy",
    async run(make) {
      const store = await make();
      const bytes = bytesOf(1);
      const version = await firstSave(store, bytes);
      bytes.fill(0);
      const did = "load() after the saved array was overwritten";
      const loaded = await answer(did, () => store.load());
      expectSame(did, loaded?.bytes, bytesOf(1));
      loaded!.bytes.fill(0);
      await expectLoads(store, "overwriting a loaded array", { bytes: bytesOf(1), version });
    },
  },
  {
    id: "load.buffer",
    promise: "load gives bytes over an ArrayBuffer (not shared memory), as saveState gives them: " +
      "what new Response(bytes), fetch and crypto.subtle take",
    async run(make) {
      const store = await make();
      await firstSave(store, bytesOf(1));
      const did = "load() after a save";
      const loaded = await answer(did, () => store.load());
      expectSame(did, loaded?.bytes, bytesOf(1));
      // (Asked by its tag, not instanceof: a store of another realm's ArrayBuffer keeps it.)
      const kind = Object.prototype.toString.call(loaded!.bytes.buffer).slice(8, -1);
      if (kind !== "ArrayBuffer") {
        throw new Broken(did, "bytes over an ArrayBuffer", `bytes over a ${kind}`);
      }
    },
  },
  {
    id: "save.meta",
    promise: `metadata of up to MAX_META_BYTES (${MAX_META_BYTES}) UTF-8 bytes is kept exactly`,
    async run(make) {
      const store = await make();
      // 3-byte, 4-byte (a surrogate pair) and 1-byte characters, MAX_META_BYTES in all.
      const meta = "é€😀".repeat(Math.floor(MAX_META_BYTES / 9)) + "m".repeat(MAX_META_BYTES % 9);
      const version = await firstSave(store, bytesOf(1), meta);
      await expectLoads(store, `a save with ${MAX_META_BYTES} bytes of meta`, {
        bytes: bytesOf(1),
        version,
        meta,
      });
    },
  },
  {
    id: "save.race",
    promise: "of saves made at once with the same expected version (null included), exactly " +
      "one succeeds and its bytes are current",
    async run(make, { racers }) {
      const store = await make();
      let expected: string | null = null;
      for (const round of ["an empty store", "its current version"]) {
        const did = `${racers} saves at once on ${round}`;
        const at: string | null = expected;
        const got: (string | null)[] = await answer(
          did,
          () => race(racers, (i) => store.save(bytesOf(i + 10), at)),
        );
        const won = got.flatMap((v, i) => (v === null ? [] : [i]));
        expect(won.length === 1, did, "exactly one version, the others null", got);
        expected = got[won[0]];
        await expectLoads(store, did, { bytes: bytesOf(won[0] + 10), version: expected! });
      }
    },
  },
  {
    id: "load.whole",
    promise: "a load made while saves go on sees a checkpoint whole: the bytes saved under the " +
      "version it gives",
    async run(make, { racers }) {
      const store = await make();
      const saved = new Map<string, Uint8Array>();
      let version = await firstSave(store, bytesOf(0, 1 << 16));
      saved.set(version, bytesOf(0, 1 << 16));
      const loads: Promise<unknown>[] = [];
      for (let i = 1; i <= racers; i++) {
        const bytes = bytesOf(i, 1 << 16);
        loads.push(store.load());
        const v = await answer(`save #${i + 1}`, () => store.save(bytes, version));
        if (v === null) {
          throw new Broken(`save #${i + 1} with the current version`, "a version", "null");
        }
        saved.set(version = v, bytes);
        loads.push(store.load());
      }
      for (const loaded of await answer("loads during saves", () => Promise.all(loads))) {
        const l = loaded as { bytes: Uint8Array; version: string } | null;
        const ok = l !== null && saved.has(l.version) && same(l.bytes, saved.get(l.version));
        expect(ok, "a load() during saves", "the bytes saved under the version it gives", l);
      }
    },
  },
];
