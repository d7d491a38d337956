/**
 * A worker of the bounds of bytes on threads (bench/compare/bytes_bounds.ts): sets up its own
 * memory from the bounds' module on its first message, then resets it or runs steps of a bound,
 * as each {@linkcode BytesWorkerMessage} asks, answering when done.
 *
 * @module
 */
import { type BytesMemory, bytesMemory, type BytesWorkerMessage } from "./bytes_bounds.ts";

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
let memory: BytesMemory | undefined;

scope.onmessage = async (event: MessageEvent<BytesWorkerMessage>) => {
  try {
    const message = event.data;
    if ("module" in message) memory = await bytesMemory(message.module, message.n);
    else if ("reset" in message) memory!.reset();
    else for (let s = 0; s < message.steps; s++) memory!.step(message.rule, message.scaled);
    scope.postMessage({ done: true });
  } catch (error) {
    scope.postMessage({ error: String(error) });
  }
};
