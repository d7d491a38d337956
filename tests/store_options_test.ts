/**
 * The options of the store's functions, as CHANGELOG.md promises for every option: a value of
 * the wrong type (a string, a boolean, an object) is a TypeError, a number out of range (NaN
 * included) a RangeError, each worded `Option <name> must be <expected>, got <what it got>`.
 */
import assert from "node:assert/strict";
import { checkpointInfo, radam, saveState } from "../mod.ts";
import { dataParallel, kvCheckpointStore, memoryCheckpointStore, optimisticStep } from "../kv.ts";
import { PREFIX, withKv } from "./kv_fakes.ts";

type Kind = typeof TypeError | typeof RangeError;

/** `f` throws (or rejects with) exactly `kind`, its message naming `name` and what it got. */
async function refuses(f: () => unknown, kind: Kind, name: string, got: string): Promise<void> {
  const check = (e: Error) => {
    assert.equal(e.constructor, kind, `${name}: ${e.constructor.name} "${e.message}"`);
    assert.match(e.message, new RegExp(`^Option ${name} must be .*, got ${got}$`));
    return true;
  };
  await assert.rejects(async () => await f(), check);
}

/** What a number given as text adds (as a pattern): to convert it. */
const AS_TEXT = " \\(a number as text: convert it, Number\\(value\\)\\)";

/**
 * Values of the wrong type for an option that takes a number (`null`, like `undefined`, means
 * "not given" to the store's options: their default).
 */
const WRONG_TYPES: [unknown, string][] = [
  ["5", `a string "5"${AS_TEXT}`],
  [true, "true"],
  [{}, "Object"],
  // Not "got 10": a bigint, described as the number it holds, read as one in range.
  [10n, "a bigint 10n"],
];

const optimizer = radam({ lr: 0.1 });
const init = () => ({ w: new Float32Array(2) });

Deno.test("store options: a wrong type is a TypeError, a number out of range a RangeError", async () => {
  await withKv(async (kv) => {
    const store = memoryCheckpointStore();
    const makers: [string, number[], (value: unknown) => unknown][] = [
      // Both stores take the same rememberMs: the in-process one took 0 and fractions.
      [
        "rememberMs",
        [0, -1, NaN, 1000.5, 0.7 * 3_600_001, 9e15, Infinity],
        (v) => memoryCheckpointStore({ rememberMs: v as number }),
      ],
      ["latencyMs", [-1, Infinity], (v) => memoryCheckpointStore({ latencyMs: v as number })],
      [
        "maxAttempts",
        [0, 1.5],
        (v) =>
          optimisticStep(store, { optimizer, init, gradient: () => 0, maxAttempts: v as number }),
      ],
      [
        "timeoutMs",
        [-1, NaN],
        (v) =>
          optimisticStep(store, { optimizer, init, gradient: () => 0, timeoutMs: v as number }),
      ],
      [
        "backoffMs",
        [-1, Infinity],
        (v) =>
          optimisticStep(store, { optimizer, init, gradient: () => 0, backoffMs: v as number }),
      ],
      [
        "maxBackoffMs",
        [-0.5, NaN],
        (v) =>
          optimisticStep(store, { optimizer, init, gradient: () => 0, maxBackoffMs: v as number }),
      ],
      [
        "staleness",
        [-1, 0.5],
        (v) => dataParallel(store, { optimizer, init, staleness: v as number }),
      ],
      [
        "waitMs",
        [-1, Infinity],
        (v) => dataParallel(store, { optimizer, init, waitMs: v as number }),
      ],
      ["leaseMs", [0, NaN], (v) => dataParallel(store, { optimizer, init, leaseMs: v as number })],
      ["maxFold", [0, 2.5], (v) => dataParallel(store, { optimizer, init, maxFold: v as number })],
      [
        "pollMs",
        [0, -Infinity],
        (v) => dataParallel(store, { optimizer, init, pollMs: v as number }),
      ],
      [
        "handoffMs",
        [-1, NaN, -Infinity],
        (v) => dataParallel(store, { optimizer, init, handoffMs: v as number }),
      ],
      [
        "handoffLimit",
        [0, 1.5, NaN],
        (v) => dataParallel(store, { optimizer, init, handoffLimit: v as number }),
      ],
      [
        "chunkBytes",
        [0, 0.5, 1e9],
        (v) => kvCheckpointStore(kv, PREFIX, { chunkBytes: v as number }),
      ],
      [
        "staleAfterMs",
        [-1, NaN],
        (v) => kvCheckpointStore(kv, PREFIX, { staleAfterMs: v as number }),
      ],
      // Deno KV's expireIn: a fraction or one past about 8e15 was taken, then refused by Deno
      // KV at every write of a request's record.
      [
        "rememberMs",
        [0, NaN, 1000.5, 0.7 * 3_600_001, 9e15, Infinity],
        (v) => kvCheckpointStore(kv, PREFIX, { rememberMs: v as number }),
      ],
    ];
    for (const [name, outOfRange, make] of makers) {
      for (const [value, got] of WRONG_TYPES) {
        await refuses(() => make(value), TypeError, name, got);
      }
      for (const value of outOfRange) {
        await refuses(() => make(value), RangeError, name, String(value));
      }
    }
    for (
      const longest of [
        kvCheckpointStore(kv, ["longest"], { rememberMs: 1e15 }),
        memoryCheckpointStore({ rememberMs: 1e15 }),
        memoryCheckpointStore({ rememberMs: 1 }),
      ]
    ) {
      assert.equal(await longest.submit({ id: "a", base: 0, samples: 1 }, new Uint8Array(4)), null);
    }
    // options that take a string or a boolean: a number given is a TypeError too
    await refuses(() => memoryCheckpointStore({ name: 5 as never }), TypeError, "name", "5");
    await refuses(
      () => kvCheckpointStore(kv, PREFIX, { model: 5 as never }),
      TypeError,
      "model",
      "5",
    );
    await refuses(
      () => optimisticStep(store, { optimizer, init, gradient: () => 0, serialize: 1 as never }),
      TypeError,
      "serialize",
      "1 \\(a number: write serialize: true\\)",
    );
    assert.equal(await store.load(), null, "no refused call wrote anything");
  });
});

