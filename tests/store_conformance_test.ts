/**
 * The store conformance kit (store/conformance.ts): the library's own stores keep every
 * clause, and stores that each break one clause are reported, naming it.
 */
import assert from "node:assert/strict";
import {
  type ConformanceOptions,
  type Lease,
  memoryCheckpointStore,
  type PendingContribution,
  type RequestRecord,
  type StepCommit,
  StoreConformanceError,
  type StoredCheckpoint,
  type TrainingStore,
  verifyCheckpointStore,
  verifyTrainingStore,
  type VersionedCheckpointStore,
} from "../store.ts";
import { kvCheckpointStore } from "../kv.ts";
import { withClock } from "../examples/_clock.ts";

/** The ids of the clauses `verify` reports broken (none: it resolved). */
async function broken(
  make: () => TrainingStore,
  options: ConformanceOptions = {},
): Promise<string[]> {
  try {
    await verifyTrainingStore(make, options);
    return [];
  } catch (error) {
    assert.ok(error instanceof StoreConformanceError, String(error));
    for (const f of error.failures) assert.match(error.message, new RegExp(`- ${f.clause} \\(`));
    return error.failures.map((f) => f.clause);
  }
}

Deno.test("conformance: the in-memory store keeps every clause, what expires included (on a clock the test moves)", async () => {
  const report = await withClock((advance) =>
    verifyTrainingStore(() => memoryCheckpointStore({ rememberMs: 60_000 }), {
      advance,
      rememberMs: 60_000,
    })
  );
  assert.deepEqual(report.skipped, [
    { clause: "store.maxFold", reason: "the store has neither maxFold nor maxFresh" },
  ]);
  assert.ok(report.passed.includes("lease.expiry") && report.passed.includes("request.expiry"));
  const checkpoint = await verifyCheckpointStore(() => memoryCheckpointStore({ latencyMs: 1 }));
  assert.deepEqual(checkpoint.skipped, []);
  assert.equal(checkpoint.passed.length, 10);
  assert.ok(checkpoint.passed.includes("save.large"));
  for (const clause of ["save.large", "commit.large", "submit.large"]) {
    assert.ok(report.passed.includes(clause), clause);
  }
});

Deno.test("conformance: the Deno KV store keeps every clause, maxFold and the lease's expiry included", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let n = 0;
    const report = await withClock((advance) =>
      verifyTrainingStore(() => kvCheckpointStore(kv, ["conformance", ++n]), { advance })
    );
    // Deno KV forgets a request by its own clock (expireIn): not one a test can move.
    assert.deepEqual(report.skipped, [
      { clause: "request.expiry", reason: "needs the options advance and rememberMs" },
    ]);
    assert.ok(report.passed.includes("store.maxFold") && report.passed.includes("lease.expiry"));
    // Values past Deno KV's 64 KiB, in chunks: the default 4 MiB, and 3 MiB and a byte.
    for (const clause of ["save.large", "commit.large", "submit.large"]) {
      assert.ok(report.passed.includes(clause), clause);
    }
    const odd = await verifyTrainingStore(() => kvCheckpointStore(kv, ["conformance", ++n]), {
      largestCheckpoint: 3 * 1024 * 1024 + 1,
      skip: report.passed.filter((c) => !c.endsWith(".large")),
    });
    assert.deepEqual(odd.passed, ["save.large", "commit.large", "submit.large"]);
  } finally {
    kv.close();
  }
});

/** A factory of in-memory stores with some methods replaced (each given the store they wrap). */
function wrapped(
  change: (inner: TrainingStore) => Partial<TrainingStore>,
  options: { rememberMs?: number } = {},
): () => TrainingStore {
  return () => {
    const inner = memoryCheckpointStore(options);
    return { ...inner, ...change(inner) };
  };
}

/** The contract's order of pending contributions, and UTF-16's (which differs from it). */
const byBaseThenUtf16 = (a: PendingContribution, b: PendingContribution) =>
  a.base - b.base || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Pending contributions in the order of `by`, after the store's own check of `limit`. */
