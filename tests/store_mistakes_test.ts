/**
 * A new user's likely mistakes with the serverless store, and what they get: a learning-rate
 * schedule resumes (it was refused on the second request, pointing at a `loadState` the user
 * never calls); `init` that does not give the tensors the option `tensors` names is refused
 * before anything is saved (it was saved, and every later request then refused the store);
 * without `tensors`, a stored model whose tensor names are not init's (a redeploy that renamed
 * one) is refused before the caller's code sees it (it was handed over and trained); the
 * data-parallel `params()` refuses a stored model of other tensors or of another optimizer as
 * the optimistic mode does (it answered its parameters, and `submit` or the fold then refused
 * them); the Deno.Kv itself given where a store is expected, a key prefix with a part Deno KV
 * cannot hold, an empty key prefix (the root of the database, shared with everything else),
 * and a closed Deno.Kv are errors that say so; a gradient that `optimisticStep`'s callback
 * returns instead of writing it into `state.grads` is a TypeError (the step was taken on zeros),
 * and so is a callback that steps or disposes the state itself (the error said to use the state
 * that step() returned, which `optimisticStep` never sees); a data-parallel contribution with a
 * field of another name (`sample: 32`) is refused (it was folded as one sample); Deno.openKv's
 * promise (an `await` forgotten), a key prefix that is not an array and a request id of the wrong
 * length or type say what they got (they said only what was expected); an id sent again with
 * another gradient is a duplicate, that gradient unused (as the README now says).
 * In each case nothing is saved.
 */
import assert from "node:assert/strict";
import {
  adam,
  CheckpointError,
  cosineDecay,
  dispose,
  loadState,
  type OptimizerState,
  radam,
  readParams,
  sgd,
  step,
} from "../mod.ts";
import {
  dataParallel,
  kvCheckpointStore,
  memoryCheckpointStore,
  optimisticStep,
  type VersionedCheckpointStore,
} from "../kv.ts";
import { busyKv, PREFIX, withKv } from "./kv_fakes.ts";

const init = () => ({ w: new Float32Array(4), b: new Float32Array(1) });
const ones = (state: { grads: Record<string, Float32Array> }) => {
  for (const g of Object.values(state.grads)) g.fill(1);
};

/** The stored checkpoint as text (bytes, version, metadata), to compare before and after. */
async function snapshot(store: VersionedCheckpointStore): Promise<string> {
  const stored = await store.load();
  return stored === null ? "none" : `${stored.bytes.join()}|${stored.version}|${stored.meta}`;
}

Deno.test("store mistakes: an optimizer with a learning-rate schedule resumes with it", async () => {
  await withKv(async (kv) => {
    const schedule = cosineDecay(0.1, { decaySteps: 100 });
    const optimizer = radam({ lr: schedule });
    // The optimistic mode: each request loads the checkpoint the one before saved.
    const store = kvCheckpointStore(kv, [...PREFIX, "optimistic"]);
    for (let i = 1; i <= 3; i++) {
      const done = await optimisticStep(store, { optimizer, init, gradient: ones });
      assert.equal(done.step, i);
    }
    // The same steps in one process: the stored parameters are theirs, bit for bit.
    let state = await optimizer.init(init());
    for (let i = 0; i < 3; i++) {
      ones(state);
      state = step(state);
    }
    const stored = await loadState((await store.load())!.bytes, { lr: schedule });
    assert.deepEqual(await readParams(stored), await readParams(state));
    // A loadOptions.lr given still wins.
    const constant = await optimisticStep(store, {
      optimizer,
      init,
      gradient: ones,
      loadOptions: { lr: 0 },
    });
    assert.deepEqual(await readParams(constant.state), await readParams(stored));
    // The data-parallel mode: a second process (trainer) loads what the first committed.
    const shared = kvCheckpointStore(kv, [...PREFIX, "parallel"]);
    for (const id of ["a", "b"]) {
      const trainer = dataParallel(shared, { optimizer, init });
      const { step, params } = await trainer.params();
      const gradient = { w: params.w.map(() => 1), b: params.b.map(() => 1) };
      const answer = await trainer.submit({ id, base: step, gradient });
      assert.equal(answer.status, "applied");
      await trainer.close();
    }
  });
});

