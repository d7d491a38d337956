/**
 * The optimistic step, on the Deno KV store (in-memory databases, some answering "database is
 * locked") and on the in-process store.
 */
import assert from "node:assert/strict";
import { loadState, radam, readParams, saveState, step } from "../mod.ts";
import {
  CheckpointConflictError,
  dataParallel,
  kvCheckpointStore,
  memoryCheckpointStore,
  optimisticStep,
  type VersionedCheckpointStore,
} from "../kv.ts";
import { busyKv, PREFIX, rejectsWith, withKv } from "./kv_fakes.ts";

function gradientOf(i: number, length: number): Float32Array {
  return Float32Array.from({ length }, (_, j) => Math.sin(i * 7.1 + j * 1.3));
}

/**
 * Sets the gradient of update `i` of the 5 parameters `w`: it depends on the parameters the
 * state holds, so an update computed on a stale state would show.
 */
function setGradient(
  state: { params: Record<string, Float32Array>; grads: Record<string, Float32Array> },
  i: number,
): void {
  const g = gradientOf(i, 5);
  for (let j = 0; j < 5; j++) state.grads.w[j] = g[j] + state.params.w[j];
}

/**
 * 40 concurrent updates; with `serialize` false they conflict (as writers in separate processes
 * do) and are retried, else they take turns and none conflicts.
 */
async function concurrentSteps(store: VersionedCheckpointStore, serialize = false): Promise<void> {
  const optimizer = radam({ lr: 0.05 });
  const n = 40;
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    optimisticStep(store, {
      optimizer,
      init: () => ({ w: new Float32Array(5) }),
      tensors: { w: 5 },
      // The gradient depends on the loaded parameters, so a stale state would show.
      gradient: async (state) => {
        await new Promise((r) => setTimeout(r, i % 3));
        setGradient(state, i);
        return i;
      },
      meta: (previous) => JSON.stringify([...JSON.parse(previous ?? "[]"), i]),
      maxAttempts: 200,
      maxBackoffMs: 20,
      serialize,
    })));
  const steps = results.map((r) => r.step).sort((a, b) => a - b);
  assert.deepEqual(steps, Array.from({ length: n }, (_, i) => i + 1), "distinct steps 1..n");
  if (serialize) assert.ok(results.every((r) => r.attempts === 1), "they took turns");
  else assert.ok(results.some((r) => r.attempts > 1), "some attempts were refused and retried");
  // Replay in step order, in one process.
  const order = [...results].sort((a, b) => a.step - b.step).map((r) => r.result);
  let state = await optimizer.init({ w: new Float32Array(5) });
  for (const i of order) {
    setGradient(state, i);
    state = step(state);
  }
  const stored = (await store.load())!;
  const served = await loadState(stored.bytes);
  assert.equal(served.step, n);
  assert.deepEqual(await readParams(served), await readParams(state));
  assert.deepEqual(stored.bytes, await saveState(state), "the same checkpoint, bit for bit");
  assert.deepEqual(JSON.parse(stored.meta!), order, "the metadata went with each commit");
}

Deno.test("optimistic step: 40 concurrent updates on Deno KV, none lost, each on the state it read", async () => {
  await withKv((kv) => concurrentSteps(kvCheckpointStore(kv, PREFIX, { chunkBytes: 256 })));
});

