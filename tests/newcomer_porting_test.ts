/**
 * What a user porting a PyTorch training script, or writing a Deno pipeline that checkpoints to
 * a file, writes first, where the call failed with a misleading message: `loadState(optimizer,
 * bytes)` (as `optimizer.load_state_dict(sd)` reads) was an "Unknown option 0", and a file's
 * path, a `URL`, the file read as text, a `DataView` of its bytes or the bytes through JSON (an
 * object of indices) said only that a checkpoint must be a Uint8Array, a checkpoint kept as base64
 * text was taken for a file's path, and a state through JSON (`{}`, as a serverless function may
 * store it) said nothing;
 * `state.lr = x` (PyTorch's `param_groups[0]["lr"] = x`, tfjs's `learningRate = x`) added a
 * property that no step read, silently, where the way to change it mid-run is a schedule;
 * the parameters given to the factory (`torch.optim.Adam(params, lr=1e-3)`) were "Unknown
 * option w", PyTorch's options with no counterpart here (`amsgrad`, `foreach`, …) only unknown,
 * and a list of tensors (`model.parameters()`) or nested arrays said only what was expected.
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  cosineDecay,
  linearWarmup,
  loadState,
  lookahead,
  oneCycle,
  radam,
  ranger,
  readParams,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { saying } from "./util.ts";

Deno.test("loadState given the optimizer first says the checkpoint goes first and holds its own", async () => {
  const optimizer = adam({ lr: 0.1 });
  const bytes = await saveState(await optimizer.init({ w: new Float32Array([1, 2]) }));
  await assert.rejects(
    loadState(optimizer as never, bytes as never),
    saying(
      TypeError,
      "A checkpoint must be a Uint8Array, got Object (an optimizer: the checkpoint holds its own and goes first, loadState(bytes), or loadState(bytes, { lr }))",
    ),
  );
  assert.deepEqual((await readParams(await loadState(bytes))).w, new Float32Array([1, 2]));
});

Deno.test("loadState given a file's path, its URL, or the file read as text says to read its bytes", async () => {
  const bytes = await saveState(await adam().init({ w: new Float32Array([1, 2]) }));
  const path = "a file's path or URL? loadState takes its bytes: await Deno.readFile(path), " +
    "Node's await readFile(path), new Uint8Array(await (await fetch(url)).arrayBuffer())";
  await assert.rejects(
    loadState("checkpoints/latest.safetensors" as never),
    saying(TypeError, `got a string "checkpoints/latest.safetensors" (${path})`),
  );
  await assert.rejects(
    loadState(new URL("file:///tmp/latest.safetensors") as never),
    saying(TypeError, `got URL (${path})`),
  );
  const text = new TextDecoder().decode(bytes);
  await assert.rejects(
    loadState(text as never),
    saying(
      TypeError,
      "(the file read as text: read its bytes, await Deno.readFile(path), Node's await readFile(path), new Uint8Array(await response.arrayBuffer()))",
    ),
  );
});

Deno.test("loadState given a DataView of the bytes, or the bytes through JSON, says how to give them", async () => {
  const bytes = await saveState(await adam().init({ w: new Float32Array([1, 2]) }));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  await assert.rejects(
    loadState(view as never),
    saying(
      TypeError,
      "got DataView (a view of its bytes: new Uint8Array(view.buffer, view.byteOffset, view.byteLength))",
    ),
  );
  const json = JSON.parse(JSON.stringify(bytes));
  await assert.rejects(
    loadState(json as never),
    saying(
      TypeError,
      "(a Uint8Array that went through JSON, which writes it as an object of indices: keep a checkpoint as bytes, or as base64 text; new Uint8Array(Object.values(o)) recovers it)",
    ),
  );
  const recovered = new Uint8Array(Object.values(json) as number[]);
  assert.deepEqual((await readParams(await loadState(recovered))).w, new Float32Array([1, 2]));
});

Deno.test("loadState given a checkpoint as base64 text, or a state through JSON ({}), says how to give its bytes", async () => {
  const state = await adam().init({ w: new Float32Array([1, 2]) });
  const bytes = await saveState(state);
  // What the JSON hint above advises keeping, handed over as it is kept: a file's path it is not.
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  const base64 = btoa(text);
  await assert.rejects(
    loadState(base64 as never),
    saying(
      TypeError,
      `got a string "${
        base64.slice(0, 40)
      }…" (a checkpoint as base64 text: decode it, Node's Buffer.from(text, "base64"), or Uint8Array.from(atob(text), (c) => c.charCodeAt(0)))`,
    ),
  );
  const decoded = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  assert.deepEqual((await readParams(await loadState(decoded))).w, new Float32Array([1, 2]));
  // A state through JSON was {}: stored so in a serverless function's database, and read back.
  // (JSON.stringify(state) throws now, saying so: see newcomer_first_steps_test.ts.)
  const json = "{}";
  const says = "(an optimizer state through JSON, which writes it as {}: a state's checkpoint " +
    "is await saveState(state), bytes; keep those, or base64 text of them)";
  await assert.rejects(loadState(JSON.parse(json)), saying(TypeError, `got Object ${says}`));
  await assert.rejects(loadState(json as never), saying(TypeError, `got a string "{}" ${says}`));
  // A path that happens to be base64 characters is still a path.
  await assert.rejects(
    loadState("checkpointsLatestStepTwelve" as never),
    saying(TypeError, "(a file's path or URL?"),
  );
});

Deno.test("state.lr = x (or learningRate) is a TypeError saying how to change the lr mid-run; that way works", async () => {
  let state = await radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) });
  state = step(state, { w: new Float32Array([1, 1]) });
  for (const key of ["lr", "learningRate"]) {
    assert.throws(
      () => ((state as unknown as Record<string, number>)[key] = 0),
      saying(
        TypeError,
        `A state has no ${key} to set (the assignment would change nothing): its learning rate is its optimizer's. To change it mid-run, give lr as a schedule that reads yours, let lr = 1e-3; radam({ lr: () => lr })`,
      ),
    );
  }
  // Nothing changed, and the state steps on.
  assert.equal(state.step, 1);
  state = step(state, { w: new Float32Array([1, 1]) });
  assert.equal(state.step, 2);
  // What it says: a schedule reading a variable, set mid-run, takes effect at the next step.
  let lr = 0.1;
  let read = await radam({ lr: () => lr }).init({ w: new Float32Array([1, 2]) });
  for (let t = 0; t < 6; t++) read = step(read, { w: new Float32Array([1, 1]) });
  lr = 0;
  const before = read.params.w.slice();
  read = step(read, { w: new Float32Array([1, 1]) });
  assert.deepEqual(read.params.w, before);
  // Its checkpoint holds no lr: it resumes with the schedule given again.
  const resumed = await loadState(await saveState(read), { lr: () => lr });
  assert.equal(resumed.step, 7);
});

Deno.test("the parameters given to the factory, as torch.optim.Adam(params, lr) takes them, say they go to init", async () => {
  const w = new Float32Array([1, 2]);
  const b = new Float32Array([0]);
  const says = (name: string) =>
    saying(
      TypeError,
      `${name}() takes its options, not the parameters: they go to init, ${name}({ lr: 1e-3 }).init(params) (where PyTorch writes torch.optim.Adam(params, lr=1e-3))`,
    );
  for (const given of [{ w, b }, [w, b], w, { w: { data: w, shape: [2, 1] } }]) {
    assert.throws(() => adam(given as never), says("adam"));
    assert.throws(() => ranger(given as never), says("ranger"));
  }
  assert.throws(
    () => adamw({ params: { w }, lr: 1e-3 } as never),
    saying(TypeError, "(the parameters go to init: adamw({ lr }).init(params))"),
  );
  // Options, and an empty record, are still options.
  assert.equal(adam({}).settings.hyperparameters.lr, 1e-3);
  assert.equal((await adam({ lr: 0.1 }).init({ w, b })).names.length, 2);
});

Deno.test("PyTorch's optimizer options with no counterpart here say what they are", () => {
  const cases: [string, string][] = [
    ["amsgrad", "AMSGrad is not implemented here: Adam and AdamW are PyTorch's with amsgrad=False"],
    [
      "foreach",
      "PyTorch's choice of kernel: here every step is one fused kernel over all tensors; drop it",
    ],
    [
      "fused",
      "PyTorch's choice of kernel: here every step is one fused kernel over all tensors; drop it",
    ],
    ["capturable", "a flag of PyTorch's CUDA graphs, with no counterpart here; drop it"],
    ["differentiable", "a flag of PyTorch's autograd, with no counterpart here; drop it"],
  ];
  for (const [key, hint] of cases) {
    for (const factory of [adam, sgd]) {
      assert.throws(
        () => factory({ lr: 1e-3, [key]: false } as never),
        saying(TypeError, `Unknown option ${key} for ${factory.name}; expected one of lr`),
      );
      assert.throws(() => factory({ [key]: true } as never), saying(TypeError, `(${hint})`));
    }
  }
});

Deno.test("init given a list of tensors, or nested arrays for a tensor or a gradient, says how to give them", async () => {
  const w = new Float32Array([1, 2]);
  await assert.rejects(
    radam().init([w, new Float32Array(1)] as never),
    saying(
      TypeError,
      `got Array(2) (a list, as PyTorch's model.parameters(): name each, as its named_parameters() does, { "fc.weight": w, "fc.bias": b }`,
    ),
  );
  await assert.rejects(
    radam().init({ w: [[1, 2], [3, 4]] } as never),
    saying(
      TypeError,
      "got Array(2) (nested arrays: flatten them with their shape, { data: new Float32Array(values.flat(Infinity)), shape: [rows, cols] })",
    ),
  );
  const values = [[1, 2], [3, 4]];
  const state = await radam().init({
    w: { data: new Float32Array(values.flat(Infinity) as number[]), shape: [2, 2] },
  });
  assert.throws(
    () => step(state, { w: [[1, 1], [1, 1]] } as never),
    saying(
      TypeError,
      'Expected the gradient of parameter "w" to be a Float32Array, got Array(2) (nested arrays: flatten them, new Float32Array(values.flat(Infinity)))',
    ),
  );
  assert.equal(state.step, 0);
  assert.equal(
    step(state, { w: new Float32Array([[1, 1], [1, 1]].flat(Infinity) as number[]) }).step,
    1,
  );
});

Deno.test("a schedule maker given its steps bare, its options first, or PyTorch's names of them says what to write", () => {
  const cases: [() => unknown, string][] = [
    [
      () => linearWarmup(1e-3, 100 as never),
      "Options of linearWarmup must be an object, got 100 (write linearWarmup(1e-3, { warmupSteps: 100 }))",
    ],
    [
      () => cosineDecay(1e-3, 1000 as never),
      "Options of cosineDecay must be an object, got 1000 (write cosineDecay(1e-3, { decaySteps: 1000 }))",
    ],
    [
      () => oneCycle({ max_lr: 1e-2, total_steps: 100 } as never, undefined as never),
      "The first argument of oneCycle must be the learning rate, a finite number ≥ 0, got Object " +
      "(write oneCycle(0.01, { totalSteps: 100 }))",
    ],
    [
      () => cosineDecay(1e-3, { T_max: 100, eta_min: 0 } as never),
      "Unknown option T_max for cosineDecay; expected one of decaySteps, finalLr (T_max is decaySteps here: cosineDecay(1e-3, { decaySteps: 1000 }))",
    ],
    [
      () => cosineDecay(1e-3, { decaySteps: 100, eta_min: 0 } as never),
      "(eta_min is finalLr here: cosineDecay(1e-3, { decaySteps: 1000 }))",
    ],
    [
      () => oneCycle(1e-2, { epochs: 10, stepsPerEpoch: 100 } as never),
      "(totalSteps here is epochs × stepsPerEpoch: oneCycle(1e-3, { totalSteps: 1000 }))",
    ],
    [
      () => oneCycle(1e-2, { totalSteps: 100, final_div_factor: 1e4 } as never),
      "(final_div_factor is divFinal here: oneCycle(1e-3, { totalSteps: 1000 }))",
    ],
  ];
  for (const [make, message] of cases) assert.throws(make, saying(TypeError, message));
  // A name that is Object.prototype's is only unknown.
  assert.throws(
    () => cosineDecay(1e-3, { decaySteps: 10, constructor: 1 } as never),
    saying(
      TypeError,
      "Unknown option constructor for cosineDecay; expected one of decaySteps, finalLr",
    ),
  );
  assert.equal(linearWarmup(1e-3, { warmupSteps: 100 })(50), 5e-4);
});

Deno.test("a tensor, or rows, added to the model after init say how to train them; nothing changes", async () => {
  const opt = radam({ lr: 0.1 });
  let state = await opt.init({ emb: new Float32Array(4), w: new Float32Array(2) });
  state = step(state, { emb: new Float32Array(4).fill(1), w: new Float32Array(2).fill(1) });
  const hint =
    " (a state's tensors, and their lengths, are those given to init: a tensor, or rows, " +
    "added to the model later train in a state of their own, await opt.init({ name: values }), " +
    "stepped beside this one, with its own step count, as PyTorch counts each parameter's; or " +
    "a new state of them all takes this one's moments and step count for the tensors it holds, " +
    "await opt.init(params, { from: state }))";
  const grads = { emb: new Float32Array(4), w: new Float32Array(2) };
  assert.throws(
    () => step(state, { ...grads, head: new Float32Array(3) } as never),
    saying(
      TypeError,
      `Unexpected gradient "head": the state holds no parameter of that name${hint}`,
    ),
  );
  assert.throws(
    () => step(state, { ...grads, emb: new Float32Array(6) }),
    saying(RangeError, `Expected the gradient of parameter "emb" to have length 4, got 6${hint}`),
  );
  assert.throws(
    () => step(state, { ...grads, emb: new Float32Array(3) }),
    (e: Error) => e instanceof RangeError && e.message.endsWith("to have length 4, got 3"),
  );
  assert.equal(state.step, 1);
  // What it says: the new tensor in a state of its own, stepped beside.
  let added = await opt.init({ head: new Float32Array(3) });
  state = step(state, grads);
  added = step(added, { head: new Float32Array(3).fill(1) });
  assert.deepEqual([state.step, added.step], [2, 1]);
});

Deno.test("clipping under Keras' and PyTorch's names, and lookahead's k given bare, say what to write", () => {
  for (const key of ["clipnorm", "clipNorm", "max_norm", "maxNorm"]) {
    assert.throws(
      () => adam({ [key]: 1 } as never),
      saying(TypeError, `Unknown option ${key} for adam; expected one of lr`),
    );
    // (Keras's clipnorm clips each tensor by its own norm: its hint says clipGradNorm does not.)
    assert.throws(
      () => adam({ [key]: 1 } as never),
      saying(
        TypeError,
        key.startsWith("clip")
          ? `(${key}, Keras's, clips each tensor's gradient by its own norm`
          : `(${key} is clipGradNorm here)`,
      ),
    );
  }
  assert.throws(
    () => lookahead(radam(), 5 as never),
    saying(
      TypeError,
      "Options of lookahead must be an object, got 5 (k is an option: lookahead(optimizer, { k: 5 }))",
    ),
  );
  assert.equal(lookahead(radam(), { k: 5 }).settings.lookahead?.k, 5);
});

Deno.test("a state copied by structuredClone, spread or JSON (as a serverless function may store it) says how a state is carried", async () => {
  // Each makes an empty object: a state's tensors live in its backend, not in fields a copy
  // takes. Before, the error said only "got Object".
  const state = await radam().init({ w: new Float32Array([1, 2]) });
  // (JSON.stringify(state) and, in Deno, structuredClone(state) throw now; "{}" is what they
  // made before, as a store may hold it, and what structuredClone makes elsewhere.)
  const copies = [{ ...state }, JSON.parse("{}"), Object.assign({}, state)];
  for (const copy of copies) {
    assert.throws(
      () => step(copy as never, { w: new Float32Array(2) }),
      saying(
        TypeError,
        "got Object (an empty object: structuredClone(state), { ...state } and JSON",
      ),
    );
    await assert.rejects(
      () => saveState(copy as never),
      saying(TypeError, "await saveState(state)"),
    );
  }
  assert.equal(state.step, 0);
  // A plain object with fields of its own is not taken for such a copy.
  assert.throws(() => step({ w: 1 } as never), (e: Error) => e.message.endsWith("got Object"));
});

Deno.test("Keras's optimizer options of the TensorFlow.js adapter given to a factory (use_ema, gradient_accumulation_steps) say they go to tfOptimizer", () => {
  const cases: [string, string][] = [
    [
      "gradient_accumulation_steps",
      "(gradient_accumulation_steps is an option of tfOptimizer, gradientAccumulationSteps there: " +
      "tfOptimizer(adam({ … }), { gradientAccumulationSteps }))",
    ],
    [
      "gradientAccumulationSteps",
      "(gradientAccumulationSteps is an option of tfOptimizer: " +
      "tfOptimizer(adam({ … }), { gradientAccumulationSteps }))",
    ],
    ["ema", "(ema is an option of tfOptimizer: tfOptimizer(adam({ … }), { ema }))"],
    [
      "use_ema",
      "(use_ema is an option of tfOptimizer, ema there: tfOptimizer(adam({ … }), { ema: true }))",
    ],
    [
      "ema_momentum",
      "(ema_momentum is an option of tfOptimizer, ema's momentum there: " +
      "tfOptimizer(adam({ … }), { ema: { momentum } }))",
    ],
    [
      "ema_overwrite_frequency",
      "(ema_overwrite_frequency is an option of tfOptimizer, ema's overwriteFrequency there: " +
      "tfOptimizer(adam({ … }), { ema: { overwriteFrequency } }))",
    ],
  ];
  for (const [key, hint] of cases) {
    assert.throws(
      () => adam({ lr: 1e-3, [key]: 4 } as never),
      saying(TypeError, `Unknown option ${key} for adam; expected one of lr`),
    );
    assert.throws(() => adam({ lr: 1e-3, [key]: 4 } as never), saying(TypeError, hint));
  }
});