Deno.test("store mistakes: init that does not give the option tensors' tensors is refused, nothing saved", async () => {
  const cases: [() => Record<string, Float32Array>, RegExp][] = [
    [() => ({ w: new Float32Array(3), b: new Float32Array(1) }), /"w" has 3 values, expected 4/],
    [() => ({ w: new Float32Array(4) }), /lacks the tensor "b"/],
    [() => ({ ...init(), c: new Float32Array(1) }), /has a tensor "c", expected only "w", "b"/],
  ];
  for (const [made, why] of cases) {
    const tensors = { w: 4, b: 1 };
    const store = memoryCheckpointStore();
    const check = (e: Error) => {
      assert.equal(e.constructor, RangeError, `${e.name}: ${e.message}`);
      assert.match(e.message, /^Option init gave parameters that do not match option tensors: /);
      assert.match(e.message, why);
      return true;
    };
    const gradient = () => 0;
    await assert.rejects(
      () => optimisticStep(store, { optimizer: radam(), init: made, tensors, gradient }),
      check,
    );
    const trainer = dataParallel(store, { optimizer: radam(), init: made, tensors });
    await assert.rejects(() => trainer.params(), check);
    await trainer.close();
    assert.equal(await snapshot(store), "none");
  }
});

Deno.test("store mistakes: data-parallel params() refuses a stored model of other tensors", async () => {
  const store = memoryCheckpointStore();
  await optimisticStep(store, { optimizer: radam(), init, gradient: ones });
  const before = await snapshot(store);
  const wider = () => ({ w: new Float32Array(8), b: new Float32Array(1) });
  const trainer = dataParallel(store, { optimizer: radam(), init: wider, tensors: { w: 8, b: 1 } });
  await assert.rejects(() => trainer.params(), (e: Error) => {
    assert.ok(e instanceof CheckpointError, `${e.name}: ${e.message}`);
    assert.match(e.message, /is of another model: tensor "w" has 4 values, expected 8/);
    return true;
  });
  await assert.rejects(
    () => trainer.submit({ id: "r1", base: 1, gradient: wider() }),
    CheckpointError,
  );
  await trainer.close();
  assert.equal(await snapshot(store), before);
});

Deno.test("store mistakes: data-parallel params() refuses a stored model of another optimizer, as submit does", async () => {
  const store = memoryCheckpointStore({ name: "m" });
  await optimisticStep(store, { optimizer: radam(), init, gradient: ones });
  const before = await snapshot(store);
  const trainer = dataParallel(store, { optimizer: adam(), init });
  const another = (e: Error) => {
    assert.ok(e instanceof CheckpointError, `${e.name}: ${e.message}`);
    assert.equal(e.message, 'Checkpoint m is of another model: optimizer "radam", expected "adam"');
    return true;
  };
  await assert.rejects(() => trainer.params(), another);
  await assert.rejects(() => trainer.submit({ id: "r1", base: 1, gradient: init() }), another);
  await trainer.close();
  assert.equal(await snapshot(store), before);
  // The same optimizer is served, with its name.
  const same = dataParallel(store, { optimizer: radam(), init });
  assert.equal((await same.params()).optimizer, "radam");
  await same.close();
});