async function pendingBy(
  inner: TrainingStore,
  limit: number,
  by: (a: PendingContribution, b: PendingContribution) => number,
): Promise<PendingContribution[]> {
  await inner.pending(limit);
  return (await inner.pending(Infinity)).sort(by).slice(0, limit);
}

/**
 * A store that runs `check` (a read) as the call comes, then `write` when the writes before it
 * are done: a check-then-act write, not one atomic checked write.
 */
function checkThenWrite(): <T>(
  check: () => Promise<boolean>,
  write: () => Promise<T>,
) => Promise<T | null> {
  let writes: Promise<unknown> = Promise.resolve();
  return async (check, write) => {
    if (!await check()) return null;
    const done = writes.then(write);
    writes = done.catch(() => {});
    return await done;
  };
}

/** A store whose submit stores a known pending id again (beside the first), answering null. */
function duplicating(inner: TrainingStore): Partial<TrainingStore> {
  const extra: { p: PendingContribution; gradient: Uint8Array }[] = [];
  const isExtra = (p: { ref?: unknown }) => extra.some((e) => e.p.ref === p.ref);
  return {
    async submit(info, gradient) {
      const record: RequestRecord | null = await inner.submit(info, gradient);
      if (record?.state !== "pending") return record;
      const { id, base, samples } = info;
      extra.push({ p: { id, base, samples, ref: { extra: extra.length } }, gradient });
      return null;
    },
    async pending(limit) {
      await inner.pending(limit);
      const all = [...await inner.pending(Infinity), ...extra.map((e) => e.p)];
      return all.sort((a, b) => a.base - b.base).slice(0, limit);
    },
    gradient: (p) =>
      isExtra(p)
        ? Promise.resolve(extra.find((e) => e.p.ref === p.ref)!.gradient)
        : inner.gradient(p),
    commit: (c: StepCommit) =>
      inner.commit({ ...c, applied: c.applied.filter((p) => !isExtra(p)) }),
  };
}

