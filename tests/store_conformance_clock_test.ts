/**
 * The conformance kit's option `now`: a binding whose store stamps a lease's end with a clock of
 * its own (a database server's `now()`) is checked on that clock, every clause, what expires
 * included; without the option, its leases' ends are reported as off by the calling process's
 * clock.
 */
import assert from "node:assert/strict";
import {
  type Lease,
  memoryCheckpointStore,
  StoreConformanceError,
  type TrainingStore,
  verifyTrainingStore,
} from "../store.ts";
import { withClock } from "../examples/_clock.ts";

/** How far the server's clock is ahead of this process's, in ms. */
const AHEAD = 300_000;

/**
 * A store whose leases end by a server's clock, AHEAD of this process's (the in-process store,
 * its leases' ends moved on).
 */
function onServerClock(): TrainingStore {
  const store = memoryCheckpointStore({ rememberMs: 60_000 });
  const shift = (lease: Lease | null) => lease && { ...lease, expires: lease.expires + AHEAD };
  return {
    ...store,
    acquire: async (token, ms, queue) => shift(await store.acquire(token, ms, queue)),
    commit: async (commit) => {
      const result = await store.commit(commit);
      return result && { ...result, lease: shift(result.lease) };
    },
  };
}

Deno.test("conformance: a store whose leases end by its server's clock keeps every clause, checked on that clock (option now)", async () => {
  // There was no option now: the kit read Date.now, and a store that keeps its own clock could
  // be checked only with its clock moved to the caller's.
  const report = await withClock((advance) =>
    verifyTrainingStore(onServerClock, {
      advance,
      rememberMs: 60_000,
      now: () => Promise.resolve(Date.now() + AHEAD), // a query of the server's time, say
    })
  );
  assert.deepEqual(report.skipped, [
    { clause: "store.maxFold", reason: "the store has neither maxFold nor maxFresh" },
  ]);
  for (const clause of ["lease.again", "commit.lease", "lease.expiry", "lease.long-dead"]) {
    assert.ok(report.passed.includes(clause), clause);
  }
  // A clock that answers at once is taken too.
  await verifyTrainingStore(onServerClock, { now: () => Date.now() + AHEAD });
});

Deno.test("conformance: without now, the leases' ends of a store on its server's clock are reported, naming the option", async () => {
  const error = await verifyTrainingStore(onServerClock).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError);
  const lease = error.failures.find((f) => f.clause === "lease.exclusive");
  assert.ok(lease, "lease.exclusive reported");
  assert.match(lease.expected, /Date\.now/);
  assert.match(lease.expected, /option now/);
  assert.ok(error.failures.some((f) => f.clause === "commit.lease"));
  // With now, the same store on this process's clock is reported as off by the server's.
  const off = await verifyTrainingStore(() => memoryCheckpointStore(), {
    now: () => Date.now() + AHEAD,
  }).catch((e) => e);
  assert.ok(off instanceof StoreConformanceError);
  const clauses = off.failures.map((f) => f.clause);
  assert.ok(clauses.includes("lease.exclusive"));
  assert.match(off.failures[0].expected, /the stores' clock \(as the option now reads it/);
});

Deno.test("conformance: an option now that is not a function is refused at once; one that gives no number fails the lease's clauses, saying so", async () => {
  const make = () => memoryCheckpointStore();
  await assert.rejects(
    () => verifyTrainingStore(make, { now: 5 as never }),
    (e) => e instanceof TypeError && /Option now must be a function/.test(e.message),
  );
  const error = await verifyTrainingStore(make, { now: () => "soon" as never }).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError);
  const lease = error.failures.find((f) => f.clause === "lease.exclusive");
  assert.match(lease?.got ?? "", /Option now must give a number of ms since the epoch, got "soon"/);
});
