/**
 * A threaded state's workers are unreferenced once started, so that a Deno script that forgets
 * `dispose` still exits, with `Worker` replaced by a subclass of it too (an app's, or a
 * stand-in): Deno's unref hook lies on its Worker class's prototype, not the subclass's.
 *
 * Where this process may run subprocesses (`--allow-run`), a script doing so is run and must exit
 * within EXIT_MS; everywhere, the hook is watched being called for each worker as the state
 * starts.
 */
import assert from "node:assert/strict";
import { dispose, radam, step } from "../mod.ts";

/** How long the script may take to step and exit (far above what it takes: under a second). */
const EXIT_MS = 30_000;

/** Deno's hook that refs (`true`) or unrefs (`false`) a worker: on its Worker's prototype. */
function unrefHook(): symbol {
  const keys = Object.getOwnPropertySymbols(Worker.prototype).filter((key) => {
    const value = Object.getOwnPropertyDescriptor(Worker.prototype, key)?.value;
    return key.description === undefined && typeof value === "function" && value.length === 1;
  });
  assert.equal(keys.length, 1, "this Deno's Worker has one unnamed hook taking one argument");
  return keys[0];
}

Deno.test("the workers of a threaded state made with a subclass of Worker are unreferenced as it starts", async () => {
  const Original = globalThis.Worker;
  const key = unrefHook();
  const proto = Original.prototype as unknown as Record<symbol, (ref: boolean) => void>;
  const hook = proto[key];
  const calls: { worker: unknown; ref: boolean }[] = [];
  proto[key] = function (this: unknown, ref: boolean) {
    calls.push({ worker: this, ref });
    return hook.call(this, ref);
  };
  const made: Worker[] = [];
  globalThis.Worker = class Subclassed extends Original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      made.push(this);
    }
  } as typeof Worker;
  let state;
  try {
    state = await radam({ threads: 3, threadThreshold: 0 }).init({ w: new Float32Array(4096) });
  } finally {
    globalThis.Worker = Original;
    proto[key] = hook;
  }
  try {
    assert.equal(made.length, 2);
    assert.deepEqual(calls, made.map((worker) => ({ worker, ref: false })));
    assert.equal(step(state, { w: new Float32Array(4096).fill(0.5) }).step, 1);
  } finally {
    dispose(state);
  }
});

Deno.test({
  name:
    "a Deno script whose threaded state, made with a subclass of Worker, is never disposed exits",
  ignore: Deno.permissions.querySync({ name: "run" }).state !== "granted",
  fn: async () => {
    const script = new URL("./threads_unref_script.ts", import.meta.url);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--quiet", script.href],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(EXIT_MS),
    }).spawn();
    const { code, signal, stdout, stderr } = await child.output();
    const said = new TextDecoder().decode(stderr);
    assert.equal(signal, null, `the script did not exit within ${EXIT_MS / 1000} s: ${said}`);
    assert.equal(code, 0, said);
    assert.equal(new TextDecoder().decode(stdout).trim(), "stepped 1 on 2 threads");
  },
});