Deno.test("store mistakes: without tensors, a stored model whose tensor names are not init's is refused in both modes", async () => {
  await withKv(async (kv) => {
    const cases: [() => Record<string, Float32Array>, string][] = [
      [
        () => ({ weight: new Float32Array(4), b: new Float32Array(1) }),
        'it has a tensor "w", the parameters init gives have "weight", "b"',
      ],
      [
        () => ({ w: new Float32Array(4) }),
        'it has a tensor "b", the parameters init gives have "w"',
      ],
      [() => ({ ...init(), c: new Float32Array(2) }), 'it lacks the tensor "c" that init gives'],
    ];
    for (const [i, [changed, why]] of cases.entries()) {
      const key = [...PREFIX, i];
      await optimisticStep(kvCheckpointStore(kv, key), {
        optimizer: radam(),
        init,
        gradient: ones,
      });
      // A redeploy: the code's model has other tensors, in a new process (its own Deno.Kv).
      const process = busyKv(kv, 0);
      const store = kvCheckpointStore(process, key);
      const before = await snapshot(store);
      const another = (e: Error) => {
        assert.ok(e instanceof CheckpointError, `${e.name}: ${e.message}`);
        assert.equal(e.message, `Checkpoint ${store.name} is of another model: ${why}`);
        return true;
      };
      let called = 0;
      const gradient = (state: { grads: Record<string, Float32Array> }) => (called++, ones(state));
      const optimizer = radam();
      await assert.rejects(
        () => optimisticStep(store, { optimizer, init: changed, gradient }),
        another,
      );
      assert.equal(called, 0, "the stored weights were not handed to the new code");
      const trainer = dataParallel(kvCheckpointStore(busyKv(kv, 0), key), {
        optimizer,
        init: changed,
      });
      await assert.rejects(() => trainer.params(), another);
      await trainer.close();
      assert.equal(await snapshot(store), before);
    }
    // The same names with other lengths are not compared without tensors (a model may take its
    // size from the request that makes it, as examples/serverless_handler.ts does).
    const wider = () => ({ w: new Float32Array(8), b: new Float32Array(1) });
    const store = kvCheckpointStore(kv, [...PREFIX, 0]);
    const done = await optimisticStep(store, { optimizer: radam(), init: wider, gradient: ones });
    assert.equal(done.state.params.w.length, 4);
  });
});

Deno.test("store mistakes: the Deno.Kv given where a store is expected is a TypeError saying so", async () => {
  await withKv(async (kv) => {
    const store = kv as unknown as VersionedCheckpointStore;
    const hint = /^Expected a checkpoint store, e\.g\. kvCheckpointStore\(kv, key\), got Kv$/;
    await assert.rejects(
      () => optimisticStep(store, { optimizer: radam(), init, gradient: ones }),
      (e: Error) => e.constructor === TypeError && hint.test(e.message),
    );
    // dataParallel names the contract, and the stores that keep it (as before).
    assert.throws(
      () => dataParallel(store as never, { optimizer: radam(), init }),
      /^TypeError: dataParallel needs a store .*\(kvCheckpointStore, .*this one has no load\(\)$/,
    );
  });
});

Deno.test("store mistakes: a key part Deno KV cannot hold is a TypeError naming it, at once", async () => {
  await withKv((kv) => {
    for (const [key, got] of [[["models", {}], "Object"], [["models", null], "null"]] as const) {
      assert.throws(
        () => kvCheckpointStore(kv, key as unknown as Deno.KvKey),
        (e: Error) =>
          e.constructor === TypeError &&
          e.message === "Expected the key prefix's part 1 to be a string, number, bigint, " +
              `boolean or Uint8Array, got ${got}`,
      );
    }
    // Two such strings are one key in Deno KV (each lone surrogate kept as U+FFFD).
    assert.throws(
      () => kvCheckpointStore(kv, ["users", "a\ud800"]),
      (e: Error) =>
        e.constructor === TypeError && /part 1 to be text.*lone surrogate/.test(e.message),
    );
    return Promise.resolve();
  });
});

Deno.test("store mistakes: an empty key prefix is a TypeError, at once", async () => {
  await withKv((kv) => {
    assert.throws(
      () => kvCheckpointStore(kv, []),
      (e: Error) =>
        e.constructor === TypeError &&
        e.message === 'Expected the key prefix to have at least one part, e.g. ["models", ' +
            '"linear"], got []: the store\'s records would share the root of the database with ' +
            "everything else in it",
    );
    return Promise.resolve();
  });
});

Deno.test("store mistakes: a closed Deno.Kv is an error naming the store", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = kvCheckpointStore(kv, PREFIX);
  await optimisticStep(store, { optimizer: radam(), init, gradient: ones });
  kv.close();
  const closed = (e: Error) => {
    assert.ok(e instanceof Deno.errors.BadResource, `${e.name}: ${e.message}`);
    assert.equal(
      e.message,
      'Checkpoint store ["models","m"]: its Deno.Kv is closed (kv.close() was called)',
    );
    return true;
  };
  await assert.rejects(() => store.load(), closed);
  await assert.rejects(
    () => optimisticStep(store, { optimizer: radam(), init, gradient: ones }),
    closed,
  );
  const trainer = dataParallel(store, { optimizer: radam(), init });
  await assert.rejects(() => trainer.params(), closed);
  await assert.rejects(() => trainer.submit({ id: "r1", base: 1, gradient: init() }), closed);
  await trainer.close();
});