Deno.test("store options: tensors and loadOptions are checked at the call, on an empty store too", async () => {
  const gradient = () => 0;
  const scheduled = await radam({ lr: (t) => 0.1 / t }).init({ w: new Float32Array(2) });
  const standIn = checkpointInfo(await saveState(scheduled)).settings.hyperparameters.lr;
  const store = memoryCheckpointStore();
  const modes: [string, (extra: object) => unknown][] = [
    ["optimisticStep", (extra) => optimisticStep(store, { optimizer, init, gradient, ...extra })],
    ["dataParallel", (extra) => dataParallel(store, { optimizer, init, ...extra })],
  ];
  for (const [of, make] of modes) {
    // before: a length given as a string was refused as "has 2 values, expected 2", an array
    // of names as "expected only \"0\"", and a misspelled load option went unseen on an
    // empty store (it loads nothing), the step taken, until the next request loaded one
    await refuses(
      () => make({ tensors: { w: "2" } }),
      TypeError,
      'tensors\\["w"\\]',
      `a string "2"${AS_TEXT}`,
    );
    await refuses(() => make({ tensors: { w: 1.5 } }), RangeError, 'tensors\\["w"\\]', "1.5");
    await refuses(() => make({ tensors: ["w"] }), TypeError, "tensors", "Array\\(1\\)");
    await assert.rejects(
      async () => await make({ loadOptions: { learningRate: 1 } }),
      (e: Error) =>
        e instanceof TypeError &&
        e.message.startsWith(
          `Unknown option learningRate for ${of}'s loadOptions; expected one of`,
        ),
    );
    // checkpointInfo's stand-in for a schedule it could not store: refused at the call, not at
    // the first load (on an empty store, once a request saved a checkpoint).
    await refuses(
      () => make({ loadOptions: { lr: standIn } }),
      TypeError,
      "loadOptions.lr",
      "the stand-in that checkpointInfo\\(\\) gives .*: pass the schedule itself.*",
    );
    assert.equal(await store.load(), null, `${of}: nothing saved`);
  }
});

