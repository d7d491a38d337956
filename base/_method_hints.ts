/**
 * What errors say of what other libraries' habits reach for on an optimizer or a state, where
 * JavaScript's own error said only that it was not there: a method neither has (`opt.step()`,
 * PyTorch's; `opt.update()`, optax's; `state.dispose()`, as a TensorFlow.js tensor is freed;
 * `zero_grad()`, PyTorch's), or a learning rate set on either (`opt.lr = x`). Private to the
 * library.
 *
 * @module
 */

/**
 * The error of `state.lr = x` or `opt.lr = x` (`what`: "A state", "An optimizer", of the factory
 * `name`; `key`: `lr`, or `learningRate`, as tfjs names it): neither has a learning rate to set,
 * where the assignment would add a property that no step reads (a state's is its optimizer's, an
 * optimizer's fixed when it is made), and how to change it mid-run.
 *
 * @example
 * ```ts
 * import { lrSetMessage } from "./_method_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(lrSetMessage("An optimizer", "lr"), /^An optimizer has no lr to set .*\(\) => lr/);
 * ```
 */
export function lrSetMessage(
  what: "A state" | "An optimizer",
  key: string,
  name = "radam",
): string {
  const factory = /^\w+$/.test(name) ? name : "radam";
  const whose = what === "A state"
    ? "its learning rate is its optimizer's"
    : `its options are fixed when it is made, ${factory}({ lr })`;
  return `${what} has no ${key} to set (the assignment would change nothing): ${whose}. To ` +
    "change it mid-run, give lr as a schedule that reads yours, let lr = 1e-3; " +
    "radam({ lr: () => lr }), and set that variable (the next step reads it; on WebGPU, which " +
    "calls a schedule ahead, within 64 steps); a checkpoint resumes with another one, " +
    "loadState(bytes, { lr })";
}

/**
 * The error of `state.dispose()`, as a TensorFlow.js tensor is disposed (JavaScript's
 * "state.dispose is not a function" before): a state is freed by the library's function, or,
 * one that another object holds (`holder`: the adapter's `optimizer.state`, which that function
 * refuses), by the holder's call.
 *
 * @example
 * ```ts
 * import { disposeMethodMessage } from "./_method_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(disposeMethodMessage(), /^A state has no dispose\(\) method: .*dispose\(state\)/);
 * const holder = { name: "a test's", disposeWith: "its close()" };
 * assert.match(disposeMethodMessage(holder), /this one is a test's: free it with its close\(\)$/);
 * ```
 */
export function disposeMethodMessage(
  holder?: { readonly name: string; readonly disposeWith: string },
): string {
  return holder === undefined
    ? "A state has no dispose() method: free it with the function dispose(state) (import " +
      '{ dispose } from "@optim/radam"), which stops a threaded state\'s workers and frees a ' +
      "WebGPU state's buffers"
    : `A state has no dispose() method, and this one is ${holder.name}: free it with ` +
      holder.disposeWith;
}

/**
 * The error of `opt.step()` (`name`: the optimizer's, `"radam"` or `"lookahead(adam)"`), as
 * PyTorch's `optimizer.step()` is written, or of `opt.update(grads, state)` (`method`), as
 * optax's (JavaScript's "opt.step is not a function" before): an optimizer holds no state; the
 * function `step` steps the state its `init` makes.
 *
 * @example
 * ```ts
 * import { optimizerStepMessage } from "./_method_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(optimizerStepMessage("adam"), /^An optimizer has no step\(\) method: .*adam\(\)/);
 * assert.match(optimizerStepMessage("adam", "update"), /^An optimizer has no update\(\) method/);
 * ```
 */
export function optimizerStepMessage(name: string, method = "step"): string {
  const made = /^\w+$/.test(name) ? `${name}()` : "opt";
  return `An optimizer has no ${method}() method: it holds no state. Make one, let state = await ` +
    `${made}.init(params), and step it with the function step, state = step(state, grads) ` +
    '(import { step } from "@optim/radam"), which returns the next state';
}

/**
 * The error of `zero_grad()` or `zeroGrad()` (`method`) called on an optimizer or a state
 * (`what`), as PyTorch's `optimizer.zero_grad()` is before each backward pass (JavaScript's
 * "opt.zero_grad is not a function" before): gradients are given to each step, and nothing
 * accumulates into them unless the caller's code does, which then zeroes the slots itself.
 *
 * @example
 * ```ts
 * import { zeroGradMessage } from "./_method_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(zeroGradMessage("An optimizer", "zero_grad"), /^An optimizer has no zero_grad\(\)/);
 * assert.match(zeroGradMessage("A state", "zeroGrad"), /state\.grads\.w\.fill\(0\)/);
 * ```
 */
export function zeroGradMessage(what: "A state" | "An optimizer", method: string): string {
  return `${what} has no ${method}() method, and nothing needs zeroing: gradients are given to ` +
    "each step, state = step(state, grads) (or written into its slots, state.grads.w.set(g), " +
    "then state = step(state)), and no step adds them to others. Code that adds into the slots " +
    "over micro-batches, g[i] += …, as PyTorch's backward adds into .grad, zeroes them after each " +
    "step, state.grads.w.fill(0)";
}
