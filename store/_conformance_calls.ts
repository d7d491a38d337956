/**
 * The calls of a {@linkcode TrainingStore} that the conformance kit's clauses make again and
 * again, each checked as it is made: a commit of nothing but some fields, a first checkpoint, a
 * submit of a new id, what `pending` lists, and a snapshot of what a reader sees.
 *
 * @module
 */
import type { StepCommit, TrainingStore } from "./training.ts";
import {
  answer,
  asHead,
  asInfos,
  asJournal,
  asRecord,
  bytesOf,
  checkpointOf,
  expect,
  expectSame,
} from "./_conformance_kit.ts";

type Store = TrainingStore;

/** A commit of nothing but `fields`: no outcomes, no lease. */
export const commitOf = (fields: Partial<StepCommit>): StepCommit => ({
  checkpoint: null,
  expected: null,
  step: 1,
  seq: 1,
  applied: [],
  refused: [],
  fresh: [],
  ...fields,
});

/** Commits a first checkpoint (step 1) on a new store; its version. */
export async function firstCommit(store: Store): Promise<string> {
  const did = "commit of a first checkpoint (step 1) on an empty store";
  const done = await answer(
    did,
    async () => store.commit(commitOf({ checkpoint: await checkpointOf(1) })),
  );
  expect(typeof done?.version === "string", did, "{ version: a string, lease: null }", done);
  return done!.version!;
}

/** Submits `id` (base, samples 1, `gradient`), throwing unless it was stored now. */
export async function submitNew(
  store: Store,
  id: string,
  base: number,
  gradient = bytesOf(base, 8),
): Promise<void> {
  const did = `submit(${JSON.stringify(id)}, base ${base}) of a new id`;
  expectSame(did, await answer(did, () => store.submit({ id, base, samples: 1 }, gradient)), null);
}

/** What `pending` lists, without the refs. */
export async function listed(store: Store, limit = Infinity): Promise<unknown> {
  const did = `pending(${limit})`;
  return asInfos(await answer(did, () => store.pending(limit)));
}

/** A snapshot of what a reader sees, to compare before and after a refused call. */
export async function seen(store: Store, ids: readonly string[]): Promise<unknown> {
  return {
    head: await answer("head()", () => store.head().then(asHead)),
    pending: await listed(store),
    requests: await answer(
      "request()",
      () => Promise.all(ids.map((id) => store.request(id).then(asRecord))),
    ),
    journal: await answer("journal(0, Infinity)", () => store.journal(0, Infinity).then(asJournal)),
  };
}