Deno.test("optimistic step: a busy database (answers lost after writes too) neither loses nor repeats an update", async () => {
  await withKv(async (kv) => {
    for (const chunkBytes of [256, 65536]) {
      const flaky = busyKv(kv, 0.15, chunkBytes);
      const store = kvCheckpointStore(flaky, [...PREFIX, chunkBytes], { chunkBytes });
      const optimizer = radam({ lr: 0.05 });
      const n = 40;
      const settled = await Promise.allSettled(
        Array.from({ length: n }, (_, i) =>
          optimisticStep(store, {
            optimizer,
            init: () => ({ w: new Float32Array(5) }),
            gradient: (state) => {
              setGradient(state, i);
              return i;
            },
            meta: (previous) => JSON.stringify([...JSON.parse(previous ?? "[]"), i]),
            maxAttempts: 200,
            maxBackoffMs: 20,
            serialize: false,
          })),
      );
      assert.ok(flaky.busy > 20, `${flaky.busy} busy answers`);
      const stored = (await kvCheckpointStore(kv, [...PREFIX, chunkBytes]).load())!;
      const journal: number[] = JSON.parse(stored.meta!);
      assert.equal(new Set(journal).size, journal.length, "no update applied twice");
      let done = 0;
      for (const [i, r] of settled.entries()) {
        if (r.status === "fulfilled") {
          done++;
          assert.equal(journal[r.value.step - 1], i, "a returned update is the step it says");
        } else {
          // When the database fails at the head write and cannot tell whether it was done,
          // the caller is told so (the example answers 503); it may or may not be applied.
          assert.match(String(r.reason), /database is locked/);
        }
      }
      assert.ok(done >= n - 5, `${done} of ${n} returned`);
      let state = await optimizer.init({ w: new Float32Array(5) });
      for (const i of journal) {
        setGradient(state, i);
        state = step(state);
      }
      assert.deepEqual(stored.bytes, await saveState(state), "the journal's replay, bit for bit");
    }
    // Busy for good: a bounded number of tries, then the database's error.
    const store = kvCheckpointStore(busyKv(kv, 1), PREFIX);
    await rejectsWith(store.load(), TypeError, "database is locked");
    await rejectsWith(store.save(new Uint8Array(3), null), TypeError, "database is locked");
  });
});

Deno.test("optimistic step: 40 concurrent updates on the in-process store, none lost", async () => {
  await concurrentSteps(memoryCheckpointStore());
  await concurrentSteps(memoryCheckpointStore({ latencyMs: 1 }));
  // By default one process's attempts on one store take turns: none is wasted.
  await concurrentSteps(memoryCheckpointStore({ latencyMs: 1 }), true);
  assert.throws(() => memoryCheckpointStore({ latencyMs: -1 }), /latencyMs/);
  assert.throws(() => memoryCheckpointStore({ name: 1 as unknown as string }), /name/);
});

Deno.test("optimistic step: bounded retries end in a CheckpointConflictError, nothing applied", async () => {
  const inner = memoryCheckpointStore({ name: "always-stale" });
  let loads = 0;
  let gradients = 0;
  const store: VersionedCheckpointStore = {
    name: inner.name,
    load: () => (loads++, inner.load()),
    save: () => Promise.resolve(null),
  };
  const options = {
    optimizer: radam(),
    init: () => ({ w: new Float32Array(2) }),
    gradient: () => void gradients++,
    maxAttempts: 4,
    backoffMs: 1,
  };
  await assert.rejects(optimisticStep(store, options), (e: Error) => {
    assert.ok(e instanceof CheckpointConflictError);
    assert.equal(e.attempts, 4);
    assert.equal(e.store, "always-stale");
    assert.match(e.message, /always-stale.*4 attempts.*not applied/);
    return true;
  });
  assert.equal(loads, 4);
  assert.equal(gradients, 4);
  assert.equal(await inner.load(), null);
  // What gradient throws ends the call, nothing saved.
  await assert.rejects(
    optimisticStep(inner, {
      ...options,
      gradient: () => {
        throw new TypeError("bad batch");
      },
    }),
    /bad batch/,
  );
  assert.equal(await inner.load(), null);
});

Deno.test("optimistic step: invalid options are errors naming them", async () => {
  const store = memoryCheckpointStore();
  const ok = { optimizer: radam(), init: () => ({ w: new Float32Array(1) }), gradient: () => 0 };
  const cases: [unknown, RegExp][] = [
    [null, /Options of optimisticStep/],
    [{ ...ok, optimizer: {} }, /optimizer/],
    [{ ...ok, init: 1 }, /init/],
    [{ ...ok, gradient: undefined }, /gradient/],
    [{ ...ok, meta: "x" }, /meta/],
    [{ ...ok, maxAttempts: 0 }, /maxAttempts.*≥ 1/],
    [{ ...ok, maxAttempts: 1.5 }, /maxAttempts/],
    [{ ...ok, backoffMs: -1 }, /backoffMs/],
    [{ ...ok, maxBackoffMs: NaN }, /maxBackoffMs/],
    [{ ...ok, timeoutMs: -1 }, /timeoutMs/],
    [{ ...ok, serialize: 1 }, /serialize must be a boolean/],
    [{ ...ok, id: "" }, /id must be a string of 1 to 64/],
    [{ ...ok, id: "\udc00x" }, /id must be text: it has a lone surrogate/],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(
      optimisticStep(store, options as typeof ok),
      (e: Error) => (e instanceof TypeError || e instanceof RangeError) && message.test(e.message),
    );
  }
  assert.equal(await store.load(), null);
});

