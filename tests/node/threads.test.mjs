// Option threads under Node: the built package runs its kernel workers on node:worker_threads
// (Node has no Web Workers), reached through process.getBuiltinModule. Two threads step with the
// bits of one (RAdam, Ranger, 8-bit states, clipping), dispose ends the workers, a script that
// forgets dispose still exits, and a Node without getBuiltinModule gets the TypeError that says
// what is missing.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import * as lib from "@optim/radam";
import { prng } from "./shared_case.mjs";

/** Tensors of sizes that 8-bit states encode (≥ 4096 values) and some they leave f32. */
const SHAPES = { "embed.weight": 20_000, "fc.weight": 9_000, "fc.bias": 300 };

function tensors(rand, scale) {
  const out = {};
  for (const [name, n] of Object.entries(SHAPES)) {
    out[name] = Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  }
  return out;
}

/** The bytes of every parameter and moment of `state`, by name. */
async function bits(state) {
  const out = {};
  const params = await lib.readParams(state);
  for (const [name, v] of Object.entries(params)) {
    out[`param ${name}`] = [...new Uint8Array(v.buffer)];
  }
  for (const [moment, tensors] of Object.entries(await lib.readMoments(state))) {
    for (const [name, v] of Object.entries(tensors)) {
      out[`${moment} ${name}`] = [...new Uint8Array(v.buffer, v.byteOffset, v.byteLength)];
    }
  }
  return out;
}

/** Steps `optimizer(options)` 12 times on the same draws; its bits, state.threads, and the state. */
async function train(optimizer, options) {
  const rand = prng(777);
  let state = await optimizer(options).init(tensors(rand, 1));
  for (let t = 1; t <= 12; t++) state = lib.step(state, tensors(rand, 0.1 * t));
  return { bits: await bits(state), threads: state.threads, state };
}

/**
 * Runs `run` with process.getBuiltinModule giving a node:worker_threads whose Worker records each
 * worker made and the exit of each; returns run's value and the records.
 */
async function countingWorkers(run) {
  const original = process.getBuiltinModule;
  const made = [];
  process.getBuiltinModule = (id) => {
    const module = original.call(process, id);
    if (id !== "node:worker_threads" && id !== "worker_threads") return module;
    class Counted extends module.Worker {
      constructor(...args) {
        super(...args);
        const record = { exited: false };
        record.exit = new Promise((resolve) =>
          this.once("exit", () => {
            record.exited = true;
            resolve();
          })
        );
        made.push(record);
      }
    }
    return { ...module, Worker: Counted };
  };
  try {
    return { value: await run(), made };
  } finally {
    process.getBuiltinModule = original;
  }
}

const CASES = [
  ["RAdam", lib.radam, {}],
  ["Ranger", lib.ranger, {}],
  ["8-bit RAdam, clipped", lib.radam, { states: "8bit", clipGradNorm: 1 }],
  ["8-bit Ranger", lib.ranger, { states: "8bit" }],
];

for (const [name, optimizer, options] of CASES) {
  test(`threads: 2 under Node, ${name}: the bits of one thread, on two threads`, async () => {
    const one = await train(optimizer, { lr: 1e-2, ...options });
    const { value: two, made } = await countingWorkers(() =>
      train(optimizer, { lr: 1e-2, ...options, threads: 2, threadThreshold: 0 })
    );
    assert.equal(one.threads, 1);
    assert.equal(two.threads, 2);
    assert.equal(made.length, 1, "one worker_threads worker beside the main thread");
    assert.deepEqual(two.bits, one.bits);
    lib.dispose(two.state);
    await made[0].exit;
  });
}

test("threads: 2 under Node: dispose ends the workers, and the state refuses to step", async () => {
  const { value: state, made } = await countingWorkers(() =>
    lib.radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(4096))
  );
  assert.equal(state.threads, 3);
  assert.equal(made.length, 2);
  assert.ok(made.every((w) => !w.exited), "workers live until dispose");
  lib.dispose(state);
  await Promise.all(made.map((w) => w.exit));
  assert.throws(() => lib.step(state, new Float32Array(4096)), /dispose/);
});

