/**
 * The conformance kit (store/conformance.ts) on the first mistakes of someone binding their own
 * key-value service: each is reported saying what to fix, not with the kit's own internals.
 */
import assert from "node:assert/strict";
import {
  StoreConformanceError,
  type StoredCheckpoint,
  verifyCheckpointStore,
  type VersionedCheckpointStore,
} from "../store.ts";

/** A Map-backed store (VersionedCheckpointStore's example), its answers changed by `answer`. */
function mapStore(
  answer: (loaded: StoredCheckpoint | null) => unknown = (loaded) => loaded,
  sync = false,
): VersionedCheckpointStore {
  const map = new Map<string, StoredCheckpoint>();
  let counter = 0;
  const wrap = <T>(value: T) => sync ? value : Promise.resolve(value);
  return {
    name: "map",
    load() {
      const current = map.get("k");
      return wrap(answer(current ? { ...current, bytes: current.bytes.slice() } : null)) as never;
    },
    save(bytes, expected, meta) {
      if ((map.get("k")?.version ?? null) !== expected) return wrap(null) as never;
      const version = String(++counter);
      map.set("k", { bytes: bytes.slice(), version, meta });
      return wrap(version) as never;
    },
  };
}

/** The failures of verifying stores of `make` (the verification must reject). */
async function failures(make: () => VersionedCheckpointStore) {
  const error = await verifyCheckpointStore(make).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError, String(error));
  return error.failures;
}

Deno.test("conformance newcomer: the Map store the tests build on keeps the contract", async () => {
  const report = await verifyCheckpointStore(() => mapStore());
  assert.equal(report.store, "map");
});

Deno.test("conformance newcomer: a store without a name is refused with a TypeError naming name", async () => {
  for (const name of [undefined, 7]) {
    const make = () => ({ ...mapStore(), name }) as unknown as VersionedCheckpointStore;
    await assert.rejects(verifyCheckpointStore(make), (e: unknown) => {
      assert.ok(e instanceof TypeError, String(e));
      assert.match(e.message, /verifyCheckpointStore: the store the factory made has no name/);
      assert.match(e.message, new RegExp(`got ${name}$`));
      return true;
    });
  }
});

Deno.test("conformance newcomer: methods that return values, not Promises, are told to be async", async () => {
  const got = await failures(() => mapStore(undefined, true));
  assert.equal(got.length, 10);
  for (const f of got) {
    assert.match(f.did, /^(load|save)\(…\)$/);
    assert.match(
      f.expected,
      /^a Promise \(the contract's methods are async: declare (load|save) async/,
    );
    assert.doesNotMatch(f.got, /is not a function/);
  }
  assert.deepEqual(got[0], {
    ...got[0],
    clause: "load.empty",
    did: "load(…)",
    got: "null, returned as it is",
  });
});

Deno.test("conformance newcomer: loads of the wrong shape show what they gave, not {}", async () => {
  const cases: [string, (l: StoredCheckpoint) => unknown, RegExp][] = [
    [
      "an ArrayBuffer for bytes",
      (l) => ({ ...l, bytes: l.bytes.slice().buffer }),
      /"bytes":"ArrayBuffer\(16\) \(not a Uint8Array\)"/,
    ],
    [
      "a DataView for bytes",
      (l) => ({ ...l, bytes: new DataView(l.bytes.slice().buffer) }),
      /"bytes":"DataView\(16 bytes\) \(not a Uint8Array\)"/,
    ],
    ["a [bytes, version] pair", (l) => [l.bytes, l.version], /^\["Uint8Array\(16\) \[/],
    ["the bytes alone", (l) => l.bytes, /^Uint8Array\(16\) \[/],
  ];
  for (const [what, answer, shown] of cases) {
    const got = await failures(() => mapStore((l) => l === null ? null : answer(l)));
    const first = got.find((f) => f.clause === "save.first");
    assert.ok(first, what);
    assert.match(first.got, shown, what);
  }
});
