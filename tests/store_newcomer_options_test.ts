/**
 * What the README's "Resuming" says of a redeploy that changes the optimizer's options: a stored
 * checkpoint resumes with its own hyperparameters and training-loop options (groups, clipping),
 * those given now not compared, and only `loadOptions.lr` changes its constant lr; an optimizer's
 * option given in `loadOptions` says it cannot change on resume. An option of the other training
 * mode (`gradient` given to `dataParallel`, `staleness` to `optimisticStep`) says where it goes.
 * (Each said only which options were expected.)
 */
import assert from "node:assert/strict";
import { adam, lion, lookahead, radam, ranger, readParams, sgd } from "../mod.ts";
import { dataParallel, memoryCheckpointStore, optimisticStep } from "../store.ts";
import { kvCheckpointStore } from "../kv.ts";
import type { DataParallelOptions, OptimisticStepOptions } from "../store.ts";

const init = () => ({ w: new Float32Array(2), b: new Float32Array(2) });
const ones = (state: { grads: Record<string, Float32Array> }) => {
  for (const g of Object.values(state.grads)) g.fill(1);
};

Deno.test("store resume: a redeploy's new groups and clipping are not used; loadOptions.lr is", async () => {
  const store = memoryCheckpointStore();
  const first = await optimisticStep(store, {
    optimizer: radam({ lr: 0.1 }),
    init,
    gradient: ones,
  });
  const before = await readParams(first.state);
  // The redeploy freezes b (lrScale 0) and clips: neither is the stored optimizer's.
  const changed = radam({ lr: 0.1, groups: [{ match: /^b$/, lrScale: 0 }], clipGradNorm: 1e-3 });
  const second = await optimisticStep(store, { optimizer: changed, init, gradient: ones });
  const after = await readParams(second.state);
  assert.equal(second.step, 2);
  assert.notDeepEqual(after.b, before.b, "b trained on: the new group is not used");
  assert.deepEqual(after.b, after.w, "b and w alike: no group, no clipping");
  assert.ok(Number.isNaN(second.state.lastGradNorm), "no clipping: no norm taken");
  // loadOptions.lr replaces the stored constant lr.
  const frozen = await optimisticStep(store, {
    optimizer: radam(),
    init,
    gradient: ones,
    loadOptions: { lr: 0 },
  });
  assert.deepEqual(await readParams(frozen.state), after);
});

Deno.test("store options: an optimizer's option in loadOptions says it cannot change on resume", async () => {
  const hint = (key: string) =>
    `(a stored checkpoint resumes with its own ${key}, whatever the optimizer's: it cannot ` +
    "change on resume; start a new store from its parameters to change it)";
  const loads = "expected one of backend, lr, threads, threadThreshold, states, device";
  await assert.rejects(
    () =>
      optimisticStep(memoryCheckpointStore(), {
        optimizer: radam(),
        init,
        gradient: ones,
        loadOptions: { groups: [] } as never,
      }),
    {
      name: "TypeError",
      message: `Unknown option groups for optimisticStep's loadOptions; ${loads} ${hint("groups")}`,
    },
  );
  assert.throws(
    () =>
      dataParallel(memoryCheckpointStore(), {
        optimizer: radam(),
        init,
        loadOptions: { weightDecay: 0 } as never,
      }),
    {
      name: "TypeError",
      message: `Unknown option weightDecay for dataParallel's loadOptions; ${loads} ${
        hint("weightDecay")
      }`,
    },
  );
});