test("threads: 2 under Node: a script that steps and forgets dispose still exits", () => {
  const script = `
    import * as lib from "@optim/radam";
    let state = await lib.radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(5000));
    state = lib.step(state, new Float32Array(5000).fill(1));
    console.log(state.threads, state.step);
  `;
  // The process would hang on its referenced workers; the timeout only keeps a failure finite.
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: fileURLToPath(new URL(".", import.meta.url)),
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(out.trim(), "2 1");
});

test("threads: 2 on a Node without process.getBuiltinModule (before 20.16) is a TypeError that says what is missing; one thread runs", async () => {
  const original = process.getBuiltinModule;
  process.getBuiltinModule = undefined;
  try {
    await assert.rejects(
      lib.radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(8)),
      (e) =>
        e instanceof TypeError &&
        /^Option threads: 2 needs Web Workers, or Node\.js's node:worker_threads through process\.getBuiltinModule .*; use threads: 1$/
          .test(e.message),
    );
    const state = await lib.radam({ threads: 1 }).init(new Float32Array(8));
    assert.equal(state.threads, 1);
  } finally {
    process.getBuiltinModule = original;
  }
});

test("threads: 2 under Node's permission model without --allow-worker is a TypeError naming the flag, made before any worker; threads: 1 runs", () => {
  const flag = Number(process.versions.node.split(".")[0]) >= 22
    ? "--permission"
    : "--experimental-permission";
  const script = `
    import * as lib from "@optim/radam";
    const out = {};
    try {
      await lib.radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(5000));
    } catch (e) {
      out.error = { type: e.constructor.name, message: e.message };
    }
    let state = await lib.radam({ threads: 1 }).init(new Float32Array(5000));
    state = lib.step(state, new Float32Array(5000).fill(1));
    out.step = state.step;
    console.log(JSON.stringify(out));
  `;
  const run = (...more) =>
    JSON.parse(execFileSync(process.execPath, [
      flag,
      "--allow-fs-read=*",
      ...more,
      "--no-warnings",
      "--input-type=module",
      "-e",
      script,
    ], {
      cwd: fileURLToPath(new URL(".", import.meta.url)),
      encoding: "utf8",
      timeout: 60_000,
    }));
  const denied = run();
  assert.equal(denied.step, 1);
  assert.equal(denied.error?.type, "TypeError");
  assert.match(
    denied.error.message,
    /^Option threads: 2 needs worker threads, which Node\.js's permission model denies this process .*: run node with --allow-worker as well, or use threads: 1$/,
  );
  assert.deepEqual(run("--allow-worker"), { step: 1 });
});

/**
 * Runs `run` with process.getBuiltinModule giving a node:worker_threads whose Worker hands each
 * worker made to `made` (a hook, called in its constructor); returns run's value.
 */
async function hookedWorkers(made, run) {
  const original = process.getBuiltinModule;
  process.getBuiltinModule = (id) => {
    const module = original.call(process, id);
    if (id !== "node:worker_threads") return module;
    class Hooked extends module.Worker {
      constructor(...args) {
        super(...args);
        made(this);
      }
    }
    return { ...module, Worker: Hooked };
  };
  try {
    return await run();
  } finally {
    process.getBuiltinModule = original;
  }
}

test("threads: 2 under Node: a worker terminated by other code between steps fails the next step at once, before its exit event, saying so and that the state is intact; dispose still works", async () => {
  const workers = [];
  const state = await hookedWorkers(
    (w) => workers.push(w),
    () => lib.radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(5000)),
  );
  assert.equal(workers.length, 2);
  const before = await lib.saveState(state);
  const exited = workers[1].terminate();
  // The step refuses at once (its exit event not delivered yet: the step would have waited for
  // the stall bound), and after the event; the state is as it was.
  const grads = new Float32Array(5000).fill(1);
  for (let i = 0; i < 2; i++) {
    assert.throws(
      () => lib.step(state, grads),
      /^Error: A kernel worker of this threaded optimizer state failed \(it was terminated by other code \(its terminate\(\) called\)\) with nothing of the state being written: .*\(saveState\)/,
    );
    await exited;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.deepEqual(await lib.saveState(state), before);
  lib.dispose(state);
  assert.throws(() => lib.step(state, grads), /dispose/);
});

