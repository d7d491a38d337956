/**
 * Concurrency of the Deno KV store under fast-check's scheduler: several clients (processes, each
 * with its own view of one real Deno KV file) whose every database call reaches the database, and
 * answers, in an order the scheduler draws; writes that fail (busy, or a database failure,
 * before or after the write lands); processes that crash at a drawn call; a fake clock that moves
 * only when nothing else can run; a reader, and a sweeper (as a cron job may run one), between
 * their writes. Then a restarted process sends every request again. Checked: an
 * acknowledged update is in the journal exactly once, at the step its answer named, others at
 * most once; every checkpoint read is whole and is the sequential replay of the journal up to
 * its step, bit for bit; every call settles; every error says what happened.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  loadState,
  type OptimizerState,
  radam,
  readParams,
  saveState,
  step as stepOnce,
} from "../mod.ts";
import {
  CheckpointConflictError,
  ContributionRefusedError,
  type DuplicateStep,
  type JournalRecord,
  kvCheckpointStore,
  type KvCheckpointStoreOptions,
  optimisticStep,
  type OptimisticStepResult,
} from "../kv.ts";
import {
  DB_FAILURE,
  drain,
  FakeClock,
  InFlight,
  type Outcome,
  planArb,
  runsOf,
  scheduledKv,
  watch,
  withScheduledKv,
} from "./kv_scheduled.ts";

const N = 4;
const optimizer = radam({ lr: 0.05, backend: "js" });
const init = () => ({ w: new Float32Array(N) });

/** Request i's gradient at `params`: depends on them, so a step on a stale state would show. */
function gradientAt(i: number, params: Readonly<Record<string, Float32Array>>): Float32Array {
  return params.w.map((v, j) => v - Math.sin(i * 1.7 + j));
}

const idOf = (client: number, k: number) => `r${client * 10 + k}`;
const numberOf = (id: string) => Number(id.slice(1));

/** The journal replayed in one process, optimistic steps: the checkpoint after each step. */
async function replay(journal: readonly JournalRecord[]): Promise<Uint8Array[]> {
  let state: OptimizerState = await optimizer.init(init());
  const bytes: Uint8Array[] = [];
  for (const record of journal) {
    assert.equal(record.entries.length, 1, "an optimistic step applies one update");
    const e = record.entries[0];
    assert.equal(e.base, state.step, `${e.id}: computed on the state it was applied to`);
    state.grads.w.set(gradientAt(numberOf(e.id), await readParams(state)).map((g) => g));
    state = stepOnce(state);
    assert.equal(state.step, record.step);
    bytes.push(await saveState(state));
  }
  return bytes;
}

/** Whether an error of a step says what happened (its kind, or whether it may be applied). */
function clear(error: unknown): boolean {
  if (error instanceof CheckpointConflictError || error instanceof ContributionRefusedError) {
    return true;
  }
  if (!(error instanceof Error) || error.message === DB_FAILURE) return false;
  return /may (yet be|have been) applied|nothing was saved|not applied/.test(error.message);
}

let runs = 0;

