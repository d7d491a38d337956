/**
 * The settings of an optimizer: its options after defaults and validation, in one shape for
 * every rule (`Settings<H>`, `H` the rule's hyperparameters), and the hyperparameters every rule
 * has.
 *
 * @module
 */
import type {
  BackendChoice,
  LearningRate,
  NonFinitePolicy,
  ParamGroup,
  StatesFormat,
} from "./options.ts";

/**
 * The hyperparameters every rule resolves: what `settings.hyperparameters` holds for an optimizer
 * of any rule (each rule adds its own: {@linkcode RAdamHyperparameters} for `radam`).
 *
 * @example
 * ```ts
 * import { type CommonHyperparameters, lion, radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const all: CommonHyperparameters[] = [radam().settings.hyperparameters, lion().settings.hyperparameters];
 * assert.deepEqual(all.map((h) => h.weightDecay), [0, 0]);
 * ```
 */
export interface CommonHyperparameters {
  /** The learning rate, or the schedule given. */
  readonly lr: LearningRate;
  /** The weight-decay factor. */
  readonly weightDecay: number;
  /** Whether the objective is maximized. */
  readonly maximize: boolean;
}

/**
 * The settings in force of an optimizer (`optimizer.settings`): the options it was given with
 * the defaults filled in, validated, numbers as float64. Nested by what they control: the rule's
 * `hyperparameters` (what a checkpoint states; typed `H` per factory, e.g.
 * {@linkcode RAdamHyperparameters} for `radam`), how a state `run`s, the training-`loop`
 * features, and LookAhead's settings when wrapped. Frozen.
 *
 * @example
 * ```ts
 * import { radam, type Settings, type RAdamHyperparameters } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const settings: Settings<RAdamHyperparameters> = radam({ lr: 0.01 }).settings;
 * assert.equal(settings.rule, "adam");
 * assert.equal(settings.hyperparameters.eps * 2, 2e-8); // typed: no cast
 * assert.equal(settings.run.backend, "auto");
 * assert.equal(settings.loop.nonFinite, "skip");
 * ```
 */
export interface Settings<H = CommonHyperparameters> {
  /**
   * The optimizer's name, as checkpoints store it: `"radam"`, `"adam"`, `"adamw"`, `"lion"`,
   * `"sgd"`, `"ranger"`, or `"lookahead(<one of them but ranger>)"`.
   */
  readonly name: string;
  /**
   * The update rule it runs: `"adam"` (RAdam, Adam, AdamW and Ranger: one element loop whose
   * flags are their hyperparameters), `"lion"` or `"sgd"`.
   */
  readonly rule: string;
  /** The rule's hyperparameters, as its option schema resolves them (e.g. `beta1`, `beta2`). */
  readonly hyperparameters: Readonly<H>;
  /**
   * How a state is held and runs. Not stored as options in checkpoints: a checkpoint records the
   * format of the moments it holds, `loadState` resumes in that format unless given another
   * (`LoadOptions.states`), and on the backend and threads it is given.
   */
  readonly run: {
    /** The backend requested. */
    readonly backend: BackendChoice;
    /** Threads the wasm step may run on (1: single-threaded). */
    readonly threads: number;
    /** Parameters below which a threaded state stays on one thread. */
    readonly threadThreshold: number;
    /**
     * How the moments are held: `"32bit"`, or `"8bit"` (block-wise codes, docs/SPEC.md
     * "Compact states"). It changes the values computed (the moments are rounded to their codes
     * after each step), as the backend `"webgpu"` does, unlike `threads`.
     */
    readonly states: StatesFormat;
  };
  /** The training-loop features around the rule's step (docs/SPEC.md). */
  readonly loop: {
    /** Global-norm clipping threshold, or undefined when off. */
    readonly clipGradNorm: number | undefined;
    /** Policy for non-finite gradients. */
    readonly nonFinite: NonFinitePolicy;
    /** Whether gradients of rank > 1 tensors are centralized. */
    readonly gc: boolean;
    /** Parameter groups (may be empty), each with its lr scale and weight decay resolved. */
    readonly groups: readonly Required<ParamGroup>[];
  };
  /** LookAhead's settings, when wrapped by `lookahead` (and for `ranger`). */
  readonly lookahead?: { readonly k: number; readonly alpha: number };
}
