/**
 * The Deno KV store against the in-process store as a model (tests/kv_model.ts): each call made
 * on both, on a database that answers "database is locked" before and after its writes (a write
 * done, the caller told otherwise). Every answer, and what a reader then sees (the head's step,
 * the pending contributions, each id's record, the journal), is the model's: no write taken
 * twice, none lost. The calls are made by two processes in turn.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { kvCheckpointStore, memoryCheckpointStore } from "../kv.ts";
import type { Lease } from "../store/training.ts";
import { busyKv, PREFIX } from "./kv_fakes.ts";
import { apply, opArb, seen, type Side } from "./kv_model.ts";

Deno.test("kv store: a fold's calls on a database answering busy before and after its writes answer as the in-process store does", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(opArb, fc.nat(1)), { minLength: 1, maxLength: 20 }),
      fc.nat(),
      fc.constantFrom(128, 8192),
      async (ops, seed, chunkBytes) => {
        const kv = await Deno.openKv(":memory:");
        try {
          const model: Side = { store: memoryCheckpointStore(), leases: new Map() };
          // Two processes (store objects of their own) on the database: the caller's leases go
          // from one to the other.
          const leases = new Map<string, Lease>();
          const real = [1, 2].map((n): Side => ({
            store: kvCheckpointStore(busyKv(kv, 0.3, seed + n), PREFIX, { chunkBytes }),
            leases,
          }));
          for (const [i, [op, p]] of ops.entries()) {
            const expected = await apply(model, op, i + 1);
            const got = await apply(real[p], op, i + 1);
            assert.deepEqual(got, expected, `op ${i}: ${JSON.stringify(op)} by process ${p}`);
            assert.deepEqual(await seen(real[p].store), await seen(model.store), `after op ${i}`);
          }
        } finally {
          kv.close();
        }
      },
    ),
    { numRuns: 30 },
  );
});