test("threads: 2 under Node: a worker that exits in the middle of a step fails it at once (not after the stall bound), saying so; dispose still works", async () => {
  // Its program preceded by a process.exit(7) at its second progress bump: after its first
  // chunk of the step, before it counts its share done.
  const prefix = "{ const add = Atomics.add; let bumps = 0;\n" +
    "Atomics.add = (a, i, v) => { if (++bumps === 2) process.exit(7); return add(a, i, v); }; }\n";
  const original = process.getBuiltinModule;
  let first = true;
  process.getBuiltinModule = (id) => {
    const module = original.call(process, id);
    if (id !== "node:worker_threads") return module;
    class Exiting extends module.Worker {
      constructor(source, options) {
        super(first ? prefix + source : source, options);
        first = false;
      }
    }
    return { ...module, Worker: Exiting };
  };
  const n = 600_000; // 200K elements a thread: several chunks
  let state;
  try {
    state = await lib.radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(n));
  } finally {
    process.getBuiltinModule = original;
  }
  const grads = new Float32Array(n).fill(1e-3);
  // (After the stall bound, the message would say "no progress" instead.)
  assert.throws(
    () => lib.step(state, grads),
    /^Error: A kernel worker of this threaded optimizer state failed \(it exited \(exit code 7\): process\.exit in it, or an error nothing caught\); .*loadState/,
  );
  assert.equal(state.step, 0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.throws(() => lib.step(state, grads), /failed \(it exited \(exit code 7\)/);
  lib.dispose(state);
  assert.throws(() => lib.step(state, grads), /failed \(it exited|dispose/);
});

test("threads: 2 under Node: a worker terminated as it is made rejects init at once, saying so, and ends the others", async () => {
  const exits = [];
  await assert.rejects(
    hookedWorkers((w) => {
      exits.push(new Promise((resolve) => w.once("exit", resolve)));
      if (exits.length === 2) w.terminate();
    }, () => lib.radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(5000))),
    /^Error: A kernel worker failed to start: it was terminated by other code \(its terminate\(\) called\)$/,
  );
  // The other one is ended too: its exit event comes.
  await Promise.all(exits);
});

test("threads under Node: several threaded states alive at once, disposed in any order, step and end", async () => {
  const grads = new Float32Array(5000).fill(1);
  const made = [];
  const states = await hookedWorkers((w) => made.push(w), async () => [
    await lib.radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(5000)),
    await lib.adamw({ threads: 3, threadThreshold: 0 }).init(new Float32Array(5000)),
    await lib.ranger({ threads: 2, threadThreshold: 0, states: "8bit" }).init(
      new Float32Array(5000),
    ),
  ]);
  const exits = made.map((w) => new Promise((resolve) => w.once("exit", resolve)));
  assert.equal(made.length, 4);
  const [a, b, c] = states.map((s) => lib.step(s, grads));
  lib.dispose(b);
  const c2 = lib.step(c, grads);
  lib.dispose(c2);
  const a2 = lib.step(a, grads);
  assert.equal(a2.step, 2);
  lib.dispose(a2);
  await Promise.all(exits);
});

test("threads: 2 under Node from CommonJS (require), and under --disallow-code-generation-from-strings", () => {
  const script = `
    const lib = require("@optim/radam");
    lib.radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(5000)).then((state) => {
      state = lib.step(state, new Float32Array(5000).fill(1));
      console.log(state.threads, state.step);
    });
  `;
  for (const flags of [[], ["--disallow-code-generation-from-strings"]]) {
    const out = execFileSync(process.execPath, [...flags, "--no-warnings", "-e", script], {
      cwd: fileURLToPath(new URL(".", import.meta.url)),
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(out.trim(), "2 1", flags.join(" "));
  }
});
