/**
 * The check that a loaded state is of the caller's model. Private to store/.
 *
 * @module
 */
import { CheckpointError, type Optimizer, type OptimizerState } from "../mod.ts";

/** What a loaded checkpoint must be: of this optimizer (by name), with these tensors. */
export interface ModelSpec {
  readonly optimizer: Optimizer;
  readonly tensors?: Readonly<Record<string, number>>;
}

/** Refuses a loaded state that is not of `options`' model, naming the store. */
export function checkModel(
  state: OptimizerState,
  options: ModelSpec,
  store: string,
): void {
  if (state.optimizer !== options.optimizer.name) {
    throw new CheckpointError(
      `Checkpoint ${store} is of another model: optimizer ${
        JSON.stringify(state.optimizer)
      }, expected ${JSON.stringify(options.optimizer.name)}`,
    );
  }
  if (options.tensors === undefined) return;
  const expected = Object.keys(options.tensors);
  for (const name of state.names) {
    if (!Object.hasOwn(options.tensors, name)) {
      throw new CheckpointError(
        `Checkpoint ${store} is of another model: it has a tensor ${
          JSON.stringify(name)
        }, expected only ${expected.map((n) => JSON.stringify(n)).join(", ")}`,
      );
    }
    const length = (state.params[name] as Float32Array).length;
    if (length !== options.tensors[name]) {
      throw new CheckpointError(
        `Checkpoint ${store} is of another model: tensor ${
          JSON.stringify(name)
        } has ${length} values, expected ${options.tensors[name]}`,
      );
    }
  }
  for (const name of expected) {
    if (!state.names.includes(name)) {
      throw new CheckpointError(
        `Checkpoint ${store} is of another model: it lacks the tensor ${JSON.stringify(name)}`,
      );
    }
  }
}