/** Each broken store, what it does wrong, and the clauses the kit must name. */
const BROKEN: [string, () => TrainingStore, string[], ConformanceOptions?][] = [
  [
    "save ignores the version it is given (the last writer wins)",
    wrapped((inner) => ({
      save: async (bytes, _expected, meta) =>
        await inner.save(bytes, (await inner.load())?.version ?? null, meta),
    })),
    ["save.stale"],
  ],
  [
    "save checks the version, then writes (not atomically)",
    wrapped((inner) => {
      const checked = checkThenWrite();
      return {
        save: (bytes, expected, meta) =>
          checked(
            async () => ((await inner.load())?.version ?? null) === expected,
            async () => await inner.save(bytes, (await inner.load())?.version ?? null, meta),
          ),
      };
    }),
    ["save.race"],
  ],
  [
    "save without meta keeps the previous one",
    wrapped((inner) => {
      let last: string | undefined;
      return { save: (bytes, expected, meta) => inner.save(bytes, expected, last = meta ?? last) };
    }),
    ["save.versions"],
  ],
  [
    "load gives every caller the same array",
    wrapped((inner) => {
      let last: Awaited<ReturnType<TrainingStore["load"]>> = null;
      return {
        load: async () => {
          const loaded = await inner.load();
          return last?.version === loaded?.version ? last : (last = loaded);
        },
      };
    }),
    ["save.copies"],
  ],
  [
    "load gives bytes over a SharedArrayBuffer",
    wrapped((inner) => ({
      load: async () => {
        const loaded = await inner.load();
        if (loaded === null) return null;
        const shared = new Uint8Array(new SharedArrayBuffer(loaded.bytes.length));
        shared.set(loaded.bytes);
        return { ...loaded, bytes: shared };
      },
    })),
    ["load.buffer"],
  ],
  [
    "pending orders one base step's ids by UTF-16 units",
    wrapped((inner) => ({
      pending: (limit) => pendingBy(inner, limit, byBaseThenUtf16),
    })),
    ["pending.order"],
  ],
  [
    "pending orders by id alone, whatever the base step",
    wrapped((inner) => ({
      pending: (limit) => pendingBy(inner, limit, (a, b) => a.id < b.id ? -1 : 1),
    })),
    ["pending.order"],
  ],
  [
    "pending takes a negative limit as all but that many",
    wrapped((inner) => ({
      pending: async (limit) =>
        limit < 0 ? (await inner.pending(Infinity)).slice(0, limit) : await inner.pending(limit),
    })),
    ["listing.arguments"],
  ],
  ["submit stores a known id again", wrapped(duplicating), ["submit.known", "submit.race"]],
  [
    "commit checks the version, then writes (not atomically)",
    wrapped((inner) => {
      const checked = checkThenWrite();
      return {
        commit: (c) =>
          checked(
            async () => ((await inner.head())?.version ?? null) === c.expected,
            async () =>
              await inner.commit({ ...c, expected: (await inner.head())?.version ?? null }),
          ),
      };
    }),
    ["commit.race"],
  ],
  [
    "commit ignores fresh",
    wrapped((inner) => ({
      commit: (c) => inner.commit({ ...c, fresh: [] }),
    })),
    ["commit.checks"],
  ],
  // The kit's check of a later submit of an applied id finds it pending too.
  [
    "commit leaves applied contributions pending",
    wrapped((inner) => ({
      commit: (c) => inner.commit({ ...c, applied: c.applied.map(({ ref: _, ...e }) => e) }),
    })),
    ["submit.known", "commit.applies"],
  ],
  // Every check of a commit's effects reads the head.
  [
    "head does not record the step",
    wrapped((inner) => ({
      head: async () => {
        const head = await inner.head();
        return head && { version: head.version, step: null };
      },
    })),
    ["head.params", "commit.applies", "commit.outcomes"],
  ],
  [
    "acquire takes the lease from its holder",
    wrapped((inner) => {
      let held: string | null = null;
      return {
        async acquire(token, ms, queue) {
          if (held !== null) await inner.release(held);
          const lease = await inner.acquire(token, ms, queue);
          held = lease?.token ?? held;
          return lease;
        },
      };
    }),
    [
      "lease.exclusive",
      "lease.again",
      "commit.lease",
      "lease.waiting",
      "lease.expiry",
      "lease.long-dead",
    ],
  ],
  [
    "acquire refuses the lease to the token that holds it",
    wrapped((inner) => {
      let held: Lease | null = null; // the last lease it gave, until released or committed under
      return {
        async acquire(token, ms, queue) {
          if (held?.token === token) return null; // as if another held it, until it expires
          const lease = await inner.acquire(token, ms, queue);
          held = lease ?? held;
          return lease;
        },
        async release(lease) {
          await inner.release(lease);
          if (lease === held?.token || (lease as Lease).ref === held?.ref) held = null;
        },
        async commit(c) {
          const done = await inner.commit(c);
          if (done !== null && c.lease !== undefined) held = done.lease;
          return done;
        },
      };
    }),
    ["lease.again"],
  ],
  [
    "gradient rejects a contribution no longer held with a bare Error",
    wrapped((inner) => {
      const settled = new Set<unknown>();
      return {
        async commit(c) {
          const done = await inner.commit(c);
          if (done !== null) { for (const e of [...c.applied, ...c.refused]) settled.add(e.ref); }
          return done;
        },
        gradient: (p) =>
          settled.has(p.ref) ? Promise.reject(new Error("no such row")) : inner.gradient(p),
      };
    }),
    ["gradient.gone"],
  ],
  [
    "acquire notes a token that asked with queue false",
    wrapped((inner) => ({
      acquire: (token, ms) => inner.acquire(token, ms, true),
    })),
    ["lease.waiting"],
  ],
  [
    "acquire keeps the lease a thousand times the term it gives",
    wrapped((inner) => ({
      acquire: async (token, ms, queue) => {
        const lease = await inner.acquire(token, ms * 1000, queue);
        return lease && { ...lease, expires: lease.expires - ms * 999 }; // says its own term
      },
    })),
    ["lease.expiry", "lease.long-dead"],
  ],
  [
    "acquire gives the lease's end by a database clock an hour ahead",
    wrapped((inner) => ({
      acquire: async (token, ms, queue) => {
        const lease = await inner.acquire(token, ms, queue);
        return lease && { ...lease, expires: lease.expires + 3_600_000 };
      },
    })),
    [
      "lease.exclusive",
      "lease.again",
      "commit.lease",
      "lease.waiting",
      "lease.expiry",
      "lease.long-dead",
    ],
  ],
  [
    "journal lists the newest records first",
    wrapped((inner) => ({
      journal: async (from, limit) => {
        await inner.journal(from, limit); // its checks of the arguments
        return (await inner.journal(from, Infinity)).reverse().slice(0, limit);
      },
    })),
    ["journal.range"],
  ],
  [
    "says maxFold 10 (maxFresh 5) but settles at most 5 stored contributions a commit",
    wrapped((inner) => ({
      maxFold: 10,
      maxFresh: 5,
      commit: (c: StepCommit) =>
        c.applied.filter((p) => p.ref !== undefined).length > 5
          ? Promise.reject(new Error("too many mutations"))
          : inner.commit(c),
    })),
    ["store.maxFold"],
  ],
  [
    "records are kept longer than the rememberMs said",
    wrapped(() => ({}), { rememberMs: 600_000 }),
    ["request.expiry"],
    { rememberMs: 60_000 },
  ],
];