Deno.test("store mistakes: bytes that are not a checkpoint are a CheckpointError naming the store, in data-parallel params() too", async () => {
  // The parameters-only read said "Stored checkpoint is truncated: 3 bytes", naming no store:
  // in a process of many stores (one model a user), not which one.
  await withKv(async (kv) => {
    for (
      const store of [memoryCheckpointStore({ name: "user-7" }), kvCheckpointStore(kv, PREFIX)]
    ) {
      await store.save(new Uint8Array([1, 2, 3]), null);
      const trainer = dataParallel(store, { optimizer: radam(), init });
      const named = (e: Error) => {
        assert.ok(e instanceof CheckpointError, `${e.name}: ${e.message}`);
        // (Once "Checkpoint user-7: Stored checkpoint truncated: …", a subject said twice.)
        assert.equal(
          e.message,
          `Checkpoint ${store.name} truncated: expected at least 8 bytes (its header length), got 3`,
        );
        return true;
      };
      await assert.rejects(trainer.params(), named);
      await assert.rejects(trainer.submit({ id: "r1", base: 0, gradient: init() }), named);
      await assert.rejects(store.loadParams(), named);
      await trainer.close();
    }
  });
});

Deno.test("store mistakes: a gradient returned by optimisticStep's callback instead of written into state.grads is a TypeError, nothing saved", async () => {
  // `gradient: (s) => computeGrads(s.params)` trained on zeros: the record returned was handed
  // back as `result`, and every step was taken on the all-zero gradient slots.
  const computeGrads = (p: Readonly<Record<string, Float32Array>>) => ({
    w: p.w.map((w) => w - 1),
    b: Array.from(p.b, (b) => b + 1),
  });
  const store = memoryCheckpointStore();
  await optimisticStep(store, { optimizer: radam(), init, gradient: ones });
  const before = await snapshot(store);
  for (
    const returned of [
      computeGrads,
      (p: Record<string, Float32Array>) => Promise.resolve(computeGrads(p)),
    ]
  ) {
    await assert.rejects(
      () =>
        optimisticStep(store, { optimizer: radam(), init, gradient: (s) => returned(s.params) }),
      (e: Error) => {
        assert.ok(e instanceof TypeError, `${e.name}: ${e.message}`);
        assert.match(
          e.message,
          /^Option gradient returned a gradient \("w", "b"\) and wrote nothing into state\.grads/,
        );
        return true;
      },
    );
    assert.equal(await snapshot(store), before);
  }
  // What is not evidently a gradient, or comes with one written, is the caller's value.
  const written = (
    s: { grads: Record<string, Float32Array>; params: Record<string, Float32Array> },
  ) => {
    const g = computeGrads(s.params);
    s.grads.w.set(g.w);
    return g;
  };
  const results: unknown[] = [
    0,
    { loss: 1 },
    { w: new Float32Array(4).fill(1) }, // not every tensor
    { w: new Float32Array(4), b: new Float32Array(1) }, // all zeros: the same step either way
    { w: new Float32Array(3).fill(1), b: [1] }, // another length
    { w: ["a", "b", "c", "d"], b: [1] }, // not numbers
  ];
  for (const result of results) {
    const done = await optimisticStep(store, { optimizer: radam(), init, gradient: () => result });
    assert.equal(done.result, result);
  }
  // A one-tensor model's gradient returned as its bare array, as step(state, grads) takes it.
  const single = memoryCheckpointStore();
  const bare = () => new Float32Array(3);
  await assert.rejects(
    () =>
      optimisticStep(single, {
        optimizer: radam(),
        init: bare,
        gradient: (s) => s.params[""].map((w) => w - 1),
      }),
    /^TypeError: Option gradient returned a gradient \(a Float32Array of 3\) and wrote nothing/,
  );
  assert.equal(await single.load(), null);
  const loss = await optimisticStep(single, { optimizer: radam(), init: bare, gradient: () => 3 });
  assert.equal(loss.result, 3);
  const kept = await optimisticStep(store, { optimizer: radam(), init, gradient: written });
  assert.deepEqual(Object.keys(kept.result), ["w", "b"]);
  const views = await optimisticStep(store, {
    optimizer: radam(),
    init,
    gradient: (s) => ({ ...s.params }),
  });
  assert.equal(views.step, 9);
});

