// The TrainingStore a Worker hands to `dataParallel` or `optimisticStep`: each method one RPC
// call to the Durable Object of store_object.js (its stub), which keeps the contract.

/**
 * The training store in the Durable Object `stub` (e.g. `env.TRAINING_STORE.get(id)`), named
 * `name` in error messages. `maxFold` bounds how many contributions one commit settles (one
 * storage transaction, in one RPC message).
 */
export function durableObjectStore(stub, name, { maxFold = 64 } = {}) {
  // (`await` makes each answer a plain promise, not the stub's pipelining RpcPromise.)
  return {
    name,
    maxFold,
    load: async () => await stub.load(),
    save: async (bytes, expected, meta) => await stub.save(bytes, expected, meta),
    head: async () => await stub.head(),
    loadParams: async () => await stub.loadParams(),
    commit: async (commit) => await stub.commit(commit),
    request: async (id) => await stub.request(id),
    submit: async (info, gradient) => await stub.submit(info, gradient),
    pending: async (limit) => await stub.pending(limit),
    gradient: async (contribution) => await stub.gradient(contribution),
    acquire: async (token, ms, queue = true) => await stub.acquire(token, ms, queue),
    release: async (lease) => await stub.release(lease),
    waiting: async (lease) => await stub.waiting(lease),
    journal: async (from, limit) => await stub.journal(from, limit),
  };
}
