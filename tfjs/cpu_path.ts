/**
 * The adapter on tfjs's CPU backends (`cpu`, `wasm`, and any other but `webgpu`): one state of
 * this library over the variables of the last step, made from their values, stepped by this
 * library's wasm kernel (on tfjs-backend-wasm's own heap where it can, see heap_backend.ts; else
 * in the kernel's own memory, or on worker threads with option `threads`), or by the js backend
 * (the state made in cpu_build.ts).
 *
 * A state follows TensorFlow.js: when tfjs moves to another backend, or its wasm backend is
 * disposed, the state moves off tfjs's heap (or onto it), through the kept-aside states, with the
 * same bits. When the set of variables changes, the state of those left out is kept aside.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ArenaLayout } from "../base/arena.ts";
import type { HostBackend } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { type OptimizerState, restoreState, stateInternals } from "../core/state.ts";
import { checkThreadSupport, createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
// (Not operations.ts' step and dispose: they refuse the state (held) that optimizer.state gives.)
import { disposeState as dispose } from "../core/state.ts";
import { endBeside, rateBeside } from "../core/new_settings.ts";
import { stepState as step } from "../core/state_step.ts";
import { holdState } from "../core/held.ts";
import { ADAPTER_HOLDER } from "./_hints.ts";
import { assignStepped } from "./_assign.ts";
import { checkWasmAsked } from "../core/select.ts";
import { changeError, type GradItem, type Matched } from "./gradients.ts";
import { HeapBackend } from "./heap_backend.ts";
import { copyHostState } from "./host_state.ts";
import type { KeptStates } from "./kept.ts";
import { type Entry, fromArena, toArena } from "./layout.ts";
import { readHost } from "./wasm_heap.ts";
import { heapCandidate } from "./backend_choice.ts";
import { type CpuPlan, hostBackend, planOf, restoredState } from "./cpu_build.ts";

/** What the per-step arrays and record hold between steps. */
const NONE = new Float32Array(0);

/** Worker threads being started for the current state. */
interface ThreadsPending {
  done: Promise<void>;
  backend?: HostBackend;
  error?: unknown;
}

/** The CPU path of one optimizer: its state, when made, and the kept-aside states it shares. */
export class CpuPath {
  /** The library state over `#entries`, when made. */
  #state: OptimizerState<unknown> | undefined;
  #entries: Entry[] = [];
  /**
   * A threaded backend being started for the current state (option `threads`): the state starts
   * on one thread (workers cannot start inside a synchronous call) and moves to it, bit for bit
   * the same, at the first step after it is ready.
   */
  #threads: ThreadsPending | undefined;
  /**
   * Per entry: the data id its variable had when the state last gave it its parameters (or read
   * them); another id means the variable was assigned since (setWeights).
   */
  #assigned: object[] = [];
  /** The tfjs backend that ran when the state was made. */
  #builtOn: tf.KernelBackend | undefined;
  readonly #kept: KeptStates;
  /**
   * Per step, reused so that a step allocates none of them: the gradients copied into tensors of
   * their own, the tensors the step reads (per entry), their values, and the record of gradients
   * given to the step (keyed by the entries' names). Emptied after each step, so that nothing of
   * tfjs's is held between steps.
   */
  readonly #moved: tf.Tensor[] = [];
  readonly #tensors: (tf.Tensor | undefined)[] = [];
  readonly #values: Float32Array[] = [];
  #given: Record<string, Float32Array> = {};

  /** A path with no state, keeping state aside in `kept`. */
  constructor(kept: KeptStates) {
    this.#kept = kept;
  }

