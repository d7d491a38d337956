/**
 * The Deno KV store against the in-process store as a model (tests/kv_model.ts), its process
 * crashing before a drawn write of a call: what a reader sees then is what the model saw before
 * the call, never a part of it (a torn checkpoint, a contribution stored without its record, an
 * outcome without its step, the lease), and the next process goes on from there. At the end a
 * sweep leaves nothing of the crashed writes: no version but the current one, no chunks but its
 * own, no gradient but those of the contributions pending.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { kvCheckpointStore, memoryCheckpointStore } from "../kv.ts";
import type { Lease } from "../store/training.ts";
import { Crash, crashingKv, PREFIX } from "./kv_fakes.ts";
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

Deno.test("kv store: a process crashing at any write of a fold's calls leaves what the model has before the call or after it, and a sweep removes the rest", async () => {
  await fc.assert(
    fc.asyncProperty(
      // (Not the waiting note: a crash between a release's removal of it and of the lease
      // leaves it removed, as a note is advisory.)
      fc.array(
        fc.tuple(opArb.filter((op) => op.kind !== "waiting"), fc.option(fc.nat(8), { freq: 3 })),
        {
          minLength: 1,
          maxLength: 16,
        },
      ),
      fc.constantFrom(128, 8192),
      async (ops, chunkBytes) => {
        const kv = await Deno.openKv(":memory:");
        try {
          const options = { chunkBytes, staleAfterMs: 0 }; // a crashed write is garbage at once
          const done: Done[] = [];
          let model = await replay(done);
          const leases = new Map<string, Lease>();
          const reader = kvCheckpointStore(kv, PREFIX, options);
          for (const [i, [op, crashAt]] of ops.entries()) {
            const view = crashAt === null ? kv : crashingKv(kv, crashAt);
            const real: Side = { store: kvCheckpointStore(view, PREFIX, options), leases };
            const before = await seen(model.store);
            const expected = await apply(model, op, i + 1);
            try {
              const got = await apply(real, op, i + 1);
              assert.deepEqual(got, expected, `op ${i}: ${JSON.stringify(op)}`);
              assert.deepEqual(await seen(reader), await seen(model.store), `after op ${i}`);
              done.push([op, i + 1]);
            } catch (error) {
              if (!(error instanceof Crash)) throw error;
              // The crash came before a write: the call's own (the one that makes it seen) did
              // not land, whatever it wrote before (chunks, a note).
              assert.deepEqual(
                await seen(reader),
                before,
                `op ${i} crashed: ${JSON.stringify(op)}`,
              );
              const lease = await kv.get<{ token: string }>([...PREFIX, "lease"]);
              assert.equal(lease.value?.token ?? null, await holder(done), `op ${i}'s lease`);
              done.push("forget"); // the process is gone, and what it held with it
              leases.clear();
              model = await replay(done);
            }
          }
          await reader.sweep();
          await assertNoGarbage(kv);
        } finally {
          kv.close();
        }
      },
    ),
    { numRuns: 60 },
  );
});
