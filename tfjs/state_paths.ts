/**
 * Where a TensorFlow.js optimizer's state lives: on the CPU path (cpu_path.ts) or on the WebGPU
 * path (gpu_path.ts), with the state kept aside for variables not in the current one (kept.ts),
 * and which path a step takes: the GPU's where tfjs runs on webgpu (backend_choice.ts).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { coreOf, type OptimizerState } from "../core/state.ts";
import { settingsTextLength } from "../core/checkpoint_header.ts";
import { headerCap } from "../base/_json_bounds.ts";
import { paddedHeaderLength } from "../base/safetensors.ts";
import type { Settings } from "../base/settings.ts";
import { onWebGpu } from "./backend_choice.ts";
import { CpuPath } from "./cpu_path.ts";
import {
  changeError,
  type GradItem,
  type Matched,
  matchedTo,
  type NamedTensor,
} from "./gradients.ts";
import { besideStepped, checkSavableBeside, type SavedExtras } from "./checkpoint_extras.ts";
import { checkSavableUnder } from "../core/new_settings.ts";
import { GpuPath } from "./gpu_path.ts";
import { KeptStates } from "./kept.ts";
import type { Entry } from "./layout.ts";
import { weightsOf } from "./weights.ts";

/** An optimizer's paths, the state they hold, and the state kept aside. */
export class StatePaths {
  /** State kept aside (frozen variables, loaded weights), and the counts while no state. */
  readonly kept = new KeptStates();
  readonly cpu = new CpuPath(this.kept);
  /** The WebGPU path, used when tfjs runs on webgpu (see gpu_path.ts). */
  readonly gpu = new GpuPath(this.kept);
  /** Set when the state must be remade at the next step (new settings). */
  #stale = false;
  /**
   * The length of the JSON of the CPU state's checkpoint's header (with what is saved beside it,
   * before its padding) under settings whose text is `text` long, once planned (`checkSettings`).
   */
  #room: { state: OptimizerState<unknown>; text: number; json: number } | undefined;
  /** What the optimizer saves beside the state (sums, averages), counted when one is made. */
  readonly #saved: SavedExtras;

  /** Paths of an optimizer saving `saved` beside its state (default: nothing). */
  constructor(saved: SavedExtras = { steps: 1, averages: false }) {
    this.#saved = saved;
  }

  /** The state of the path holding one. */
  get state(): OptimizerState<unknown> | undefined {
    return this.gpu.state ?? this.cpu.state;
  }

  /** The variables of the state (that of the path holding it), in its order. */
  get entries(): readonly Entry[] {
    return this.gpu.state ? this.gpu.entries : this.cpu.entries;
  }

  /** New settings: the state goes under them at the next step (cpu_path.ts). */
  markStale(): void {
    this.#stale = true;
  }