Deno.test("in-process store: copies, check-and-set, metadata limits", async () => {
  const store = memoryCheckpointStore();
  const bytes = new Uint8Array([1, 2, 3]);
  const v1 = await store.save(bytes, null, "m");
  bytes[0] = 9;
  const loaded = (await store.load())!;
  assert.deepEqual(loaded, { bytes: new Uint8Array([1, 2, 3]), version: v1, meta: "m" });
  loaded.bytes[1] = 9;
  assert.deepEqual((await store.load())!.bytes, new Uint8Array([1, 2, 3]));
  assert.equal(await store.save(new Uint8Array([4]), null), null);
  assert.equal(await store.save(new Uint8Array([4]), "0"), null);
  assert.equal(typeof await store.save(new Uint8Array([4]), v1), "string");
  await assert.rejects(store.save(new Uint8Array([4]), v1, 5 as unknown as string), TypeError);
  await assert.rejects(store.save([1] as unknown as Uint8Array, v1), TypeError);
});

Deno.test("optimistic step: a request id is applied at most once, and the answer names its step", async () => {
  const stores = [memoryCheckpointStore({ latencyMs: 1 })];
  const kv = await Deno.openKv(":memory:");
  stores.push(kvCheckpointStore(kv, PREFIX, { chunkBytes: 64 }) as never);
  try {
    for (const store of stores) {
      const optimizer = radam({ lr: 0.05 });
      const options = (id: string, serialize: boolean) => ({
        optimizer,
        init: () => ({ w: new Float32Array(5) }),
        gradient: (state: { grads: Record<string, Float32Array> }) => void state.grads.w.fill(1),
        id,
        serialize,
      });
      // The same ids sent concurrently, twice each, from "two processes" (no turns).
      const results = await Promise.all(
        ["a", "b", "c", "a", "b", "c"].map((id, i) => optimisticStep(store, options(id, i < 3))),
      );
      const applied = results.filter((r) => !r.duplicate);
      assert.deepEqual(applied.map((r) => r.step).sort(), [1, 2, 3]);
      for (const r of results.filter((r) => r.duplicate)) {
        const first = results.find((x) => !x.duplicate && x.step === r.step);
        assert.ok(first, `a duplicate names the step that applied it: ${JSON.stringify(r)}`);
      }
      assert.equal((await loadState((await store.load())!.bytes)).step, 3);
      const journal = await store.journal(0, 10);
      assert.deepEqual(journal.map((r) => r.entries.map((e) => e.id).join()).sort(), [
        "a",
        "b",
        "c",
      ]);
      // Without the TrainingStore contract, an id cannot be kept.
      const plain = { name: "plain", load: store.load, save: store.save };
      await assert.rejects(optimisticStep(plain, options("d", true)), /Option id needs a store/);
    }
  } finally {
    kv.close();
  }
});

Deno.test("optimistic step: a time budget spent waiting for this process's earlier attempts", async () => {
  const slow = memoryCheckpointStore({ latencyMs: 30 });
  const options = {
    optimizer: radam(),
    init: () => ({ w: new Float32Array(2) }),
    gradient: () => {},
    timeoutMs: 50,
  };
  const settled = await Promise.allSettled(
    Array.from({ length: 6 }, () => optimisticStep(slow, options)),
  );
  const refused = settled.filter((r) => r.status === "rejected");
  assert.ok(refused.length > 0 && refused.length < 6, `${refused.length} refused`);
  for (const r of refused) {
    assert.ok(r.reason instanceof CheckpointConflictError);
    assert.match(
      r.reason.message,
      /no attempt could start in \d+ ms, behind this process's earlier ones/,
    );
  }
});