for (const [does, make, clauses, options] of BROKEN) {
  Deno.test(`conformance: a store that ${does} is reported, naming ${clauses.join(", ")}`, async () => {
    // (Checkpoints of 128 KiB: past a value of Deno KV, and quicker than the default 4 MiB.)
    const found = await withClock((advance) =>
      broken(make, { advance, largestCheckpoint: 1 << 17, ...options })
    );
    assert.deepEqual(found, clauses);
  });
}

Deno.test("conformance: a load that reads the version and the bytes in two calls is reported: load.whole", async () => {
  const torn = wrapped((inner) => ({
    load: async () => {
      const head = await inner.head();
      const loaded = await inner.load();
      return loaded && head && { ...loaded, version: head.version };
    },
  }));
  assert.deepEqual(await broken(torn), ["load.whole"]);
});

Deno.test("conformance: the store of VersionedCheckpointStore's example, in a variable, keeps its contract", async () => {
  const variable = (): VersionedCheckpointStore => {
    let current: StoredCheckpoint | null = null;
    let counter = 0;
    return {
      name: "variable",
      load: () => Promise.resolve(current && { ...current, bytes: current.bytes.slice() }),
      save(bytes, expected, meta) {
        if ((current?.version ?? null) !== expected) return Promise.resolve(null);
        current = { bytes: bytes.slice(), version: String(++counter), meta };
        return Promise.resolve(current.version);
      },
    };
  };
  const report = await verifyCheckpointStore(variable);
  assert.equal(report.store, "variable");
  assert.equal(report.passed.length, 10);
});

Deno.test("conformance: a broken clause's message says what was done, what was expected and what the store gave", async () => {
  const ignoresVersion = wrapped((inner) => ({
    save: async (bytes, _expected, meta) =>
      await inner.save(bytes, (await inner.load())?.version ?? null, meta),
  }));
  const error = await verifyCheckpointStore(ignoresVersion).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError);
  assert.equal(error.failures.length, 1);
  const [f] = error.failures;
  assert.equal(f.clause, "save.stale");
  assert.equal(f.did, "save(other bytes, null) with v2 current");
  assert.equal(f.expected, "null");
  assert.equal(f.got, '"3"');
  assert.match(
    error.message,
    /^The store named in memory breaks 1 of 10 clauses checked:\n- save\.stale \(/,
  );
  assert.match(
    error.message,
    /save\(other bytes, null\) with v2 current: expected null, the store gave "3"$/,
  );
  assert.deepEqual(error.report.passed.length, 9);
});

