/**
 * A binding over a synchronous database (`node:sqlite`'s `DatabaseSync`) throws at once where an
 * asynchronous one rejects: every method's failure, thrown or rejected, reaches the same handling
 * and gives the same outcome and wording (what became of the update, or the contribution).
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import {
  dataParallel,
  memoryCheckpointStore,
  optimisticStep,
  type TrainingStore,
} from "../store.ts";

const optimizer = radam({ backend: "js" });
const init = () => ({ w: new Float32Array(3) });
const METHODS = ["load", "save", "request", "commit", "submit", "pending", "gradient", "head"];

/** A memory store whose `method` fails at its `nth` call (from 0), thrown or rejected. */
function failing(method: string, nth: number, how: "throw" | "reject"): TrainingStore {
  const store = memoryCheckpointStore({ name: "sync-db" });
  let calls = 0;
  return new Proxy(store, {
    get(target, key) {
      const member = Reflect.get(target, key);
      if (key !== method || typeof member !== "function") return member;
      return (...args: unknown[]) => {
        if (calls++ !== nth) return member.apply(target, args);
        const error = new Error("database is locked");
        if (how === "reject") return Promise.reject(error);
        throw error;
      };
    },
  });
}

/** What three optimistic steps, then three data-parallel submissions, answered, in words. */
async function outcomes(method: string, how: "throw" | "reject"): Promise<string[]> {
  // (The state left out before JSON: a state's toJSON throws, before a replacer could.)
  const said = (p: Promise<unknown>) =>
    p.then((r) => {
      const { state: _, ...rest } = r as Record<string, unknown>;
      return JSON.stringify(rest);
    }, (e) => `${e}`);
  const out: string[] = [];
  const store = failing(method, 1, how);
  for (const id of ["a", "b", "c"]) {
    const gradient = (s: { grads: Readonly<Record<string, Float32Array>> }) =>
      void s.grads.w.fill(1);
    out.push(await said(optimisticStep(store, { optimizer, init, id, gradient })));
  }
  const trainer = dataParallel(failing(method, 0, how), { optimizer, init, pollMs: 5 });
  try {
    for (const id of ["r1", "r2", "r3"]) {
      const base = await trainer.params().then((p) => p.step, (e) => (out.push(`${e}`), 0));
      const gradient = { w: new Float32Array([1, 2, 3]) };
      out.push(await said(trainer.submit({ id, base, gradient })));
    }
  } finally {
    await trainer.close();
  }
  return out;
}

Deno.test("store: a method of a binding that throws at once is answered as one that rejects (optimisticStep and dataParallel)", async () => {
  for (const method of METHODS) {
    const rejected = await outcomes(method, "reject");
    assert.deepEqual(await outcomes(method, "throw"), rejected, method);
  }
});
