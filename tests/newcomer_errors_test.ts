/**
 * The mistakes a newcomer makes first, and that each error says what to do: a learning rate
 * given where the options go (`adam(1e-3)`, as `tf.train.adam(1e-3)` is written), `step`'s
 * arguments swapped, a record of gradients for a state made from a bare Float32Array, and
 * threads on a page that is not cross-origin isolated, the store's optimizer given as its
 * factory, an optimizer's option given to `init` or `lookahead` (`init(params, { backend })`),
 * the store's functions given their options first, and `init` given the parameters where a
 * function that returns them goes, a disposed state used again, a number given as text,
 * lookahead given its options first, a Blob or a fetch Response given for a checkpoint, and an
 * ArrayBuffer or a Map given for tensors. Each refused call leaves the state as it was.
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  dispose,
  lion,
  loadState,
  lookahead,
  radam,
  ranger,
  readParams,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { dataParallel, memoryCheckpointStore, optimisticStep } from "../store.ts";
import { saying } from "./util.ts";

Deno.test("a learning rate given where the options go says how to pass it", async () => {
  for (const [name, factory] of Object.entries({ radam, adam, adamw, lion, sgd, ranger })) {
    for (const lr of [1e-3, 0.05]) {
      assert.throws(
        () => factory(lr as never),
        saying(
          TypeError,
          `Options of ${name} must be an object, got ${lr} (pass a learning rate as ${name}({ lr: ${lr} }))`,
        ),
      );
    }
  }
  // What it says works.
  assert.equal(adam({ lr: 1e-3 }).settings.hyperparameters.lr, 1e-3);
  // Not a number: a number as text is converted first, Number(value), which the hint says.
  assert.throws(
    () => radam("1e-3" as never),
    saying(TypeError, "(a number as text: convert it, Number(value), and pass a learning rate"),
  );
  const bytes = await saveState(await radam().init({ w: new Float32Array(2) }));
  await assert.rejects(
    loadState(bytes, 1e-3 as never),
    saying(
      TypeError,
      "Options of loadState must be an object, got 0.001 (pass a learning rate as loadState(bytes, { lr: 0.001 }))",
    ),
  );
  assert.equal((await loadState(bytes, { lr: 1e-3 })).step, 0);
});

Deno.test("step with its arguments swapped says the state goes first; nothing changes", async () => {
  const state = await radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) });
  const grads = { w: new Float32Array([1, 1]) };
  assert.throws(
    () => step(grads as never, state as never),
    saying(
      TypeError,
      "Expected an optimizer state made by init() or step(), got Object (the state came second: " +
        "step takes it first, step(state, grads))",
    ),
  );
  assert.equal(state.step, 0);
  assert.deepEqual((await readParams(state)).w, new Float32Array([1, 2]));
  assert.equal(step(state, grads).step, 1);
});

Deno.test("a record of gradients for a state made from a bare Float32Array says to pass one", async () => {
  const state = await adam({ lr: 0.1 }).init(new Float32Array([1, 2, 3]));
  assert.throws(
    () => step(state, { w: new Float32Array(3) } as never),
    saying(
      TypeError,
      "Missing gradient for the parameter tensor (the state was made from a bare Float32Array: " +
        'pass its gradient as a bare Float32Array); got an unexpected "w"',
    ),
  );
  assert.equal(state.step, 0);
  assert.deepEqual((await readParams(state))[""], new Float32Array([1, 2, 3]));
  assert.equal(step(state, new Float32Array(3).fill(1)).step, 1);
});

Deno.test("threads without SharedArrayBuffer name the headers that bring it and a guard that runs anywhere", async () => {
  const g = globalThis as Record<string, unknown>;
  const saved = g.SharedArrayBuffer;
  delete g.SharedArrayBuffer;
  try {
    await assert.rejects(
      radam({ threads: 4 }).init(new Float32Array(8)),
      saying(
        TypeError,
        "Option threads: 4 needs SharedArrayBuffer (in a browser, the page must be cross-origin " +
          "isolated: served with Cross-Origin-Opener-Policy: same-origin and " +
          "Cross-Origin-Embedder-Policy: require-corp), which this runtime lacks; use threads: 1 " +
          "(or threads: globalThis.crossOriginIsolated ? 4 : 1)",
      ),
    );
    // The guard it gives runs here (no isolation: one thread).
    const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
    const state = await radam({ threads: isolated ? 4 : 1 }).init(new Float32Array(8));
    assert.equal(state.threads, 1);
    dispose(state);
  } finally {
    g.SharedArrayBuffer = saved;
  }
});

Deno.test("the store's optimizer given as its factory, uncalled, says to call it; nothing is saved", async () => {
  const store = memoryCheckpointStore();
  const init = () => ({ w: new Float32Array(2) });
  for (const [name, factory] of Object.entries({ radam, adam, adamw, lion, sgd, ranger })) {
    const said = saying(
      TypeError,
      `Option optimizer must be an optimizer, e.g. radam(), got a function (a factory: call it, ${name}())`,
    );
    await assert.rejects(
      optimisticStep(store, {
        optimizer: factory as never,
        init,
        gradient: (s) => void s.grads.w.fill(1),
      }),
      said,
    );
    assert.throws(() => dataParallel(store, { optimizer: factory as never, init }), said);
  }
  // Another function is not taken for a factory.
  assert.throws(
    () => dataParallel(store, { optimizer: radam().init as never, init }),
    (e: Error) => e.message.endsWith("got a function"),
  );
  assert.equal(await store.load(), null);
});

Deno.test("lookahead of a factory given uncalled says to call it, and every refusal what it got", () => {
  for (const [name, factory] of Object.entries({ radam, adam, adamw, lion, sgd, ranger })) {
    assert.throws(
      () => lookahead(factory as never),
      saying(
        TypeError,
        "lookahead() expects an optimizer made by this library, e.g. radam(), got a function " +
          `(a factory: call it, ${name}())`,
      ),
    );
  }
  assert.throws(
    () => lookahead("radam" as never),
    saying(TypeError, 'e.g. radam(), got a string "radam"'),
  );
  assert.equal(lookahead(radam()).settings.name, "lookahead(radam)");
});

Deno.test("an option by another library's name (learningRate, weight_decay, beta1, epsilon) says this one's", async () => {
  const cases: [() => unknown, string][] = [
    [() => adam({ learningRate: 1e-3 } as never), "(learningRate is lr here)"],
    [() => adam({ learning_rate: 1e-3 } as never), "(learning_rate is lr here)"],
    [() => adamw({ weight_decay: 0.1 } as never), "(weight_decay is weightDecay here)"],
    [() => radam({ beta1: 0.9 } as never), "(beta1 is in betas here: [β1, β2])"],
    [() => lion({ b2: 0.99 } as never), "(b2 is in betas here: [β1, β2])"],
    [() => adam({ epsilon: 1e-7 } as never), "(epsilon is eps here)"],
    [() => sgd({ useNesterov: true } as never), "(useNesterov is nesterov here)"],
    [() => ranger({ clip_grad_norm: 1 } as never), "(clip_grad_norm is clipGradNorm here)"],
    [
      () => adamw({ groups: [{ match: /b/, weight_decay: 0 } as never] }),
      "(weight_decay is weightDecay here)",
    ],
  ];
  for (const [call, hint] of cases) {
    assert.throws(call, (e: Error) => {
      assert.ok(e instanceof TypeError && /^Unknown option \w+ for /.test(e.message), e.message);
      assert.ok(e.message.endsWith(` ${hint}`), e.message);
      return true;
    });
  }
  const bytes = await saveState(await radam().init({ w: new Float32Array(2) }));
  await assert.rejects(
    loadState(bytes, { learningRate: 1e-3 } as never),
    (e: Error) => e.message.endsWith(" (learningRate is lr here)"),
  );
  // No hint where the option has no such name here (SGD has no betas), or none is near.
  for (const call of [() => sgd({ beta1: 0.9 } as never), () => radam({ lrr: 1 } as never)]) {
    assert.throws(call, (e: Error) => /; expected one of [\w, ]+$/.test(e.message));
  }
});

Deno.test("a state given where a checkpoint, params or gradients go is called a state, not by its class's name", async () => {
  const opt = radam();
  const state = await opt.init({ w: new Float32Array([1, 2]) });
  await assert.rejects(() => loadState(state as never), {
    name: "TypeError",
    message: "A checkpoint must be a Uint8Array, got an optimizer state (a state: its checkpoint " +
      "is await saveState(state))",
  });
  await assert.rejects(() => opt.init(state as never), {
    name: "TypeError",
    message: /got an optimizer state \(init takes tensors: a state's parameters are state\.params,/,
  });
  assert.throws(() => step(state, state as never), {
    name: "TypeError",
    message: /got an optimizer state$/,
  });
  assert.equal(state.step, 0);
  assert.deepEqual((await readParams(state)).w, new Float32Array([1, 2]));
});

Deno.test("an optimizer's option given to init or lookahead says it goes to the factory, in the call to write", async () => {
  const params = { w: new Float32Array([1, 2]) };
  const cases: [() => unknown, string][] = [
    [() => radam().init(params, { backend: "js" } as never), "radam({ backend })"],
    [() => adamw().init(params, { lr: 1e-3 } as never), "adamw({ lr })"],
    [() => sgd().init(params, { momentum: 0.9 } as never), "sgd({ momentum })"],
    [() => ranger().init(params, { k: 5 } as never), "ranger({ k })"],
    [() => lookahead(adam()).init(params, { alpha: 0.8 } as never), "lookahead(adam(), { alpha })"],
    [
      () => lookahead(lion()).init(params, { states: "8bit" } as never),
      "lookahead(lion({ states }))",
    ],
    [() => lookahead(radam(), { lr: 0.1 } as never), "lookahead(radam({ lr }))"],
  ];
  for (const [call, fix] of cases) {
    await assert.rejects(async () => await call(), (e: Error) => {
      assert.ok(e instanceof TypeError && /^Unknown option \w+ for /.test(e.message), e.message);
      assert.ok(e.message.endsWith(`: ${fix})`), e.message);
      return true;
    });
  }
  // Another library's name says this one's, in the factory's call.
  await assert.rejects(
    () => radam().init(params, { learningRate: 0.1 } as never),
    saying(TypeError, "(learningRate is an option of the optimizer, lr there: radam({ lr }))"),
  );
  // Not the optimizer's (Adam has no momentum), or no option anywhere: no hint.
  for (const options of [{ momentum: 0.9 }, { devise: 1 }]) {
    await assert.rejects(
      () => adam().init(params, options as never),
      (e: Error) => e instanceof TypeError && /; expected one of device, from$/.test(e.message),
    );
  }
  // What it says works.
  assert.equal((await radam({ backend: "js" }).init(params)).backend, "js");
});

Deno.test("the store's functions given their options first, or params for init, say what to write; nothing is saved", async () => {
  const store = memoryCheckpointStore();
  const params = { w: new Float32Array(2) };
  const options = { optimizer: radam(), init: () => params };
  await assert.rejects(
    optimisticStep(options as never, store as never),
    saying(
      TypeError,
      "Expected a checkpoint store, e.g. kvCheckpointStore(kv, key), got Object (the options " +
        "came first: optimisticStep takes the store first, optimisticStep(store, options))",
    ),
  );
  assert.throws(
    () => dataParallel(options as never, store as never),
    saying(
      TypeError,
      "(the options came first: dataParallel takes the store first, " +
        "dataParallel(store, options))",
    ),
  );
  // init given the parameters rather than a function that returns them.
  const initHint = "Option init must be a function, got Object (a function that returns the " +
    "parameters, called when the store holds no checkpoint: init: () => params)";
  await assert.rejects(
    optimisticStep(store, { ...options, init: params as never, gradient: () => {} }),
    saying(TypeError, initHint),
  );
  assert.throws(
    () => dataParallel(store, { ...options, init: params as never }),
    saying(TypeError, initHint),
  );
  // A missing callback says what it got too.
  await assert.rejects(
    optimisticStep(store, options as never),
    saying(TypeError, "Option gradient must be a function, got undefined"),
  );
  assert.equal(await store.load(), null);
  // What they say works.
  const done = await optimisticStep(store, { ...options, gradient: (s) => void s.grads.w.fill(1) });
  assert.equal(done.step, 1);
});

Deno.test("a disposed state used again says how to start again, on one thread or several", async () => {
  const said = saying(
    TypeError,
    "This optimizer state was disposed (dispose ends it and every state step() made from it: " +
      "start again from await opt.init(params), or from a checkpoint saved before, await " +
      "loadState(bytes))",
  );
  for (const threads of [1, 2]) {
    const opt = radam({ threads, threadThreshold: 0 });
    const first = await opt.init({ w: new Float32Array(8) });
    const bytes = await saveState(first);
    const state = step(first, { w: new Float32Array(8).fill(1) });
    dispose(state);
    assert.throws(() => step(state), said);
    assert.throws(() => first.params, said);
    await assert.rejects(readParams(state), said);
    await assert.rejects(saveState(state), said);
    // What it says works.
    const again = await loadState(bytes, { threads, threadThreshold: 0 });
    assert.equal(step(again, { w: new Float32Array(8) }).step, 1);
    dispose(again);
  }
});

Deno.test("a number given as text (a form's, a URL's, an environment variable's) says to convert it, in the store's options too", async () => {
  const hint = " (a number as text: convert it, Number(value))";
  const calls: (() => unknown)[] = [
    () => radam({ lr: "1e-3" as never }),
    () => sgd({ momentum: "0.9" as never }),
    () => adam({ betas: ["0.9", 0.999] as never }),
    () => ranger({ k: "5" as never }),
    () => radam({ threads: "2" as never }),
    () => adamw({ groups: [{ match: /b/, lrScale: "2" as never }] }),
    () => memoryCheckpointStore({ latencyMs: "5" as never }),
    () =>
      dataParallel(memoryCheckpointStore(), {
        optimizer: radam(),
        init: () => ({ w: new Float32Array(1) }),
        staleness: "4" as never,
      }),
  ];
  for (const call of calls) {
    assert.throws(call, (e: Error) => {
      assert.ok(e instanceof TypeError && e.message.startsWith("Option "), e.message);
      assert.ok(e.message.endsWith(`, got a string ${e.message.split("got a string ")[1]}`));
      assert.ok(e.message.endsWith(hint), e.message);
      return true;
    });
  }
  const bytes = await saveState(await radam().init({ w: new Float32Array(2) }));
  await assert.rejects(loadState(bytes, { lr: "0.1" as never }), saying(TypeError, hint));
  // A schedule's value too, the step not taken.
  const state = await radam({ lr: () => "0.1" as never }).init({ w: new Float32Array(2) });
  assert.throws(() => step(state, { w: new Float32Array(2) }), saying(TypeError, hint));
  assert.equal(state.step, 0);
  // Not the text of a number, or not where a number goes: no such hint.
  for (
    const call of [() => radam({ lr: "fast" as never }), () => radam({ states: "8" as never })]
  ) {
    assert.throws(call, (e: Error) => !e.message.includes("Number(value)"));
  }
  // What it says works.
  assert.equal(radam({ lr: Number("1e-3") }).settings.hyperparameters.lr, 1e-3);
});

Deno.test("lookahead given its options first says the optimizer goes first", () => {
  assert.throws(
    () => lookahead({ k: 5 } as never, radam() as never),
    {
      name: "TypeError",
      message: "lookahead() expects an optimizer made by this library, e.g. radam(), got Object " +
        "(the options came first: lookahead takes the optimizer first, lookahead(optimizer, options))",
    },
  );
  // An object alone is not taken for swapped arguments.
  assert.throws(() => lookahead({ k: 5 } as never), (e: Error) => e.message.endsWith("got Object"));
  assert.equal(lookahead(radam(), { k: 5 }).settings.lookahead?.k, 5);
});

Deno.test("a Blob, File or fetch Response given for a checkpoint, and an ArrayBuffer or a Map for tensors, say how to pass them; nothing changes", async () => {
  const bytes = await saveState(await radam().init({ w: new Float32Array([1, 2]) }));
  for (
    const [value, fix] of [
      [new Blob([bytes]), "a Blob: read its bytes, new Uint8Array(await blob.arrayBuffer())"],
      [new File([bytes], "c"), "a File: read its bytes, new Uint8Array(await file.arrayBuffer())"],
      [
        new Response(bytes),
        "a Response: read its bytes, new Uint8Array(await response.arrayBuffer())",
      ],
    ] as const
  ) {
    await assert.rejects(
      loadState(value as never),
      saying(
        TypeError,
        `A checkpoint must be a Uint8Array, got ${value.constructor.name} (${fix})`,
      ),
    );
    // What it says works.
    const read = new Uint8Array(await (value as Blob).arrayBuffer());
    assert.deepEqual((await readParams(await loadState(read))).w, new Float32Array([1, 2]));
  }
  const state = await radam().init({ w: new Float32Array(2) });
  assert.throws(
    () => step(state, { w: new Float32Array(2).buffer as never }),
    saying(TypeError, "got ArrayBuffer (wrap it: new Float32Array(buffer))"),
  );
  const map = new Map([["w", new Float32Array(2)]]);
  const mapFix = "got Map (a Map: pass a plain object, Object.fromEntries(map))";
  assert.throws(() => step(state, map as never), saying(TypeError, mapFix));
  await assert.rejects(radam().init(map as never), saying(TypeError, mapFix));
  assert.equal(state.step, 0);
  assert.equal(step(state, Object.fromEntries(map)).step, 1);
});
