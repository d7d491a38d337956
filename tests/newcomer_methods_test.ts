/**
 * Calls a newcomer writes as other libraries spell them, each of which now says what to write:
 * `opt.step()` (PyTorch's `optimizer.step()`) and `state.dispose()` (as a TensorFlow.js tensor
 * is disposed), both JavaScript's "is not a function" before; and a factory given uncalled where
 * a state or a checkpoint goes (`step(radam)`, `saveState(adam)`, `loadState(radam, bytes)`,
 * `loadState(bytes, radam)`), whose errors said only that they got a function; and a schedule
 * maker called without its count of steps (`cosineDecay(1e-3)`, which TypeScript refuses and
 * JavaScript does not), whose error named an option the caller never wrote, and no call; and a
 * parameter group given PyTorch's `lr`, whose hint wrote `lrScale: 10` whatever the rates; and a
 * checkpoint read into a Node Buffer and kept through JSON (`{ type: "Buffer", data }`), which
 * `loadState` refused as "got Object", with no hint.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  adam,
  adamw,
  cosineDecay,
  dispose,
  linearWarmup,
  loadState,
  lookahead,
  oneCycle,
  radam,
  ranger,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import { saying } from "./util.ts";

Deno.test("opt.step() is a TypeError saying that the function step steps the state init makes", async () => {
  for (const [opt, made] of [[radam(), "radam()"], [ranger(), "ranger()"]] as const) {
    assert.throws(
      () => (opt as unknown as { step(): void }).step(),
      saying(
        TypeError,
        `An optimizer has no step() method: it holds no state. Make one, let state = await ${made}` +
          ".init(params), and step it with the function step, state = step(state, grads)",
      ),
    );
  }
  const wrapped = lookahead(adam()) as unknown as { step(): void };
  assert.throws(() => wrapped.step(), saying(TypeError, "let state = await opt.init(params)"));
  // Not an own key: the optimizer value is as it was, spread, as JSON, and in its type.
  const opt = radam();
  assert.deepEqual(Object.keys(opt), ["name", "settings", "init"]);
  assert.equal("step" in { ...opt }, false);
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(opt))), ["name", "settings"]);
  // @ts-expect-error: no step() in the type, which would say it works
  assert.throws(() => opt.step(), TypeError);
  const state = await radam().init({ w: new Float32Array(2) });
  assert.equal(step(state, { w: new Float32Array([1, 1]) }).step, 1);
});

Deno.test("state.dispose() is a TypeError naming dispose(state); the state stays usable", async () => {
  for (const backend of ["js", "wasm"] as const) {
    let state = await radam({ backend }).init({ w: new Float32Array(2) });
    assert.throws(
      () => (state as unknown as { dispose(): void }).dispose(),
      saying(
        TypeError,
        "A state has no dispose() method: free it with the function dispose(state) " +
          '(import { dispose } from "@optim/radam")',
      ),
    );
    // @ts-expect-error: no dispose() in the type, which would say it works
    assert.throws(() => state.dispose(), TypeError);
    state = step(state, { w: new Float32Array([1, 1]) });
    assert.equal(state.step, 1);
    dispose(state);
    assert.throws(() => state.step, saying(TypeError, "was disposed"));
  }
});

Deno.test("a factory given uncalled where a state goes says to call it and make its state", async () => {
  const factories = { radam, adam, ranger } as Record<string, unknown>;
  for (const [name, factory] of Object.entries(factories)) {
    const says = "Expected an optimizer state made by init() or step(), got a function " +
      `(a factory: call it, and make its state, await ${name}().init(params))`;
    // deno-lint-ignore no-explicit-any
    const f = factory as any;
    assert.throws(() => step(f), saying(TypeError, says));
    assert.throws(() => dispose(f), saying(TypeError, says));
    await assert.rejects(saveState(f), saying(TypeError, says));
    await assert.rejects(readParams(f), saying(TypeError, says));
  }
});

Deno.test("a factory renamed by a minifier (an app's production bundle) is still known uncalled", async () => {
  // A minifier renames functions: radam.name is then "Xe", and the hints, which went by the
  // name, said only that they got a function.
  const name = Object.getOwnPropertyDescriptor(radam, "name")!;
  Object.defineProperty(radam, "name", { value: "Xe" });
  try {
    // deno-lint-ignore no-explicit-any
    const f = radam as any;
    assert.throws(
      () => step(f),
      saying(TypeError, "(a factory: call it, and make its state, await radam()"),
    );
    assert.throws(() => lookahead(f), saying(TypeError, "(a factory: call it, radam())"));
    const bytes = await saveState(await adam().init({ w: new Float32Array(2) }));
    await assert.rejects(
      loadState(bytes, f),
      saying(TypeError, "got the factory radam for its options"),
    );
  } finally {
    Object.defineProperty(radam, "name", name);
  }
  assert.equal(radam.name, "radam");
});

Deno.test("a factory given to loadState, first or for its options, says the checkpoint holds its optimizer", async () => {
  const state = await adam().init({ w: new Float32Array([1, 2]) });
  const bytes = await saveState(state);
  // deno-lint-ignore no-explicit-any
  const f = radam as any;
  await assert.rejects(
    loadState(f, bytes as never),
    saying(
      TypeError,
      "A checkpoint must be a Uint8Array, got a function (a factory: the checkpoint holds its " +
        "optimizer and goes first, loadState(bytes), or loadState(bytes, { lr }))",
    ),
  );
  await assert.rejects(
    loadState(bytes, f),
    saying(
      TypeError,
      "loadState() takes no optimizer, got the factory radam for its options (the checkpoint " +
        "holds its optimizer and options: loadState(bytes), with { lr } for a schedule)",
    ),
  );
  assert.equal((await loadState(bytes)).optimizer, "adam");
});

Deno.test("a schedule maker without its count of steps names the maker and the call to write", () => {
  const makers = [
    [cosineDecay, "decaySteps", "cosineDecay(1e-3, { decaySteps: 1000 })"],
    [linearWarmup, "warmupSteps", "linearWarmup(1e-3, { warmupSteps: 100 })"],
    [oneCycle, "totalSteps", "oneCycle(1e-3, { totalSteps: 1000 })"],
  ] as const;
  for (const [maker, key, call] of makers) {
    const name = call.slice(0, call.indexOf("("));
    // deno-lint-ignore no-explicit-any
    const loose = maker as (...args: any[]) => unknown;
    const got = `Option ${key} must be an integer from 1 to 2⁵³ − 1, got undefined`;
    assert.throws(
      () => loose(1e-3),
      saying(TypeError, `${got} (${name} needs it, given no options: write ${call})`),
    );
    assert.throws(
      () => loose(1e-3, {}),
      saying(TypeError, `${got} (${name} needs it: write ${call})`),
    );
    // The learning rate is still checked first.
    assert.throws(
      () => loose(),
      saying(TypeError, "Option lr must be a finite number ≥ 0, got undefined"),
    );
  }
});

Deno.test("a group given its own lr, as PyTorch's param groups, is told the lrScale that gives it", () => {
  const refused = (make: () => unknown, scale: string) =>
    assert.throws(
      make,
      saying(
        TypeError,
        "Unknown option lr for groups[0]; expected one of match, lrScale, weightDecay (a group's " +
          `learning rate is the optimizer's lr times lrScale: ${scale})`,
      ),
    );
  // deno-lint-ignore no-explicit-any
  const group = (lr: unknown): any => ({ match: /bias/, lr });
  refused(() => adamw({ lr: 1e-3, groups: [group(1e-4)] }), "lrScale: 0.1");
  refused(() => adam({ lr: 2e-3, groups: [group(5e-3)] }), "lrScale: 2.5");
  refused(
    () => adam({ lr: (t) => 1 / t, groups: [group(1e-4)] }),
    "lrScale: 0.1 for a tenth of it",
  );
  // A group's lr that gives no lrScale the option takes (NaN, negative, a ratio past a finite
  // number) is not written as one: it said lrScale: NaN, lrScale: -0.1, lrScale: Infinity.
  for (const [lr, given] of [[1e-3, NaN], [1e-3, -1e-4], [1e-3, Infinity], [1e-300, 1e10]]) {
    refused(() => adam({ lr, groups: [group(given)] }), "lrScale: 0.1 for a tenth of it");
  }
});

Deno.test("a Node Buffer's checkpoint kept through JSON says how to recover the bytes", async () => {
  const bytes = await saveState(await adam().init({ w: new Float32Array([1, 2]) }));
  const kept = JSON.parse(JSON.stringify({ checkpoint: Buffer.from(bytes) })).checkpoint;
  const says =
    "A checkpoint must be a Uint8Array, got Object (a Node Buffer that went through JSON, " +
    'which writes it as { type: "Buffer", data }: keep a checkpoint as bytes, or as base64 text; ' +
    "new Uint8Array(o.data) recovers it)";
  await assert.rejects(loadState(kept), saying(TypeError, says));
  const recovered = await loadState(new Uint8Array(kept.data));
  assert.deepEqual((await readParams(recovered)).w, new Float32Array([1, 2]));
});