Deno.test("store options: every option the optimizer in hand has, given in loadOptions, says it is kept", () => {
  const kept = /\(a stored checkpoint resumes with its own \w+, whatever the optimizer's/;
  const cases = [
    [sgd({ lr: 0.1, momentum: 0.9 }), "momentum"],
    [sgd({ lr: 0.1, momentum: 0.9, nesterov: true }), "nesterov"],
    [ranger(), "k"],
    [lookahead(adam()), "alpha"],
    [adam(), "betas"],
    [lion(), "betas"],
  ] as const;
  for (const [optimizer, key] of cases) {
    assert.throws(
      () => dataParallel(memoryCheckpointStore(), { optimizer, init, loadOptions: { [key]: 1 } }),
      (e: Error) => e instanceof TypeError && kept.test(e.message) && e.message.includes(key),
      key,
    );
  }
  // An option of another rule only is not said to be kept: this optimizer has none.
  assert.throws(
    () =>
      dataParallel(memoryCheckpointStore(), {
        optimizer: lion(),
        init,
        loadOptions: { momentum: 1 } as never,
      }),
    (e: Error) => e instanceof TypeError && !kept.test(e.message),
  );
});

Deno.test("store options: an option of the other training mode says where it goes", async () => {
  assert.throws(
    () =>
      dataParallel(memoryCheckpointStore(), {
        optimizer: radam(),
        init,
        gradient: ones,
      } as never),
    {
      name: "TypeError",
      message:
        /^Unknown option gradient for dataParallel; .* \(in the data-parallel mode each request computes its gradient at trainer\.params\(\)'s parameters and gives it: trainer\.submit\(\{ id, base, samples, gradient \}\)\)$/,
    },
  );
  const store = memoryCheckpointStore();
  // Each option DataParallelOptions has and OptimisticStepOptions has not (the type checker
  // holds this list to both interfaces).
  const dataParallelOnly = Object.keys(
    {
      staleness: true,
      waitMs: true,
      leaseMs: true,
      maxFold: true,
      handoffMs: true,
      handoffLimit: true,
      pollMs: true,
    } satisfies Record<
      Exclude<keyof DataParallelOptions, keyof OptimisticStepOptions<unknown>>,
      true
    >,
  );
  for (const key of dataParallelOnly) {
    await assert.rejects(
      () =>
        optimisticStep(store, {
          optimizer: radam(),
          init,
          gradient: ones,
          [key]: 4,
        } as never),
      {
        name: "TypeError",
        message: new RegExp(
          `^Unknown option ${key} for optimisticStep; .* \\(${key} is an option of the ` +
            "data-parallel mode, dataParallel\\(store, options\\)\\)$",
        ),
      },
    );
  }
  assert.equal(await store.load(), null, "nothing saved");
});

Deno.test("store options: an option of optimisticStep given to dataParallel says where it goes", () => {
  // Each option OptimisticStepOptions has and DataParallelOptions has not (the type checker holds
  // this list to both interfaces); gradient has a test of its own.
  const optimisticOnly = Object.keys(
    {
      id: true,
      timeoutMs: true,
      serialize: true,
      maxAttempts: true,
      backoffMs: true,
      maxBackoffMs: true,
    } satisfies Record<
      Exclude<keyof OptimisticStepOptions<unknown>, keyof DataParallelOptions | "gradient">,
      true
    >,
  );
  for (const key of optimisticOnly) {
    assert.throws(
      () => dataParallel(memoryCheckpointStore(), { optimizer: radam(), init, [key]: 1 } as never),
      {
        name: "TypeError",
        message: key === "id"
          ? /^Unknown option id for dataParallel; .* \(in the data-parallel mode each contribution gives its own id: trainer\.submit\(\{ id, base, samples, gradient \}\)\)$/
          : new RegExp(
            `^Unknown option ${key} for dataParallel; .* \\(${key} is an option of the other ` +
              "training mode, optimisticStep\\(store, options\\)\\)$",
          ),
      },
    );
  }
});

Deno.test("store listings: journal() and pending() called without their arguments say how to call them", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const store of [memoryCheckpointStore(), kvCheckpointStore(kv, ["models", "m"])]) {
      const call = (f: () => Promise<unknown>) =>
        f().then(() => "listed", (e: Error) => `${e.name}: ${e.message}`);
      const journal = " (it takes two: journal(from, limit), the first step and how many " +
        "records at most; journal(0, Infinity) lists every record kept)";
      assert.deepEqual(
        [
          await call(() => (store.journal as () => Promise<unknown>)()),
          await call(() => store.journal(5, undefined as never)),
          // Deno KV threw its own TypeError for a missing from; the in-process store listed none.
          await call(() => store.journal(undefined as never, 10)),
          await call(() => store.journal("3" as never, 10)),
          await call(() => (store.pending as () => Promise<unknown>)()),
        ],
        [
          `TypeError: journal's from must be a number, got undefined${journal}`,
          `TypeError: journal's limit must be an integer ≥ 0 or Infinity, got undefined${journal}`,
          `TypeError: journal's from must be a number, got undefined${journal}`,
          'TypeError: journal\'s from must be a number, got a string "3" ' +
          "(a number as text: convert it, Number(value))",
          "TypeError: pending's limit must be an integer ≥ 0 or Infinity, got undefined " +
          "(pending(limit), how many at most; pending(Infinity) lists every one)",
        ],
        store.name,
      );
      assert.deepEqual(await store.journal(0, Infinity), []);
    }
  } finally {
    kv.close();
  }
});