Deno.test("store mistakes: optimisticStep's gradient callback that steps or disposes the state itself is a TypeError naming the option, nothing saved", async () => {
  // A training loop's `step(state)` kept in the callback: the error was step()'s own ("use the
  // state that step() returned"), naming neither the option nor what to do instead.
  const store = memoryCheckpointStore();
  await optimisticStep(store, { optimizer: radam(), init, gradient: ones });
  const before = await snapshot(store);
  const callbacks = [
    (s: OptimizerState) => (ones(s), step(s)),
    (s: OptimizerState) => void (ones(s), step(s, s.grads)),
    (s: OptimizerState) => (ones(s), dispose(s)),
  ];
  for (const gradient of callbacks) {
    await assert.rejects(
      () => optimisticStep(store, { optimizer: radam(), init, gradient }),
      (e: Error) => {
        assert.ok(e instanceof TypeError, `${e.name}: ${e.message}`);
        assert.match(e.message, /^Option gradient used up the state it was given/);
        return true;
      },
    );
    assert.equal(await snapshot(store), before);
  }
  assert.equal((await optimisticStep(store, { optimizer: radam(), init, gradient: ones })).step, 2);
});

Deno.test("store mistakes: a data-parallel contribution with a misspelled field is a TypeError, nothing stored", async () => {
  // `sample: 32` for `samples: 32` was folded as the mean over one sample: the fold's weights
  // silently wrong.
  const store = memoryCheckpointStore();
  const trainer = dataParallel(store, { optimizer: radam(), init });
  const { step: base, params } = await trainer.params();
  const gradient = { w: params.w.map(() => 1), b: params.b.map(() => 1) };
  for (
    const [field, c] of [
      ["sample", { id: "r1", base, sample: 32, gradient }],
      ["gradients", { id: "r1", base, samples: 32, gradients: gradient }],
      ["step", { id: "r1", step: base, base, gradient }],
    ] as const
  ) {
    await assert.rejects(
      () => trainer.submit(c as never),
      (e: Error) => {
        assert.ok(e instanceof TypeError, `${e.name}: ${e.message}`);
        assert.equal(
          e.message,
          `A contribution has no field ${field}; expected id, base, samples, gradient ` +
            "(samples optional)",
        );
        return true;
      },
    );
  }
  assert.equal(await store.request("r1"), null);
  assert.deepEqual(await store.journal(0, 10), []);
  const done = await trainer.submit({ id: "r1", base, samples: 32, gradient });
  assert.equal(done.status === "applied" && done.step, 1);
  assert.deepEqual(await store.journal(0, 10), [
    { step: 1, seq: 1, entries: [{ id: "r1", base: 0, samples: 32 }] },
  ]);
  await trainer.close();
});

