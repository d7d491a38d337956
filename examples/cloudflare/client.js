// The TrainingStore a Worker hands to `dataParallel` or `optimisticStep`: each method one RPC
// call to the Durable Object of store_object.js (its stub), which keeps the contract.
import { CheckpointError } from "@optim/radam";

/**
 * What `call` answers; its rejection with a CheckpointError (damaged or missing stored data,
 * which the library passes on as such) revived as one: an RPC delivers an error of a class of
 * its own as a plain Error whose message begins with the class's name.
 */
async function rpc(call) {
  try {
    return await call();
  } catch (error) {
    const prefix = "CheckpointError: ";
    if (!(error instanceof Error) || !error.message.startsWith(prefix)) throw error;
    throw new CheckpointError(error.message.slice(prefix.length));
  }
}

/**
 * The training store in the Durable Object `stub` (e.g. `env.TRAINING_STORE.get(id)`), named
 * `name` in error messages. `maxFold` bounds how many contributions one commit settles (one
 * storage transaction, in one RPC message).
 */
export function durableObjectStore(stub, name, { maxFold = 64 } = {}) {
  // (`rpc` awaits each answer: a plain promise, not the stub's pipelining RpcPromise.)
  return {
    name,
    maxFold,
    load: () => rpc(() => stub.load()),
    save: (bytes, expected, meta) => rpc(() => stub.save(bytes, expected, meta)),
    head: () => rpc(() => stub.head()),
    loadParams: () => rpc(() => stub.loadParams()),
    commit: (commit) => rpc(() => stub.commit(commit)),
    request: (id) => rpc(() => stub.request(id)),
    submit: (info, gradient) => rpc(() => stub.submit(info, gradient)),
    pending: (limit) => rpc(() => stub.pending(limit)),
    gradient: (contribution) => rpc(() => stub.gradient(contribution)),
    acquire: (token, ms, queue = true) => rpc(() => stub.acquire(token, ms, queue)),
    release: (lease) => rpc(() => stub.release(lease)),
    waiting: (lease) => rpc(() => stub.waiting(lease)),
    journal: (from, limit) => rpc(() => stub.journal(from, limit)),
  };
}
