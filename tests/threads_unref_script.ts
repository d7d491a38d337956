/**
 * A script that makes a threaded state with `Worker` replaced by a subclass of it (as an app, or
 * a stand-in, may), steps it, and does not dispose it: it must still exit (its workers
 * unreferenced). Run by tests/threads_unref_test.ts.
 */
import { radam, step } from "../mod.ts";

const Original = globalThis.Worker;
globalThis.Worker = class Subclassed extends Original {} as typeof Worker;
const n = 4096;
let state = await radam({ threads: 2, threadThreshold: 0 }).init({
  w: { data: new Float32Array(n), shape: [n] },
});
state = step(state, { w: new Float32Array(n).fill(0.5) });
console.log(`stepped ${state.step} on ${state.threads} threads`);