Deno.test("store mistakes: Deno.openKv's promise (await forgotten) and a key prefix that is not an array say what they got", async () => {
  const pending = Deno.openKv(":memory:");
  try {
    assert.throws(
      () => kvCheckpointStore(pending as unknown as Deno.Kv, PREFIX),
      (e: Error) =>
        e.constructor === TypeError &&
        e.message ===
          "Expected a Deno.Kv, e.g. await Deno.openKv(path), got Promise (a Promise: await it)",
    );
  } finally {
    (await pending).close();
  }
  await withKv((kv) => {
    for (const [key, got] of [["models", 'a string "models"'], [undefined, "undefined"]]) {
      assert.throws(
        () => kvCheckpointStore(kv, key as unknown as Deno.KvKey),
        (e: Error) =>
          e.constructor === TypeError &&
          e.message === 'Expected the key prefix as an array of key parts, e.g. ["models", ' +
              `"linear"], got ${got}`,
      );
    }
    return Promise.resolve();
  });
});

Deno.test("store mistakes: a request id too long or not a string says what it got, in both modes, nothing saved", async () => {
  const store = memoryCheckpointStore();
  const cases: [unknown, string][] = [["x".repeat(65), "65 characters"], [7, "7"], [
    "",
    "0 characters",
  ]];
  for (const [id, got] of cases) {
    await assert.rejects(
      () => optimisticStep(store, { optimizer: radam(), init, gradient: ones, id: id as string }),
      (e: Error) =>
        e.constructor === TypeError &&
        e.message === `Option id must be a string of 1 to 64 characters, got ${got}`,
    );
  }
  assert.equal(await store.load(), null);
  const trainer = dataParallel(store, { optimizer: radam(), init });
  try {
    const { step: base, params } = await trainer.params();
    const before = (await store.load())?.version;
    for (const [id, got] of cases) {
      await assert.rejects(
        () => trainer.submit({ id: id as string, base, gradient: { w: params.w, b: params.b } }),
        (e: Error) =>
          e.constructor === TypeError &&
          e.message === `A contribution's id must be a string of 1 to 64 characters, got ${got}`,
      );
    }
    assert.equal((await store.load())?.version, before);
  } finally {
    await trainer.close();
  }
});

Deno.test("store mistakes: an id sent again with another gradient is a duplicate, that gradient unused, in both modes (README: the id alone decides)", async () => {
  const lr = 1;
  const one = () => ({ w: new Float32Array(1) });
  await withKv(async (kv) => {
    const trainer = dataParallel(kvCheckpointStore(kv, [...PREFIX, "dp"]), {
      optimizer: sgd({ lr }),
      init: one,
    });
    try {
      const { step: base } = await trainer.params();
      const send = (g: number) =>
        trainer.submit({ id: "same", base, gradient: { w: new Float32Array([g]) } });
      const answers = [...await Promise.all([1, 2, 3].map(send)), await send(4)];
      assert.deepEqual(answers.map((a) => a.status === "applied" && [a.step, a.duplicate]), [
        [base + 1, false],
        [base + 1, true],
        [base + 1, true],
        [base + 1, true],
      ]);
      assert.deepEqual([...(await trainer.params()).params.w], [-lr * 1]); // the first one's alone
    } finally {
      await trainer.close();
    }
    const store = kvCheckpointStore(kv, [...PREFIX, "opt"]);
    const step = (g: number) =>
      optimisticStep(store, {
        optimizer: sgd({ lr }),
        init: one,
        gradient: (state) => void state.grads.w.fill(g),
        id: "same",
      });
    const done = [...await Promise.all([1, 2, 3].map(step)), await step(4)];
    assert.deepEqual(done.map((d) => [d.step, d.duplicate]), [[1, false], [1, true], [1, true], [
      1,
      true,
    ]]);
    const stored = await loadState((await store.load())!.bytes);
    assert.deepEqual([...(await readParams(stored)).w], [-lr * 1]);
    dispose(stored);
    for (const d of done) if (!d.duplicate) dispose(d.state);
  });
});
