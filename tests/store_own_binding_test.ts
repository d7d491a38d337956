/**
 * optimisticStep on a store someone wrote without running the conformance kit: a load of the
 * wrong shape is a TypeError naming the store and the contract, not a property read of the
 * library's own; a method that answers a value rather than a Promise is waited on as `await`
 * would; numeric versions are a TypeError saying a version is a string.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import {
  dataParallel,
  memoryCheckpointStore,
  optimisticStep,
  type StoredCheckpoint,
  type VersionedCheckpointStore,
} from "../store.ts";

/** A Map-backed store whose loads `answer` reshapes; with `sync`, its methods answer values. */
function ownStore(answer: (loaded: StoredCheckpoint | null) => unknown, sync = false) {
  const map = new Map<string, StoredCheckpoint>();
  let counter = 0;
  const wrap = <T>(value: T) => sync ? value : Promise.resolve(value);
  return {
    name: "my-kv",
    load() {
      const current = map.get("k");
      return wrap(answer(current ? { ...current, bytes: current.bytes.slice() } : null));
    },
    save(bytes: Uint8Array, expected: string | null, meta?: string) {
      if ((map.get("k")?.version ?? null) !== expected) return wrap(null);
      const version = String(++counter);
      map.set("k", { bytes: bytes.slice(), version, meta });
      return wrap(version);
    },
  } as unknown as VersionedCheckpointStore;
}

const options = {
  optimizer: radam({ backend: "js" }),
  init: () => ({ w: new Float32Array(3) }),
  gradient: (state: { grads: Record<string, Float32Array> }) => void state.grads.w.fill(1),
};

Deno.test("own store: a load of the wrong shape is a TypeError naming the store and what load gave", async () => {
  const cases: [string, (l: StoredCheckpoint | null) => unknown, string][] = [
    ["undefined when empty", (l) => l ?? undefined, "undefined"],
    ["a [bytes, version] pair", (l) => l && [l.bytes, l.version], "Array(2)"],
    ["the bytes alone", (l) => l && l.bytes, "Uint8Array"],
    ["{ data, version }", (l) => l && { data: l.bytes, version: l.version }, "Object"],
  ];
  for (const [what, answer, gave] of cases) {
    const store = ownStore(answer);
    // The first step (an empty store) and the second (a stored checkpoint) each meet a load.
    const refused = await (async () => {
      for (let i = 0; i < 2; i++) await optimisticStep(store, options);
    })().then(() => null, (e) => e);
    assert.ok(refused instanceof TypeError, `${what}: ${refused}`);
    assert.equal(
      refused.message,
      `Checkpoint my-kv: load() gave ${gave}; a store's load must give null when it holds no ` +
        "checkpoint, else { bytes, version, meta? } (the StoredCheckpoint contract; " +
        "verifyCheckpointStore checks a store's answers)",
      what,
    );
  }
});

Deno.test("own store: methods that answer values, not Promises, are waited on as await would", async () => {
  const store = ownStore((l) => l, true);
  const steps = [];
  for (let i = 0; i < 3; i++) steps.push((await optimisticStep(store, options)).step);
  assert.deepEqual(steps, [1, 2, 3]);
});

/** A Map-backed store of numbered versions, as a database's row counter numbers them. */
function numbered(saveAnswers: (n: number) => unknown = (n) => n) {
  let current: { bytes: Uint8Array; version: number } | null = null;
  const saves: number[] = [];
  return {
    saves,
    store: {
      name: "my-numbered-kv",
      load: () => Promise.resolve(current && { ...current, bytes: current.bytes.slice() }),
      save(bytes: Uint8Array, expected: unknown) {
        if ((current?.version ?? null) !== expected) return Promise.resolve(null);
        current = { bytes: bytes.slice(), version: (current?.version ?? 0) + 1 };
        saves.push(current.version);
        return Promise.resolve(saveAnswers(current.version));
      },
    } as unknown as VersionedCheckpointStore,
  };
}

Deno.test("own store: numeric versions are a TypeError naming load() or save() and saying a version is a string", async () => {
  // save answers the number: the step saved; refused, saying it may have been applied.
  const first = numbered();
  const saved = await optimisticStep(first.store, options).then(() => null, (e) => e);
  assert.ok(saved instanceof TypeError, String(saved));
  assert.match(
    saved.message,
    /^Checkpoint my-numbered-kv: save\(\) answered 1, not a version \(a string\) or null \(another save came first\); a version must be a string .*String\(n\).*; the update may have been applied/,
  );
  assert.deepEqual(first.saves, [1]);
  // load gives a number (save answered the string): refused at once, before any step or save.
  const second = numbered(String);
  await optimisticStep(second.store, options);
  const loaded = await optimisticStep(second.store, options).then(() => null, (e) => e);
  assert.ok(loaded instanceof TypeError, String(loaded));
  assert.match(
    loaded.message,
    /^Checkpoint my-numbered-kv: load\(\) gave the version 1, not a string; a version must be a string/,
  );
  assert.deepEqual(second.saves, [1], "nothing saved by the refused step");
});

Deno.test("own store: a commit that landed but answered no version is a TypeError saying the update may have been applied, not a conflict retried", async () => {
  for (const answer of [{}, { version: undefined }, { version: 2 }]) {
    const inner = memoryCheckpointStore({ name: "my-training-kv" });
    let commits = 0;
    const store = {
      ...inner,
      async commit(c: Parameters<typeof inner.commit>[0]) {
        commits++;
        const done = await inner.commit(c);
        return done === null ? null : answer; // landed; the answer lacks its version
      },
    } as unknown as typeof inner;
    const got = await optimisticStep(store, options).then(() => null, (e) => e);
    assert.ok(got instanceof TypeError, `${JSON.stringify(answer)}: ${got}`);
    assert.match(
      got.message,
      /^Checkpoint my-training-kv: commit\(\) answered \{ version \} .*not a version \(a string\) or null.*the update may have been applied/,
    );
    assert.equal(commits, 1, "not retried as a conflict (a step without an id would apply twice)");
    assert.equal((await inner.load())?.version, "1");
  }
});

Deno.test("own store: a data-parallel fold whose commit landed but answered no version rejects its contributions, saying they may have been applied and why", async () => {
  for (const answer of [{ version: undefined }, { version: 3 }]) {
    const inner = memoryCheckpointStore({ name: "my-training-kv" });
    const store = {
      ...inner,
      async commit(c: Parameters<typeof inner.commit>[0]) {
        const done = await inner.commit(c);
        return done === null || c.checkpoint === null ? done : { ...done, ...answer };
      },
    } as unknown as typeof inner;
    const trainer = dataParallel(store, {
      optimizer: options.optimizer,
      init: options.init,
      pollMs: 5,
    });
    try {
      const { step } = await trainer.params();
      const gradient = { w: new Float32Array([1, 2, 3]) };
      const got = await trainer.submit({ id: "r1", base: step, samples: 1, gradient })
        .then(() => null, (e) => e);
      assert.ok(got instanceof Error, `${JSON.stringify(answer)}: ${got}`);
      assert.match(
        got.message,
        /^Contribution "r1": the commit of the step applying it failed \(Checkpoint my-training-kv: commit\(\) answered \{ version \} .*not a version \(a string\).*\); it may have been applied/,
      );
      assert.ok(got.cause instanceof TypeError);
    } finally {
      await trainer.close();
    }
  }
});