  /**
   * Throws the RangeError the next step would throw, making the state on the CPU again under new
   * settings `config` (a learning rate whose digits lengthen its checkpoint's header), where a
   * checkpoint of it, with what is saved beside it at most, would pass the cap; so that new
   * settings are refused when they are given, nothing changed. (On the GPU, where they are not
   * taken, and where there is no state: nothing checked; the step that makes one checks it.)
   * A rate no longer in the header than the state's own (checked when it was made) is not
   * planned; nor, once one longer was, any other: the header's length under a rate is that under
   * the one planned, less or more the difference of their settings' texts (`settingsTextLength`),
   * a call whatever the number of variables. Only a refusal is planned again, for its words.
   */
  checkSettings(config: Settings): void {
    const state = this.cpu.state;
    if (state === undefined) return;
    const text = settingsTextLength(config);
    const room = this.#room?.state === state ? this.#room : undefined;
    if (room === undefined) {
      if (text <= settingsTextLength(coreOf(state).config)) return; // (checked when made)
    } else if (paddedHeaderLength(room.json + text - room.text) <= headerCap()) return;
    const json = checkSavableUnder(state, config, besideStepped(this.cpu.entries, this.#saved));
    this.#room = { state, text, json };
  }

  /**
   * One step over checked gradients `items`, on the path `config` and tfjs's backend choose;
   * with `makeOnly`, only the state made where there is none, over the variables of `items` (a
   * call that gradient accumulation summed: so that `saveState(optimizer.state)` can save the
   * sums before the first step, and after a `loadState` or `setWeights`). A state to be made
   * whose checkpoint's header, with the sums and averages saved beside it, would pass the cap is
   * refused first, with the RangeError of `init`'s check (checkpoint_extras.ts), nothing changed;
   * so is one made afresh in an order other than the state's (tfjs moved onto or off its wasm
   * heap, or to webgpu), whose header's offsets are others. Under `strict`, a CPU state moving to
   * the GPU over other variables is refused as on either path.
   */
  step(config: Settings, strict: boolean, items: readonly GradItem[], makeOnly = false): void {
    if (makeOnly && this.state !== undefined) return;
    const saved = this.#saved;
    // (Matched once, to the variables of the path holding the state: each part goes by it.)
    const match = matchedTo(this.entries, items);
    if (saved.steps > 1 || saved.averages) {
      // (A state to be made, stepped under new settings, or made afresh in another order than
      // its own: checked before it is, in the order it takes.)
      const taken = this.#inItsOrder(config, match);
      if (this.#stale || !match.same || taken !== match.items) {
        checkSavableBeside(config, taken, saved);
      }
    }
    if (onWebGpu(config)) {
      // (At the first step there: the state on the CPU, if any, moves to the GPU; where that
      // step fails, it stays.)
      if (this.gpu.state === undefined) {
        // (Option strict: a CPU state moving to the GPU over other variables, refused as there.)
        const cpu = this.cpu.state !== undefined;
        if (cpu && strict && !match.same) throw changeError(this.entries, match.items);
        const taken = () => this.gpu.state !== undefined;
        this.cpu.keptAsideFor(() => this.gpu.step(config, strict, match, makeOnly), taken);
      } else this.gpu.step(config, strict, match, makeOnly);
      this.#stale = false;
    } else {
      this.gpu.checkOffGpu();
      // New settings: the state goes under them at this step, on its arena where the variables
      // are its own; else made again (its moments kept, the same bits).
      const room = this.#room, was = this.cpu.state;
      const order = room !== undefined && room.state === was ? coreOf(was).order : undefined;
      this.cpu.step(config, strict, match, this.#stale, makeOnly);
      this.#stale = false;
      // (Stepped under the new settings, or made again, over the same variables in the same
      // order, the order of its file: its header is the same but for the settings' text.)
      const now = this.cpu.state;
      if (order !== undefined && now !== undefined && now !== was && match.same) {
        if (sameNames(coreOf(now).order, order)) room!.state = now;
      }
    }
  }

  /**
   * The gradients of `match` in the order of the state the step takes: the state's, where it is
   * stepped where it is or made again on its path; as given, where it is made afresh (none on
   * the path the step takes, or tfjs moved onto or off its wasm heap).
   */
  #inItsOrder(config: Settings, match: Matched): readonly GradItem[] {
    const fresh = onWebGpu(config) ? this.gpu.state === undefined : this.cpu.moves(config);
    return fresh ? match.given : match.items;
  }

  /**
   * After a call that summed its gradients and took no step: the state made where there is none
   * (before the first step, or after `loadState` or `setWeights`), so that `saveState(state)`
   * holds the sums. Where it cannot be made, nothing changes: the step will make it, or throw.
   */
  tryMake(config: Settings, strict: boolean, items: readonly GradItem[]): void {
    try {
      this.step(config, strict, items, true);
    } catch {
      // (The N-th call's step makes the state, or throws what refused it.)
    }
  }

  /**
   * The weights of the state and of what is kept aside (weights.ts), then `extra` (the
   * accumulator's, the averages': tensors it takes). Every read of the state starts in this call,
   * before its first await; a GPU state replaced meanwhile is kept until the read ends. Where the
   * read rejects, or a halt of a state replaced at a change is found, rejects with its error, no
   * tensor left behind (`extra` disposed); `live` is called after the read, rejected or not (to
   * throw the error of an optimizer disposed meanwhile, first).
   */
  async readWeights(
    config: Settings,
    extra: readonly NamedTensor[],
    live: () => void,
  ): Promise<NamedTensor[]> {
    const state = this.state;
    const read = weightsOf(config, state && { state, entries: this.entries }, this.kept);
    const weights = await (state === undefined ? read : this.gpu.reading(read)).catch(
      (error) => {
        tf.dispose(extra.map((w) => w.tensor));
        live();
        throw error;
      },
    ).then((read) => read.concat(extra));
    try {
      live(); // (disposed while the state was read: the tensors would have no owner)
      this.gpu.throwFault(); // (said once, as a state's)
    } catch (error) {
      tf.dispose(weights.map((w) => w.tensor));
      throw error;
    }
    return weights;
  }

  /** Drops the state; keeps `kept` aside instead, with these counts. */
  replace(kept: Parameters<KeptStates["replace"]>[0], steps: number, skipped: number): void {
    this.drop(true);
    this.kept.replace(kept, steps, skipped);
  }

  /** Drops the state and what is kept aside (a GPU state `afterReads` under way end). */
  drop(afterReads = false): void {
    this.cpu.drop();
    this.gpu.destroy(afterReads);
    this.kept.clear();
  }
}

/** Whether `a` and `b` hold the same names in the same order. */
function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((name, i) => name === b[i]));
}