Deno.test("scheduled: concurrent optimistic steps with failing writes and crashes lose no acknowledged update, apply none twice, and leave the journal's replay", async () => {
  await withScheduledKv(async (kv) => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(
          fc.record({
            plan: planArb(40),
            steps: fc.integer({ min: 1, max: 3 }),
            together: fc.boolean(),
            serialize: fc.boolean(),
          }),
          {
            minLength: 2,
            maxLength: 4,
          },
        ),
        fc.constantFrom(48, 4096),
        fc.nat(3),
        fc.constantFrom(600_000, 30, 0), // staleAfterMs: a sweep may remove a write in progress
        fc.constantFrom(0, 30),
        async (s, clients, chunkBytes, reads, staleAfterMs, sweeps) => {
          const prefix = ["sched", ++runs];
          const options: KvCheckpointStoreOptions = { chunkBytes, staleAfterMs };
          const inflight = new InFlight();
          const clock = new FakeClock();
          clock.install(inflight);
          try {
            const step = (view: Deno.Kv, id: string, serialize = true) =>
              optimisticStep(kvCheckpointStore(view, prefix, { ...options }), {
                optimizer,
                init,
                tensors: { w: N },
                gradient: (state) => void state.grads.w.set(gradientAt(numberOf(id), state.params)),
                id,
                timeoutMs: 5000,
                serialize,
              });
            type Answer = OptimisticStepResult<void> | DuplicateStep;
            const answers = new Map<string, { outcome: Outcome<Answer> }>();
            const live: Promise<unknown>[] = [];
            const doomed: { crash(): void }[] = [];
            clients.forEach(({ plan, steps, together, serialize }, c) => {
              const view = scheduledKv(kv, s, inflight, `client ${c}`, plan);
              const one = async (k: number) => {
                const p = step(view, idOf(c, k), serialize);
                answers.set(idOf(c, k), watch(p));
                await p.catch(() => {});
              };
              const run = (async () => {
                // Its steps one after the other, or at once (taking turns, unless not serialized).
                if (together) await Promise.all(Array.from({ length: steps }, (_, k) => one(k)));
                else for (let k = 0; k < steps; k++) await one(k);
              })();
              if (plan.crashAt === undefined) live.push(run);
              else doomed.push(view);
            });
            // A reader: each checkpoint it loads must be whole.
            const seen: Uint8Array[] = [];
            const reader = scheduledKv(kv, s, inflight, "reader");
            const reading = watch((async () => {
              for (let r = 0; r < reads; r++) {
                const stored = await kvCheckpointStore(reader, prefix, options).load();
                if (stored !== null) seen.push(stored.bytes);
              }
            })());
            const liveDone = watch(Promise.all(live));
            // A sweeper (as a cron job may run one) between the others' writes, while they run.
            const sweeper = scheduledKv(kv, s, inflight, "sweeper");
            const sweeping = watch((async () => {
              // (Not waiting on the clock, which moves only when all else waits: a bounded count.)
              for (let k = 0; k < sweeps && !liveDone.outcome.settled; k++) {
                await kvCheckpointStore(sweeper, prefix, options).sweep();
              }
            })());
            await drain(
              s,
              clock,
              inflight,
              () => liveDone.outcome.settled && reading.outcome.settled && sweeping.outcome.settled,
              600_000,
            );
            for (const view of doomed) view.crash(); // killed by now, where it was not yet
            if (liveDone.outcome.settled && !liveDone.outcome.ok) throw liveDone.outcome.error;
            if (reading.outcome.settled && !reading.outcome.ok) throw reading.outcome.error;
            if (sweeping.outcome.settled && !sweeping.outcome.ok) throw sweeping.outcome.error;
            for (const [id, w] of answers) {
              const o = w.outcome;
              if (o.settled && !o.ok) assert.ok(clear(o.error), `${id}: ${o.error}`);
            }
            // The restarted process sends every request again.
            const again = scheduledKv(kv, s, inflight, "restarted");
            const resent = new Map<string, Answer>();
            const restart = watch((async () => {
              for (const id of answers.keys()) resent.set(id, await step(again, id));
            })());
            await drain(s, clock, inflight, () => restart.outcome.settled, 1_200_000);
            if (restart.outcome.settled && !restart.outcome.ok) throw restart.outcome.error;
            const store = kvCheckpointStore(kv, prefix, options);
            const journal = await store.journal(0, 1000);
            const where = new Map<string, number>();
            for (const record of journal) {
              for (const e of record.entries) {
                assert.ok(!where.has(e.id), `${e.id} applied once`);
                where.set(e.id, record.step);
              }
            }
            for (const [id, w] of answers) {
              const o = w.outcome;
              assert.equal(
                where.get(id),
                resent.get(id)!.step,
                `${id}: applied where the answer says`,
              );
              if (o.settled && o.ok) {
                assert.equal(
                  where.get(id),
                  o.value.step,
                  `${id}: acknowledged at step ${o.value.step}`,
                );
                assert.equal(resent.get(id)!.duplicate, true, `${id}: sent again, a duplicate`);
              }
            }
            assert.equal(where.size, answers.size, "every update applied once");
            const steps = await replay(journal);
            const stored = (await store.load())!;
            assert.deepEqual(stored.bytes, steps.at(-1), "the checkpoint is the journal's replay");
            for (const bytes of seen) {
              const state = await loadState(bytes);
              assert.deepEqual(bytes, steps[state.step - 1], `a read of step ${state.step}, whole`);
            }
          } finally {
            clock.uninstall();
          }
        },
      ),
      { numRuns: runsOf(10) },
    );
  });
});
