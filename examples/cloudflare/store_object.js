// A Durable Object that is a training store of @optim/radam (the contracts
// VersionedCheckpointStore and TrainingStore of "@optim/radam/store"): one object holds one
// model's checkpoint, request records, stored contributions, journal and lease in its storage
// (records.js says where), and each method of the contract is one RPC method here. A Durable
// Object runs its methods one at a time and delivers no other call while one awaits its own
// storage (its input gate), and each method that writes does so in one storage transaction:
// every check-and-set and commit is atomic, and a reader sees a checkpoint whole. So the store's
// logic lives here, next to its data, and a call is one round trip from a Worker; client.js
// makes the object a TrainingStore for `dataParallel` and `optimisticStep`.
//
// Time is the object's own clock (Date.now, performance.now): it writes every lease and
// waiting note and is the only process that reads them. Override wallNow/monoNow to move it
// (tests/node/workerd_store_app does, to check what expires).
import { DurableObject } from "cloudflare:workers";
import { checkpointParams } from "@optim/radam/store";
import {
  checkListing,
  checkMeta,
  checkSave,
  chunkKeys,
  compareUtf8,
  deleteAll,
  getChunks,
  pad,
  putChunks,
  stepOf,
} from "./records.js";

/** How long request ids and journal records are kept by default, in ms (the library's 7 days). */
const REMEMBER_MS = 604_800_000;
/** How far past its recorded end a lease is over however recently it was first read. */
const LONG_DEAD_MS = 60_000;
/** How long a waiting note not renewed still asks for the lease, in ms. */
const ASKED_WITHIN_MS = 1000;