Deno.test("optimistic step: a store made at each request is the same store object, so the process's attempts take turns", async () => {
  await withKv(async (kv) => {
    const same = kvCheckpointStore(kv, ["a", 1], { chunkBytes: 64 });
    assert.equal(kvCheckpointStore(kv, ["a", 1], { chunkBytes: 64 }), same);
    assert.ok(Object.isFrozen(same));
    for (
      const other of [
        kvCheckpointStore(kv, ["a", 1]),
        kvCheckpointStore(kv, ["a", "1"], { chunkBytes: 64 }),
        kvCheckpointStore(kv, ["a", 1n], { chunkBytes: 64 }),
        kvCheckpointStore(kv, ["a", 1, "b"], { chunkBytes: 64 }),
        kvCheckpointStore(kv, ["a", 1], { chunkBytes: 64, model: "m" }),
      ]
    ) assert.notEqual(other, same);
    // 12 concurrent requests, each making its store: one attempt each, none wasted.
    const done = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        optimisticStep(kvCheckpointStore(kv, PREFIX), {
          optimizer: radam(),
          init: () => ({ w: new Float32Array(5) }),
          gradient: (state) => setGradient(state, i),
        })),
    );
    assert.deepEqual(done.map((d) => d.attempts), done.map(() => 1));
    assert.deepEqual(done.map((d) => d.step).sort((a, b) => a - b), done.map((_, i) => i + 1));
  });
});

/**
 * The in-process store, with the calls named in `hang` (the first of each) never answering, as
 * a database that stopped answering: the others answer as the store does.
 */
function hangingStore(hang: ("load" | "commit")[]) {
  const store = memoryCheckpointStore();
  const hung = new Set<string>(hang);
  const never = new Promise<never>(() => {});
  const once = <T>(name: string, call: () => Promise<T>) => () =>
    hung.delete(name) ? never : call();
  return {
    ...store,
    load: once("load", store.load),
    commit: (c: Parameters<typeof store.commit>[0]) => once("commit", () => store.commit(c))(),
  };
}

Deno.test("optimistic step: a store that does not answer settles the step by timeoutMs, saying whether the update may yet be applied; the process's next steps go on", async () => {
  const options = (id: string) => ({
    optimizer: radam(),
    init: () => ({ w: new Float32Array(2) }),
    gradient: (state: { grads: Record<string, Float32Array> }) => void state.grads.w.fill(1),
    id,
    timeoutMs: 1200,
  });
  // The save does not answer: the update may yet be applied. The step was held for ever, and
  // with it the turns of the process's later steps: each was refused with a
  // CheckpointConflictError. The step queued behind it is refused so (its budget ran out
  // before the store's call was taken as hung) or applied; those after are applied.
  const store = hangingStore(["commit"]);
  const first = optimisticStep(store, options("a"));
  const queued = optimisticStep(store, options("b")).catch((e) => e);
  await assert.rejects(
    first,
    (e: Error) =>
      !(e instanceof CheckpointConflictError) &&
      /did not answer within timeoutMs \(1200 ms\); the update may yet be applied: send it again with the same id \("a"\)/
        .test(e.message),
  );
  const b = await queued;
  assert.ok(b instanceof CheckpointConflictError || b.step === 1, String(b));
  const again = await optimisticStep(store, options("a"));
  const c = await optimisticStep(store, options("c"));
  assert.deepEqual([again.duplicate, c.step - again.step], [false, 1]);
  // The load does not answer: nothing was saved.
  const loading = hangingStore(["load"]);
  await assert.rejects(
    optimisticStep(loading, options("d")),
    /did not answer within timeoutMs \(1200 ms\); nothing was saved: send it again/,
  );
  // Without an id, the caller is told that sending it again may apply it twice; a budget under
  // a second gives each call a second.
  const { id: _, ...anonymous } = options("");
  await assert.rejects(
    optimisticStep(hangingStore(["commit"]), { ...anonymous, timeoutMs: 10 }),
    /within timeoutMs \(10 ms, at least 1000 ms a call\); the update may yet be applied: sent again without a request id, it may be applied twice/,
  );
});