  /** The library state, when made. */
  get state(): OptimizerState<unknown> | undefined {
    return holdState(this.#state, ADAPTER_HOLDER);
  }

  /** The variables of the state, in its order. */
  get entries(): readonly Entry[] {
    return this.#entries;
  }

  /** Resolves when the worker threads being started have started (or failed to). */
  async ready(): Promise<void> {
    await this.#threads?.done;
  }

  /**
   * One step over checked gradients, with the settings `config` (those the state was made with,
   * unless it was kept aside since): `match`, the gradients matched to the state's variables.
   * Makes the state first where there is none, where the variables changed (or refuses under
   * `strict`, with or without `remake`, moving or not), where tfjs moved onto or off its wasm
   * heap, or where `remake` (new settings: its moments kept, the same bits; a new learning rate
   * over the same variables, in any order, steps the state on its own arena). With `makeOnly`,
   * only makes it (a call that gradient accumulation sums: see state_paths.ts).
   */
  step(
    config: Settings,
    strict: boolean,
    match: Matched,
    remake = false,
    makeOnly = false,
  ): void {
    const follow = this.#follow(config);
    // (The same variables in another order are those of the state; not of one that moves.)
    const items = follow ? match.given : match.items;
    const same = !follow && match.same;
    // New settings (a learning rate) over the same variables: stepped under them on the same
    // arena, in its order (no moments copied, no backend made: the same bits).
    if (remake && same && !makeOnly && this.#stepUnder(config, items)) return;
    if (this.#state === undefined || !same || remake) {
      // (Refused before anything changes: the workers being started for the state too; and
      // where the state moves with tfjs onto or off its wasm heap, as where it stays.)
      if (this.#state !== undefined && !match.same && strict) {
        throw changeError(this.#entries, match.items);
      }
      checkWasmAsked(config);
      if (config.run.threads > 1) checkThreadSupport(config.run.threads);
      return this.#remade(config, items, planOf(config, items), makeOnly);
    }
    if (makeOnly) return;
    this.#moveToThreads();
    this.#run(items);
  }

  /**
   * Steps the state under `config` (its own settings but for the learning rate, checked when it
   * was given) on its own arena: `items` are its variables in its order (matched by the caller).
   * False, nothing done, where `config` differs in more than its learning rate.
   * A step refused (a non-finite gradient under `nonFinite: "throw"`, a RangeError of the rule)
   * leaves the state as it was, the same object under its own settings.
   */
  #stepUnder(config: Settings, items: readonly GradItem[]): boolean {
    this.#moveToThreads(); // (as a step does: the same bits, on the threads started)
    const was = this.#state!;
    const under = rateBeside(was, config);
    if (under === undefined) return false;
    this.#state = under;
    try {
      this.#run(items);
    } catch (error) {
      if (this.#state === under) { // (not taken)
        this.#state = was;
        endBeside(under);
      } else endBeside(was);
      throw error;
    }
    endBeside(was);
    return true;
  }

  /**
   * Makes the state over `items` anew (the current one's kept aside for it) and steps it (not
   * with `makeOnly`). A step that fails, as the state is made or in the kernel (a non-finite gradient under
   * `nonFinite: "throw"`, a RangeError of the rule), changes nothing ({@linkcode keptAsideFor}).
   */
  #remade(
    config: Settings,
    items: readonly GradItem[],
    plan: CpuPlan,
    makeOnly: boolean,
  ): void {
    let made: OptimizerState<unknown> | undefined;
    this.keptAsideFor(() => {
      this.#build(config, items, plan);
      made = this.#state;
      if (!makeOnly) this.#run(items);
    }, () => made !== undefined && this.#state !== made);
  }

  /**
   * Runs `make`, which makes a state from the kept ones and steps it (here, or on the GPU), with
   * the current state kept aside, as {@linkcode keepAll} does, but not dropped until `make`
   * returns. Where it throws before its step was `taken`, nothing has changed: a state it made
   * here is dropped, and the current one (the same object, its workers being started too) and
   * what was kept aside are put back as they were. (After: the error is thrown, the step kept.)
   */
  keptAsideFor(make: () => void, taken: () => boolean): void {
    const was = [this.#state, this.#entries, this.#given, this.#assigned, this.#builtOn] as const;
    const threads = this.#threads;
    const restoreKept = this.#kept.saved();
    if (was[0] !== undefined) this.#kept.keepState(was[0], was[1]);
    this.#state = undefined;
    this.#entries = [];
    this.#threads = undefined;
    try {
      make();
    } catch (error) {
      if (taken()) {
        threads?.backend?.dispose?.();
        if (was[0] !== undefined) dispose(was[0]);
        throw error;
      }
      this.drop(); // a state made, and workers started for it
      [this.#state, this.#entries, this.#given, this.#assigned, this.#builtOn] = was;
      this.#threads = threads;
      restoreKept();
      throw error;
    }
    threads?.backend?.dispose?.();
    if (was[0] !== undefined) dispose(was[0]);
  }

  /** Moves the whole state into the kept-aside states (then there is none). */
  keepAll(): void {
    if (this.#state === undefined) return;
    this.#kept.keepState(this.#state, this.#entries);
    this.drop();
  }

  /** Drops the state without keeping it (workers being started stop). */
  drop(): void {
    this.#dropThreads();
    if (this.#state) dispose(this.#state);
    this.#state = undefined;
    this.#entries = [];
  }

  /**
   * Whether tfjs moved onto or off the wasm heap the state is (or is not) on: it is then kept
   * aside and made anew at the next step, over the variables in the order given (not its own).
   * Changes nothing (a heap disposed since: the step throws, {@linkcode #follow}).
   */
  moves(config: Settings): boolean {
    const state = this.#state;
    if (state === undefined) return false;
    const backend = stateInternals(state).backend;
    // (TensorFlow.js now runs on another backend: the state moves off tfjs's heap.)
    if (backend instanceof HeapBackend) return !backend.usable();
    // Made while tfjs ran another backend, and tfjs now runs on wasm: onto its heap.
    return this.#builtOn !== tf.backend() &&
      heapCandidate(config, backend.layout.total) !== undefined;
  }

  /**
   * {@linkcode moves}, at a step: where the wasm backend holding the state was disposed, drops it
   * (its counts kept aside) and throws a TypeError.
   */
  #follow(config: Settings): boolean {
    if (!this.moves(config)) return false;
    const state = this.#state!;
    const backend = stateInternals(state).backend;
    if (backend instanceof HeapBackend && backend.lost) {
      // (Kept-aside state of frozen variables is on the JS heap, and stays.)
      const internals = stateInternals(state);
      this.#kept.steps = internals.steps;
      this.#kept.skipped = internals.skipped;
      this.drop();
      throw new TypeError(
        "The TensorFlow.js wasm backend that held this optimizer's state was disposed, and the state with it (moments, slow weights); the next step starts them afresh from the variables",
      );
    }
    return true;
  }

  /**
   * Makes the state over `items` (its layout `plan`), from kept state where there is one (else
   * fresh).
   */
  #build(config: Settings, items: readonly GradItem[], plan: CpuPlan): void {
    const { entries, layout } = plan;
    const backend = hostBackend(config, layout, entries, items);
    try {
      this.#state = restoredState(config, backend, items, plan, this.#kept);
    } catch (error) {
      // (Nothing kept is forgotten, and the backend's memory, or tfjs's heap, is given back.)
      backend.dispose();
      throw error;
    }
    this.#kept.forgetTaken(entries, tf.engine().registeredVariables);
    this.#entries = entries;
    this.#given = Object.fromEntries(entries.map((e) => [e.name, NONE]));
    this.#assigned = items.map((i) => i.variable.dataId);
    this.#builtOn = tf.backend();
    if (
      backend.name === "wasm" && config.run.threads > 1 &&
      layout.total >= config.run.threadThreshold
    ) {
      this.#startThreads(layout, config.run.threads);
    }
  }

  /** Starts the worker threads the state moves to once they are ready. */
  #startThreads(layout: ArenaLayout, threads: number): void {
    const pending: ThreadsPending = { done: Promise.resolve() };
    pending.done = createThreadedWasmBackend(layout, threads).then(
      (b) => {
        if (this.#threads === pending) pending.backend = b;
        else b.dispose?.();
      },
      (error) => {
        if (this.#threads === pending) pending.error = error;
      },
    );
    this.#threads = pending;
  }

  /** At a step: moves the state to its started threads (same layout, same bits). */
  #moveToThreads(): void {
    const pending = this.#threads;
    if (pending === undefined) return;
    if (pending.error !== undefined) {
      this.#threads = undefined;
      throw pending.error;
    }
    const target = pending.backend;
    if (target === undefined) return;
    this.#threads = undefined;
    const internals = stateInternals(this.#state!);
    const source = internals.backend as HostBackend;
    try {
      copyHostState(source, target);
    } catch (error) {
      target.dispose(); // (its workers stop; the state goes on where it is)
      throw error;
    }
    dispose(this.#state!);
    this.#state = restoreState(internals.config, target, {
      steps: internals.steps,
      skipped: internals.skipped,
      shapes: internals.shapes,
      order: internals.order,
    });
  }

  /** The current state's backend when it is on tfjs's wasm heap. */
  #heapBackend(): HeapBackend | undefined {
    if (this.#state === undefined) return undefined;
    const backend = stateInternals(this.#state).backend;
    return backend instanceof HeapBackend ? backend : undefined;
  }

  /** One step on the state: gradients in, the kernel, parameters out. */
  #run(items: readonly GradItem[]): void {
    const heap = this.#heapBackend();
    heap?.attach(items);
    this.#readAssigned(items, heap);
    const state = this.#state!;
    const skipped = state.skippedSteps;
    try {
      this.#state = step(state as OptimizerState, this.#gradients(items, heap));
    } finally {
      this.#release();
    }
    if (this.#state.skippedSteps === skipped) this.#writeBack(items, heap);
  }

  /** After a step: the copies made for it disposed, the per-step arrays emptied. */
  #release(): void {
    const moved = this.#moved;
    if (moved.length > 0) {
      tf.dispose(moved);
      moved.length = 0;
    }
    this.#tensors.fill(undefined);
    this.#values.fill(NONE);
    const given = this.#given;
    for (const e of this.#entries) given[e.name] = NONE;
  }

  /**
   * A variable assigned since the last step (model.setWeights, loading weights) is stepped from
   * its new value, as tfjs's own optimizers do (on tfjs's heap the step reads it anyway).
   */
  #readAssigned(items: readonly GradItem[], heap: HeapBackend | undefined): void {
    const entries = this.#entries;
    let params: Readonly<Record<string, Float32Array>> | undefined;
    for (let i = 0; i < items.length; i++) {
      const variable = items[i].variable;
      if (variable.dataId === this.#assigned[i] || heap?.external(i)) continue;
      params ??= this.#state!.params as Readonly<Record<string, Float32Array>>;
      toArena(entries[i], readHost(variable), params[entries[i].name]);
      this.#assigned[i] = variable.dataId;
    }
  }

  /**
   * The gradients for the step. Those in the tfjs layout go straight to it: on tfjs's heap it
   * reads them where they are, elsewhere it copies them into its slots with the non-finite check
   * fused; a kernel held transposed goes through its slot. On the heap, a gradient the step
   * cannot read where it is (made on another tfjs backend, or another variable's data) is first
   * copied into a tensor of its own (in `#moved`, disposed after the step; before any view is
   * taken: that may grow tfjs's memory).
   */
  #gradients(
    items: readonly GradItem[],
    heap: HeapBackend | undefined,
  ): Record<string, Float32Array> {
    const entries = this.#entries;
    const tensors = this.#tensors, values = this.#values, moved = this.#moved;
    const n = items.length;
    for (let i = 0; i < n; i++) {
      tensors[i] = items[i].tensor;
      values[i] = readHost(items[i].tensor);
    }
    if (heap !== undefined) {
      for (let i = 0; i < n; i++) {
        if (!heap.external(i) || heap.readsInPlace(i, values[i])) continue;
        const own = tf.tensor(values[i].slice(), items[i].tensor.shape, "float32");
        moved.push(own);
        tensors[i] = own;
      }
      if (moved.length > 0) {
        for (let i = 0; i < n; i++) values[i] = readHost(tensors[i]!);
      }
    }
    const given = this.#given;
    let slots: Readonly<Record<string, Float32Array>> | undefined;
    for (let i = 0; i < n; i++) {
      const e = entries[i];
      if (e.transposed) {
        slots ??= this.#state!.grads as Readonly<Record<string, Float32Array>>;
        toArena(e, values[i], slots[e.name]);
        given[e.name] = slots[e.name];
      } else {
        given[e.name] = values[i];
      }
    }
    return given;
  }

  /**
   * After a step taken: parameters on tfjs's heap were updated in their variables' data. The
   * others get new data by assign, as tfjs's own optimizers give it (the wasm backend copies a
   * tensor's values into its heap at once; others may keep the array).
   */
  #writeBack(items: readonly GradItem[], heap: HeapBackend | undefined): void {
    const entries = this.#entries;
    const wasm = tf.getBackend() === "wasm";
    for (let i = 0; i < items.length; i++) {
      if (heap?.external(i)) continue;
      const e = entries[i];
      // (Views taken anew each time: on tfjs's heap, the tensor made for the previous variable
      // may have grown tfjs's memory, which leaves views of the old buffer empty.)
      const view = (this.#state!.params as Readonly<Record<string, Float32Array>>)[e.name];
      const values = e.transposed ? fromArena(e, view) : wasm ? view : view.slice();
      const t = tf.tensor(values, e.shape as number[], "float32");
      this.#assigned[i] = assignStepped(items[i].variable, t);
    }
  }

  /** Stops workers being started for a state that is going away. */
  #dropThreads(): void {
    this.#threads?.backend?.dispose?.();
    this.#threads = undefined;
  }
}