Deno.test("conformance: a store whose call rejects, or a check that throws, is a broken clause, and the others still run", async () => {
  const failing = wrapped(() => ({
    request: () => Promise.reject(new Error("connection reset")),
  }));
  const error = await verifyTrainingStore(failing).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError);
  assert.deepEqual(error.failures.map((f) => f.clause), [
    "submit.record",
    "commit.applies",
    "commit.checks",
    "commit.outcomes",
    "commit.race",
  ]);
  assert.equal(error.failures[0].got, "a rejection (Error: connection reset)");
  assert.ok(error.report.passed.includes("submit.race"));
});

Deno.test("conformance: bad options and factories are refused at once, naming what is wrong", async () => {
  const make = () => memoryCheckpointStore();
  await assert.rejects(
    () => verifyTrainingStore(make, { clock: 1 } as ConformanceOptions),
    TypeError,
  );
  await assert.rejects(() => verifyTrainingStore(make, { racers: 1 }), RangeError);
  await assert.rejects(() => verifyTrainingStore(make, { rememberMs: 0.5 }), RangeError);
  await assert.rejects(() => verifyTrainingStore(make, { advance: 5 as never }), TypeError);
  for (const largestCheckpoint of [0, 1.5, -1, Infinity, NaN]) {
    await assert.rejects(
      () => verifyTrainingStore(make, { largestCheckpoint }),
      (e) => e instanceof RangeError && /largestCheckpoint/.test(e.message),
    );
  }
  await assert.rejects(
    () => verifyCheckpointStore(make, { largestCheckpoint: "4MB" as never }),
    (e) => e instanceof TypeError && /largestCheckpoint/.test(e.message),
  );
  await assert.rejects(
    () => verifyTrainingStore(make, { skip: ["save.raec"] }),
    (e) =>
      e instanceof RangeError &&
      /skip names no clause: "save\.raec"; the clauses: load\.empty,/.test(e.message),
  );
  await assert.rejects(() => verifyTrainingStore("store" as never), TypeError);
  const noSubmit = () => ({ ...memoryCheckpointStore(), submit: undefined }) as never;
  await assert.rejects(() => verifyTrainingStore(noSubmit), /has no submit\(\)/);
  await assert.rejects(() => verifyCheckpointStore(() => ({}) as never), TypeError);
  const failing = () => Promise.reject(new Error("no database"));
  await assert.rejects(() => verifyCheckpointStore(failing), /no database/);
});

Deno.test("conformance: skip leaves clauses out, and says so", async () => {
  const report = await verifyCheckpointStore(() => memoryCheckpointStore(), {
    skip: ["load.whole", "save.meta"],
  });
  assert.deepEqual(report.skipped, [
    { clause: "save.meta", reason: "named in the option skip" },
    { clause: "load.whole", reason: "named in the option skip" },
  ]);
  assert.equal(report.passed.length, 8);
});

/** An in-memory store as a binding over a database whose values are at most `limit` bytes. */
function limitedTo(limit: number): () => TrainingStore {
  const tooLarge = (what: string, bytes: Uint8Array) =>
    Promise.reject(new Error(`${what}: a value of ${bytes.length} bytes passes ${limit}`));
  return wrapped((inner) => ({
    save: (bytes, expected, meta) =>
      bytes.length > limit ? tooLarge("save", bytes) : inner.save(bytes, expected, meta),
    commit: (c) =>
      c.checkpoint !== null && c.checkpoint.length > limit
        ? tooLarge("commit", c.checkpoint)
        : inner.commit(c),
    submit: (info, gradient) =>
      gradient.length > limit ? tooLarge("submit", gradient) : inner.submit(info, gradient),
  }));
}