Deno.test("store options: an lr given to dataParallel to change it mid-run says that loadOptions.lr does", async () => {
  // It said to give it to the optimizer, radam({ lr }), which a stored checkpoint's own lr
  // overrides: the lr asked for mid-run was silently not used.
  const store = memoryCheckpointStore();
  const first = dataParallel(store, { optimizer: radam({ lr: 0.1 }), init });
  await first.params();
  await first.close();
  assert.throws(
    () => dataParallel(store, { optimizer: radam(), init, lr: 0.01 } as DataParallelOptions),
    {
      name: "TypeError",
      message:
        /\(lr is an option of the optimizer, optimizer: radam\(\{ lr \}\), for a new state; a stored checkpoint resumes with its own lr, which loadOptions: \{ lr \} replaces\)$/,
    },
  );
  // What it says to write changes the lr of the stored checkpoint.
  const again = dataParallel(store, { optimizer: radam(), init, loadOptions: { lr: 0 } });
  try {
    const { step, params } = await again.params();
    const gradient = { w: new Float32Array([1, 1]), b: new Float32Array([1, 1]) };
    const answer = await again.submit({ id: "a", base: step, gradient });
    assert.equal(answer.status, "applied");
    assert.deepEqual((await again.params()).params, params, "lr 0: nothing moved");
  } finally {
    await again.close();
  }
});

Deno.test("store contributions: a gradient given as one array says how to name it, for a model of one bare tensor too", async () => {
  // A model whose init gives one Float32Array names its tensor "": its gradient given as that
  // array, or under a name of the user's, said only "an object … by tensor name" / 'expected ""'.
  const single =
    '(init gave one Float32Array, a tensor named "": write gradient: { "": values }, ' +
    "SINGLE_TENSOR_NAME of @optim/radam)";
  const trainer = dataParallel(memoryCheckpointStore(), {
    optimizer: radam(),
    init: () => new Float32Array(2),
  });
  try {
    const { step } = await trainer.params();
    const refused = (gradient: unknown, id: string) =>
      trainer.submit({ id, base: step, gradient: gradient as never }).then(
        () => "applied",
        (e: Error) => e.message,
      );
    assert.deepEqual(
      await Promise.all([
        refused(new Float32Array(2), "a1"),
        refused({ w: new Float32Array(2) }, "a2"),
        refused([1, 2], "a3"),
      ]),
      [
        `A contribution's gradient must be an object of Float32Arrays by tensor name, got a Float32Array of 2 ${single}`,
        `A contribution's gradient has a tensor "w" the model lacks; expected "" ${single}`,
        "A contribution's gradient must be an object of Float32Arrays by tensor name, got Array(2) " +
        `${single} (convert it: new Float32Array(values))`,
      ],
    );
    const answer = await trainer.submit({
      id: "b",
      base: step,
      gradient: { "": new Float32Array(2) },
    });
    assert.equal(answer.status, "applied", "what it says to write is taken");
  } finally {
    await trainer.close();
  }
  const two = dataParallel(memoryCheckpointStore(), { optimizer: radam(), init });
  try {
    const { step } = await two.params();
    await assert.rejects(
      () => two.submit({ id: "a", base: step, gradient: new Float32Array(4) as never }),
      {
        name: "TypeError",
        message:
          /got a Float32Array of 4 \(one array for each of the model's tensors: write gradient: \{ "w": …, "b": … \}\)$/,
      },
    );
  } finally {
    await two.close();
  }
});

Deno.test("store options: meta given as the metadata itself says it is a function of the previous one and the step", async () => {
  // It said only "Option meta must be a function, got a string".
  const hint = " (a function that gives each new checkpoint's metadata, a string, from the " +
    "previous one's and the new step: meta: (previous, step) => JSON.stringify({ step, … }))";
  const store = memoryCheckpointStore();
  for (const meta of ['{"epoch":1}', { epoch: 1 }]) {
    assert.throws(
      () => dataParallel(store, { optimizer: radam(), init, meta } as never),
      (e: Error) =>
        e instanceof TypeError && e.message.startsWith("Option meta must be a function") &&
        e.message.endsWith(hint),
    );
    await assert.rejects(
      () => optimisticStep(store, { optimizer: radam(), init, gradient: ones, meta } as never),
      (e: Error) => e instanceof TypeError && e.message.endsWith(hint),
    );
  }
});
