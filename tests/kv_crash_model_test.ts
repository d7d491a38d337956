/**
 * The Deno KV store against the in-process store as a model (tests/kv_model.ts), its process
 * crashing before a drawn write of a call, or once it landed (as a client whose request timed out
 * after its write went through): what a reader sees then is what the model saw before the call
 * or after it, never a part of it (a torn checkpoint, a contribution stored without its record,
 * an outcome without its step, the lease), and the call sent again by the next process answers
 * as the model does (no update applied twice). At the end a sweep leaves nothing of the crashed
 * writes: no version but the current one, no chunks but its own, no gradient but those of the
 * contributions pending.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { kvCheckpointStore, memoryCheckpointStore } from "../kv.ts";
import type { Lease } from "../store/training.ts";
import { Crash, crashingAfterKv, crashingKv, PREFIX } from "./kv_fakes.ts";
import { apply, type Op, opArb, seen, type Side } from "./kv_model.ts";

/** A call made (with its step), or the caller forgetting its leases (a crash). */
type Done = [Op, number] | "forget";

/** The model after `done`, replayed on a new in-process store. */
async function replay(done: readonly Done[]): Promise<Side> {
  const model: Side = { store: memoryCheckpointStore(), leases: new Map() };
  for (const d of done) {
    if (d === "forget") model.leases.clear();
    else await apply(model, d[0], d[1]);
  }
  return model;
}

/** Who holds the lease in the model after `done` (asked of copies: asking takes it if free). */
async function holder(done: readonly Done[]): Promise<string | null> {
  if ((await (await replay(done)).store.acquire("z", 60_000, false)) !== null) return null;
  return (await (await replay(done)).store.acquire("p", 60_000, false)) === null ? "q" : "p";
}

/** Throws unless the keys under the prefix are those of the current version and what is pending. */
async function assertNoGarbage(kv: Deno.Kv): Promise<void> {
  const head = (await kv.get<{ id: string; chunks: number }>([...PREFIX, "head"])).value;
  const blobs = new Set<string>();
  for await (
    const e of kv.list<{ blob: string; chunks: number }>({ prefix: [...PREFIX, "pending"] })
  ) {
    if (e.value.chunks > 0) blobs.add(e.value.blob);
  }
  for await (const { key } of kv.list({ prefix: PREFIX })) {
    const [kind, id] = key.slice(PREFIX.length);
    const name = JSON.stringify(key);
    if (kind === "versions" || kind === "chunks") {
      assert.ok(head !== null && head.chunks > 0 && id === head.id, `garbage: ${name}`);
    } else if (kind === "blobs" || kind === "grads") {
      assert.ok(blobs.has(id as string), `garbage: ${name}`);
    }
  }
}

Deno.test("kv store: a process crashing before or after any write of a fold's calls leaves what the model has before the call or after it, the call sent again answers as the model, and a sweep removes the rest", async () => {
  // (Not the waiting note: a crash between a release's removal of it and of the lease leaves it
  // removed, as a note is advisory.)
  const calls = opArb.filter((op) => op.kind !== "waiting");
  const crash = fc.option(fc.record({ at: fc.nat(8), after: fc.boolean() }), { freq: 3 });
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(calls, crash), { minLength: 1, maxLength: 16 }),
      fc.constantFrom(128, 8192),
      async (ops, chunkBytes) => {
        const kv = await Deno.openKv(":memory:");
        try {
          const options = { chunkBytes, staleAfterMs: 0 }; // a crashed write is garbage at once
          const done: Done[] = [];
          let model = await replay(done);
          const leases = new Map<string, Lease>();
          const reader = kvCheckpointStore(kv, PREFIX, options);
          const check = async (real: Side, op: Op, step: number, what: string) => {
            assert.deepEqual(await apply(real, op, step), await apply(model, op, step), what);
            assert.deepEqual(await seen(reader), await seen(model.store), `after ${what}`);
            done.push([op, step]);
          };
          for (const [i, [op, crashAt]] of ops.entries()) {
            const what = `op ${i} ${JSON.stringify(op)}`;
            if (crashAt === null) {
              await check({ store: reader, leases }, op, i + 1, what);
              continue;
            }
            const { at, after } = crashAt;
            const view = after ? crashingAfterKv(kv, at) : crashingKv(kv, at);
            const real: Side = { store: kvCheckpointStore(view, PREFIX, options), leases };
            const before = await seen(model.store);
            const expected = await apply(model, op, i + 1);
            try {
              assert.deepEqual(await apply(real, op, i + 1), expected, what);
              assert.deepEqual(await seen(reader), await seen(model.store), `after ${what}`);
              done.push([op, i + 1]);
              continue;
            } catch (error) {
              if (!(error instanceof Crash)) throw error;
            }
            // Crashed before a write, the call's own (the one that makes it seen) did not land,
            // whatever it wrote before it (chunks, a note); after, it may have.
            const now = await seen(reader);
            const lease = (await kv.get<{ token: string }>([...PREFIX, "lease"])).value;
            const landed = after && isDeepStrictEqual(now, await seen(model.store)) &&
              (lease?.token ?? null) === await holder([...done, [op, i + 1]]);
            if (landed) done.push([op, i + 1]);
            else {
              assert.deepEqual(now, before, `${what} crashed`);
              assert.equal(lease?.token ?? null, await holder(done), `${what} crashed: its lease`);
            }
            done.push("forget"); // the process is gone, and what it held with it
            leases.clear();
            model = await replay(done);
            // Sent again by a new process (a client whose request timed out).
            await check({ store: reader, leases }, op, i + 1, `${what} sent again`);
          }
          await reader.sweep();
          await assertNoGarbage(kv);
        } finally {
          kv.close();
        }
      },
    ),
    { numRuns: 80 },
  );
});