Deno.test("store options: a learning rate or another library's option name says where it goes", async () => {
  // The store's options said only "Unknown option lr …; expected one of …", where the
  // optimizers' factories and loadState say which option it is, or whose.
  await withKv(async (kv) => {
    const store = memoryCheckpointStore();
    const gradient = () => 0;
    const cases: [(extra: object) => unknown, string, string, string][] = [
      [
        (x) => optimisticStep(store, { optimizer, init, gradient, ...x }),
        "optimisticStep",
        "lr",
        " (lr is an option of the optimizer, optimizer: radam({ lr }), for a new state; a " +
        "stored checkpoint resumes with its own lr, which loadOptions: { lr } replaces)",
      ],
      [
        (x) => dataParallel(store, { optimizer, init, ...x }),
        "dataParallel",
        "learning_rate",
        " (learning_rate is an option of the optimizer, lr there: optimizer: radam({ lr }))",
      ],
      [
        (x) => dataParallel(store, { optimizer, init, ...x }),
        "dataParallel",
        "beta1",
        " (beta1 is an option of the optimizer, betas there: optimizer: radam({ … }))",
      ],
      [
        (x) => memoryCheckpointStore(x),
        "memoryCheckpointStore",
        "lr",
        " (lr is an optimizer's option, as in radam({ lr }): not one of these)",
      ],
      [
        (x) => kvCheckpointStore(kv, PREFIX, x),
        "kvCheckpointStore",
        "learningRate",
        " (learningRate is an optimizer's option, lr there, as in radam({ lr }): not one of these)",
      ],
      [
        (x) => dataParallel(store, { optimizer, init, ...x }),
        "dataParallel",
        "states",
        " (states is an option of loading a checkpoint, loadOptions: { states }, or of the " +
        "optimizer, optimizer: radam({ states }))",
      ],
      [
        (x) => optimisticStep(store, { optimizer, init, gradient, ...x }),
        "optimisticStep",
        "backend",
        " (backend is an option of loading a checkpoint, loadOptions: { backend }, or of the " +
        "optimizer, optimizer: radam({ backend }))",
      ],
      [
        (x) => dataParallel(store, { optimizer, init, loadOptions: x }),
        "dataParallel's loadOptions",
        "learningRate",
        " (learningRate is lr here)",
      ],
      [
        (x) => optimisticStep(store, { optimizer, init, gradient, loadOptions: x }),
        "optimisticStep's loadOptions",
        "epsilon",
        " (epsilon is an optimizer's option, eps there: not one of these)",
      ],
    ];
    for (const [make, of, key, hint] of cases) {
      await assert.rejects(async () => await make({ [key]: 1e-3 }), (e: Error) => {
        assert.equal(e.constructor, TypeError, e.message);
        assert.ok(
          e.message.startsWith(`Unknown option ${key} for ${of}; expected one of `),
          e.message,
        );
        assert.ok(e.message.endsWith(hint), e.message);
        return true;
      });
    }
    assert.equal(await store.load(), null, "nothing saved");
  });
});

Deno.test("store options: a misspelled option is a TypeError naming it, not ignored", async () => {
  await withKv(async (kv) => {
    const store = memoryCheckpointStore();
    const cases: [() => unknown, string, string][] = [
      // `tensor` for `tensors`: ignored, the check of the stored model would silently go
      [
        () =>
          optimisticStep(store, {
            optimizer,
            init,
            gradient: () => 0,
            tensor: { w: 2 },
          } as never),
        "tensor",
        "optimisticStep",
      ],
      [
        () => dataParallel(store, { optimizer, init, stalness: 0 } as never),
        "stalness",
        "dataParallel",
      ],
      [() => memoryCheckpointStore({ latency: 5 } as never), "latency", "memoryCheckpointStore"],
      [
        () => kvCheckpointStore(kv, PREFIX, { chunkSize: 1024 } as never),
        "chunkSize",
        "kvCheckpointStore",
      ],
    ];
    for (const [make, key, of] of cases) {
      await assert.rejects(async () => await make(), (e: Error) => {
        assert.equal(e.constructor, TypeError, e.message);
        assert.match(e.message, new RegExp(`^Unknown option ${key} for ${of}; expected one of `));
        return true;
      });
    }
    // Every option each function documents is still taken.
    const done = await optimisticStep(store, {
      optimizer,
      init,
      gradient: () => 0,
      meta: () => undefined,
      tensors: { w: 2 },
      loadOptions: {},
      id: "r1",
      timeoutMs: 1000,
      serialize: true,
      maxAttempts: 3,
      backoffMs: 1,
      maxBackoffMs: 10,
    });
    assert.equal(done.step, 1);
    const trainer = dataParallel(store, {
      optimizer,
      init,
      tensors: { w: 2 },
      loadOptions: {},
      staleness: 1,
      waitMs: 1000,
      leaseMs: 1000,
      maxFold: 4,
      pollMs: 5,
      meta: () => undefined,
    });
    await trainer.close();
    memoryCheckpointStore({ name: "m", latencyMs: 0, rememberMs: 1000 });
    kvCheckpointStore(kv, PREFIX, {
      model: "m",
      chunkBytes: 1024,
      staleAfterMs: 1000,
      rememberMs: 1000,
    });
  });
});