Deno.test("optimistic step: a time budget past what a timer takes (Infinity, 2³¹ ms) waits for this process's earlier attempts", async () => {
  const slow = memoryCheckpointStore({ latencyMs: 5 });
  for (const timeoutMs of [Infinity, 2 ** 31]) {
    const done = await Promise.all(Array.from({ length: 3 }, () =>
      optimisticStep(slow, {
        optimizer: radam(),
        init: () => ({ w: new Float32Array(2) }),
        gradient: () => {},
        timeoutMs,
      })));
    assert.deepEqual(done.map((d) => d.attempts), [1, 1, 1]);
  }
});

Deno.test("optimistic step: an id stored as a data-parallel contribution not yet folded is not said to be not applied: it may yet be", async () => {
  // Its step rejected with a CheckpointConflictError ("saved by another writer first on each of
  // 8 attempts; this update was not applied", 409 in the example): a fold then applied it.
  const store = memoryCheckpointStore();
  const optimizer = radam();
  const init = () => ({ w: new Float32Array(2) });
  assert.equal(await store.submit({ id: "x", base: 0, samples: 1 }, new Uint8Array(8)), null);
  await assert.rejects(
    optimisticStep(store, { optimizer, init, gradient: () => {}, id: "x", timeoutMs: 100 }),
    (e: Error) =>
      !(e instanceof CheckpointConflictError) &&
      /Request "x" is a contribution of the data-parallel mode .* not applied or refused within timeoutMs; it may yet be applied: send it again, with the same id/
        .test(e.message),
  );
  const trainer = dataParallel(store, { optimizer, init });
  try {
    const y = await trainer.submit({ id: "y", base: 0, gradient: { w: new Float32Array(2) } });
    assert.equal(y.status === "applied" && y.step, 1); // the fold that took x too
  } finally {
    await trainer.close();
  }
  const again = await optimisticStep(store, { optimizer, init, gradient: () => {}, id: "x" });
  assert.deepEqual(again, { duplicate: true, id: "x", step: 1 });
});

Deno.test("optimistic step: a store whose call fails rejects the step with an error that says whether the update may have been applied, the database's error its cause", async () => {
  // It rejected with the database's own error ("database is locked"), which said nothing of
  // the update's fate.
  const failure = new TypeError("database is locked");
  const options = (id?: string) => ({
    optimizer: radam(),
    init: () => ({ w: new Float32Array(2) }),
    gradient: (state: { grads: Record<string, Float32Array> }) => void state.grads.w.fill(1),
    ...(id === undefined ? {} : { id }),
  });
  const shared = memoryCheckpointStore();
  await optimisticStep(shared, options());
  const failing = (change: Partial<typeof shared>) => ({ ...shared, ...change });
  const rejected = async (store: VersionedCheckpointStore, id?: string) => {
    const error = await optimisticStep(store, options(id)).then(() => null, (e) => e);
    assert.ok(error instanceof Error && !(error instanceof TypeError), String(error));
    assert.equal(error.cause, failure);
    return error.message;
  };
  const read =
    /^Checkpoint .*: reading the store failed \(database is locked\); nothing was saved: send it again$/;
  assert.match(await rejected(failing({ load: () => Promise.reject(failure) }), "a"), read);
  assert.match(await rejected(failing({ request: () => Promise.reject(failure) }), "a"), read);
  // The commit fails: a's not made, b's made.
  const commit: typeof shared.commit = async (c) => {
    if (c.fresh.includes("a")) throw failure;
    const result = await shared.commit(c);
    if (c.fresh.includes("b")) throw failure;
    return result;
  };
  for (const id of ["a", "b"]) {
    assert.match(
      await rejected(failing({ commit }), id),
      new RegExp(
        `^Checkpoint .*: saving the step failed \\(database is locked\\); the update may have ` +
          `been applied: send it again with the same id \\("${id}"\\) to learn its outcome$`,
      ),
    );
  }
  const a = await optimisticStep(shared, options("a"));
  const b = await optimisticStep(shared, options("b"));
  assert.deepEqual([a.duplicate, b.duplicate], [false, true]);
  // Without an id (a plain store's save).
  const plain = memoryCheckpointStore();
  assert.match(
    await rejected({ name: plain.name, load: plain.load, save: () => Promise.reject(failure) }),
    /: saving the step failed \(database is locked\); the update may have been applied: sent again without a request id, it may be applied twice$/,
  );
});