Deno.test("conformance: a binding whose values are limited (512 KiB) breaks only the clauses of size, saying so", async () => {
  const make = limitedTo(512 * 1024);
  assert.deepEqual(await broken(make), ["save.large", "commit.large", "submit.large"]);
  const error = await verifyTrainingStore(make).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError);
  assert.match(
    error.message,
    /- save\.large \(.*: save\(Uint8Array\(4194304\) .* a value of 4194304 bytes passes 524288/,
  );
  assert.match(error.message, /- submit\.large \(.*a value of 4194304 bytes passes 524288/);
  // Within its limit, it keeps every clause.
  assert.deepEqual(await broken(make, { largestCheckpoint: 400_000 }), []);
  const checkpoints = await verifyCheckpointStore(make).catch((e) => e);
  assert.deepEqual(checkpoints.failures.map((f: { clause: string }) => f.clause), ["save.large"]);
});

Deno.test("conformance: a binding that loses or mixes the bytes of a large checkpoint is reported, saying where", async () => {
  // Keeps the first MiB (a value's limit), silently.
  const truncating = wrapped((inner) => ({
    save: (bytes, expected, meta) => inner.save(bytes.slice(0, 1 << 20), expected, meta),
  }));
  const error = await verifyCheckpointStore(truncating).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError);
  assert.deepEqual(error.failures.map((f) => f.clause), ["save.large"]);
  assert.match(error.failures[0].got, /^1048576 bytes$/);
  // Writes chunks of 64 KiB over the old ones but keeps the old first chunk.
  let first: Uint8Array | null = null;
  const mixing = wrapped((inner) => ({
    save: (bytes, expected, meta) => {
      const kept = bytes.slice();
      if (first !== null && bytes.length === first.length) kept.set(first.subarray(0, 65536));
      first ??= bytes.length > 65536 ? bytes.slice() : null;
      return inner.save(kept, expected, meta);
    },
  }));
  const mixed = await verifyCheckpointStore(mixing).catch((e) => e);
  assert.deepEqual(mixed.failures.map((f: { clause: string }) => f.clause), ["save.large"]);
  assert.match(mixed.failures[0].got, /^bytes that differ first at byte \d+$/);
});

Deno.test("conformance: answers with more fields than the contract names pass (a binding's own columns)", async () => {
  const more = wrapped((inner) => ({
    load: async () => {
      const loaded = await inner.load();
      return loaded && Object.assign(loaded, { step: 1, etag: "x" });
    },
    head: async () => {
      const head = await inner.head();
      return head && { ...head, updatedAt: 1 };
    },
    request: async (id) => {
      const record = await inner.request(id);
      return record && { ...record, at: 2 };
    },
    journal: async (from, limit) =>
      (await inner.journal(from, limit)).map((r) => ({
        ...r,
        at: 3,
        entries: r.entries.map((e) => ({ ...e, ref: "row" })),
      })),
  }));
  const report = await verifyTrainingStore(more);
  assert.equal(report.passed.length, 29);
});

Deno.test("conformance: a call that never answers fails its clause after timeoutMs, and the others still run", async () => {
  const hangs = wrapped(() => ({ head: () => new Promise<never>(() => {}) }));
  const error = await verifyTrainingStore(hangs, { timeoutMs: 20 }).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError);
  assert.deepEqual(error.failures.map((f) => f.clause), [
    "head.params",
    "commit.applies",
    "commit.checks",
    "commit.outcomes",
  ]);
  assert.equal(error.failures[0].got, "no answer to at least one");
  assert.match(error.failures[0].expected, /within 20 ms \(the option timeoutMs\)/);
});

Deno.test("conformance: a factory that fails during the verification rejects it with its own error", async () => {
  let n = 0;
  const make = () => {
    if (++n === 4) throw new Error("out of database connections");
    return memoryCheckpointStore();
  };
  await assert.rejects(() => verifyCheckpointStore(make), /out of database connections/);
});
