/**
 * The calls of the Deno KV store's model tests: random sequences of a fold's calls (submits of
 * ids sent again, pending, gradient, commits applying or refusing what was listed with a
 * checkpoint or without, commits of fresh ids, the lease taken, renewed, handed on and released,
 * the waiting note, a sweep), made on a store and on the in-process store as the model, and what
 * a reader sees of either.
 *
 * @module
 */
import fc from "fast-check";
import { asInfos, asJournal, asRecord, checkpointOf } from "../store/_conformance_kit.ts";
import { INLINE_BYTES } from "../kv/format.ts";
import type { Lease, PendingContribution, TrainingStore } from "../store/training.ts";
import { randomBytes } from "./kv_fakes.ts";

export const IDS = ["a", "b", "c", "d€", "e\u0000"];
export const TOKENS = ["p", "q"];

export type Op =
  | { kind: "submit"; id: number; base: number; samples: number; large: boolean }
  | {
    kind: "fold";
    limit: number;
    apply: number;
    checkpoint: boolean;
    fresh: number | null;
    handOn: boolean;
  }
  | { kind: "acquire"; token: number; queue: boolean }
  | { kind: "release"; token: number }
  | { kind: "waiting" }
  | { kind: "sweep" }
  | { kind: "step"; id: number };

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("submit" as const),
    id: fc.nat(IDS.length - 1),
    base: fc.nat(3),
    samples: fc.integer({ min: 1, max: 3 }),
    large: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("fold" as const),
    limit: fc.integer({ min: 1, max: 4 }),
    apply: fc.nat(4),
    checkpoint: fc.boolean(),
    fresh: fc.option(fc.nat(IDS.length - 1)),
    handOn: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("acquire" as const),
    token: fc.nat(TOKENS.length - 1),
    queue: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("release" as const), token: fc.nat(TOKENS.length - 1) }),
  fc.record({ kind: fc.constant("step" as const), id: fc.nat(IDS.length - 1) }),
  fc.record({ kind: fc.constant("waiting" as const) }),
  fc.record({ kind: fc.constant("sweep" as const) }),
);

/** One store and what its caller holds: the leases it was given, by token. */
export interface Side {
  readonly store: TrainingStore;
  readonly leases: Map<string, Lease>;
}

/** Makes `op` on `side`; its answer, as it compares with the model's. */
export async function apply(side: Side, op: Op, step: number): Promise<unknown> {
  const { store, leases } = side;
  switch (op.kind) {
    case "submit": {
      const bytes = randomBytes(op.large ? INLINE_BYTES + 100 : 40, op.id * 7 + op.base);
      const info = { id: IDS[op.id], base: op.base, samples: op.samples };
      return asRecord(await store.submit(info, bytes));
    }
    case "acquire": {
      const token = TOKENS[op.token];
      const lease = await store.acquire(token, 60_000, op.queue);
      if (lease !== null) leases.set(token, lease);
      return lease?.token ?? null;
    }
    case "release": {
      const lease = leases.get(TOKENS[op.token]);
      leases.delete(TOKENS[op.token]);
      await store.release(lease ?? TOKENS[op.token]);
      return null;
    }
    case "waiting": {
      const [lease] = [...leases.values()];
      return lease === undefined ? null : await store.waiting(lease);
    }
    case "sweep": // (the model has nothing to sweep: a reader sees no change)
      if ("sweep" in store) await (store as { sweep(): Promise<number> }).sweep();
      return null;
    case "step":
      return await commit(side, [], [], IDS[op.id], true, false, step);
    case "fold": {
      const listed = await store.pending(op.limit);
      const gradients = await Promise.all(listed.map((p) => store.gradient(p)));
      const applied = listed.slice(0, op.apply);
      const refused = listed.slice(op.apply).map((p) => ({ id: p.id, reason: "r", ref: p.ref }));
      const fresh = op.fresh === null ? null : IDS[op.fresh];
      const done = await commit(side, applied, refused, fresh, op.checkpoint, op.handOn, step);
      return { listed: asInfos(listed), gradients: gradients.map((g) => [...g]), done };
    }
  }
}

/** A commit on the current version, under the lease that side holds (renewed), if any. */
async function commit(
  side: Side,
  applied: PendingContribution[],
  refused: { id: string; reason: string; ref?: unknown }[],
  fresh: string | null,
  checkpoint: boolean,
  handOn: boolean,
  step: number,
): Promise<unknown> {
  const { store, leases } = side;
  const head = await store.head();
  const [token, lease] = [...leases][0] ?? [];
  const next = handOn ? TOKENS.find((t) => t !== token)! : token!;
  const own = fresh === null ? [] : [{ id: fresh, base: 0, samples: 1 }];
  const result = await store.commit({
    checkpoint: checkpoint || head === null ? await checkpointOf(step) : null,
    expected: head?.version ?? null,
    step,
    seq: step,
    ...(lease === undefined ? {} : { lease, next: { token: next, ms: 60_000 } }),
    applied: [...applied, ...own],
    refused,
    fresh: own.map((o) => o.id),
  });
  if (result === null) return null;
  if (lease !== undefined) {
    leases.delete(token!);
    if (result.lease !== null) leases.set(token!, result.lease);
  }
  return { lease: result.lease?.token ?? null };
}

/** What a reader sees of a store. */
export async function seen(store: TrainingStore): Promise<unknown> {
  return {
    step: (await store.head())?.step ?? null,
    pending: asInfos(await store.pending(Infinity)),
    requests: await Promise.all(IDS.map(async (id) => asRecord(await store.request(id)))),
    journal: asJournal(await store.journal(0, Infinity)),
  };
}