export class TrainingStoreObject extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.storage = ctx.storage;
    /** How long request ids and journal records are kept (env REMEMBER_MS, in ms). */
    this.rememberMs = Number(env?.REMEMBER_MS ?? REMEMBER_MS);
    /** Which lease record each token first read when (a lease is over after a term of that). */
    this.sighting = { ref: null, first: new Map() };
    /** Who waits for the lease: since when, and when it last asked (lost on eviction: safe). */
    this.wants = new Map();
  }

  /** The wall clock, in ms since the epoch. */
  wallNow() {
    return Date.now();
  }

  /** A monotonic clock, in ms. */
  monoNow() {
    return performance.now();
  }

  // --- VersionedCheckpointStore ---

  async load() {
    const head = await this.storage.get("head");
    if (head === undefined) return null;
    const bytes = await getChunks(this.storage, "ckpt:", head.chunks, head.length);
    return {
      bytes,
      version: String(head.version),
      ...(head.meta === undefined ? {} : { meta: head.meta }),
    };
  }

  save(bytes, expected, meta) {
    checkSave(bytes, expected);
    checkMeta(meta);
    return this.storage.transaction(async (txn) => {
      const head = await txn.get("head");
      if ((head === undefined ? null : String(head.version)) !== expected) return null;
      return await this.#write(txn, head, bytes, stepOf(bytes), meta);
    });
  }

  /** Makes `bytes` the current checkpoint (in `txn`, after `head`); its version. */
  async #write(txn, head, bytes, step, meta) {
    const counters = await this.#counters(txn);
    const version = ++counters.versions;
    const chunks = await putChunks(txn, "ckpt:", bytes);
    const stale = chunkKeys("ckpt:", head?.chunks ?? 0).slice(chunks);
    await deleteAll(txn, stale);
    await txn.put("head", {
      version,
      step,
      length: bytes.length,
      chunks,
      ...(meta === undefined ? {} : { meta }),
    });
    await txn.put("counters", counters);
    return String(version);
  }

  async #counters(txn) {
    return (await txn.get("counters")) ?? { versions: 0, leases: 0, stored: 0 };
  }

  // --- TrainingStore ---

  async head() {
    const head = await this.storage.get("head");
    return head === undefined ? null : { version: String(head.version), step: head.step };
  }

  async loadParams() {
    const loaded = await this.load();
    // (The library's reader: a CheckpointError for damaged bytes, which the library passes on.)
    return loaded && { ...checkpointParams(loaded.bytes), version: loaded.version };
  }

  /** What is known of request `id` now, or null. */
  async #known(storage, id) {
    const r = await storage.get("req:" + id);
    return r !== undefined && r.until > this.wallNow() ? r.record : null;
  }

  request(id) {
    return this.#known(this.storage, id);
  }

  submit(info, gradient) {
    return this.storage.transaction(async (txn) => {
      const record = await this.#known(txn, info.id);
      if (record !== null) return record;
      const counters = await this.#counters(txn);
      const n = ++counters.stored;
      const chunks = await putChunks(txn, `grad:${pad(n)}:`, gradient);
      const { id, base, samples } = info;
      await txn.put(`pend:${pad(n)}`, { id, base, samples, n, length: gradient.length, chunks });
      await txn.put(`req:${id}`, {
        record: { state: "pending" },
        until: this.wallNow() + this.rememberMs,
      });
      await txn.put("counters", counters);
      return null;
    });
  }

  async pending(limit) {
    checkListing("pending", limit);
    const stored = [...(await this.storage.list({ prefix: "pend:" })).values()];
    return stored
      .sort((a, b) => a.base - b.base || compareUtf8(a.id, b.id) || a.n - b.n)
      .slice(0, limit)
      .map(({ id, base, samples, n, length, chunks }) => ({
        id,
        base,
        samples,
        ref: { n, length, chunks },
      }));
  }

  gradient(contribution) {
    const { n, length, chunks } = contribution.ref;
    return getChunks(this.storage, `grad:${pad(n)}:`, chunks, length);
  }

  commit(c) {
    if (c.checkpoint !== null) checkMeta(c.meta);
    return this.storage.transaction(async (txn) => {
      const head = await txn.get("head");
      if ((head === undefined ? null : String(head.version)) !== c.expected) return null;
      const lease = await txn.get("lease");
      if (c.lease && lease?.ref !== c.lease.ref) return null;
      for (const id of c.fresh) if (await this.#known(txn, id) !== null) return null;
      const version = c.checkpoint === null
        ? (head === undefined ? null : String(head.version))
        : await this.#write(txn, head, c.checkpoint, c.step, c.meta);
      await this.#settle(txn, c);
      return { version, lease: c.lease ? await this.#passOn(txn, c) : null };
    });
  }

  /** Records the outcome of every request `c` settles, removes what was stored, journals it. */
  async #settle(txn, c) {
    const until = this.wallNow() + this.rememberMs;
    const settled = [
      ...c.applied.map((e) => [e, { state: "applied", step: c.step }]),
      ...c.refused.map((e) => [e, { state: "refused", step: c.step, reason: e.reason }]),
    ];
    for (const [{ id, ref }, record] of settled) {
      await txn.put(`req:${id}`, { record, until });
      if (ref === undefined) continue;
      await deleteAll(txn, [`pend:${pad(ref.n)}`, ...chunkKeys(`grad:${pad(ref.n)}:`, ref.chunks)]);
    }
    if (c.applied.length === 0) return;
    const entries = c.applied.map(({ id, base, samples }) => ({ id, base, samples }));
    await txn.put(`journal:${pad(c.seq)}`, {
      record: { step: c.step, seq: c.seq, entries },
      until,
    });
  }

  /** The lease after commit `c`: handed on or renewed (`c.next`) or released; the caller's. */
  async #passOn(txn, c) {
    if (c.next === undefined) {
      await txn.delete("lease");
      return null;
    }
    const lease = await this.#newLease(txn, c.next.token, c.next.ms);
    return c.next.token === c.lease.token ? lease : null;
  }

  async #newLease(txn, token, ms) {
    const counters = await this.#counters(txn);
    const lease = { token, expires: this.wallNow() + ms, ms, ref: ++counters.leases };
    await txn.put("lease", lease);
    await txn.put("counters", counters);
    return { token, expires: lease.expires, ref: lease.ref };
  }

  /** Whether `lease` is over as `token` sees it: unchanged for its term since it first read it. */
  #over(lease, token) {
    const now = this.monoNow();
    if (this.sighting.ref !== lease.ref) this.sighting = { ref: lease.ref, first: new Map() };
    const first = this.sighting.first.get(token) ?? now;
    this.sighting.first.set(token, first);
    return now - first >= lease.ms || this.wallNow() - lease.expires > LONG_DEAD_MS;
  }

  acquire(token, ms, queue = true) {
    return this.storage.transaction(async (txn) => {
      const lease = await txn.get("lease");
      if (lease !== undefined && lease.token !== token && !this.#over(lease, token)) {
        const now = this.wallNow(), note = this.wants.get(token);
        // Noted again at most four times a second, as the library's stores do.
        if (!queue) this.wants.delete(token);
        else if (note === undefined || now - note.at >= 250) {
          this.wants.set(token, { since: note?.since ?? now, at: now });
        }
        return null;
      }
      this.wants.delete(token);
      return await this.#newLease(txn, token, ms);
    });
  }

  release(lease) {
    return this.storage.transaction(async (txn) => {
      const held = await txn.get("lease");
      if (typeof lease === "string") {
        this.wants.delete(lease);
        if (held?.token === lease) await txn.delete("lease");
      } else if (held !== undefined && held.ref === lease.ref) await txn.delete("lease");
    });
  }

  waiting(lease) {
    const now = this.wallNow();
    let best = null;
    for (const [token, note] of this.wants) { // in the order they first asked
      if (token === lease.token || now - note.at > ASKED_WITHIN_MS) continue;
      if (best === null || note.since < best[1].since) best = [token, note];
    }
    return best && best[0];
  }

  async journal(from, limit) {
    checkListing("journal", limit, from);
    if (limit === 0 || from === Infinity) return [];
    const start = `journal:${pad(Math.max(0, Math.ceil(from)))}`;
    const now = this.wallNow(), out = [];
    for (
      const { record, until } of (await this.storage.list({ prefix: "journal:", start })).values()
    ) {
      if (until > now) out.push(record);
      if (out.length >= limit) break;
    }
    return out;
  }
}
