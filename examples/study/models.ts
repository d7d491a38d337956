/**
 * The study's two models, defined with tfjs-layers, with weights drawn from a seed:
 *
 * - **image**: a small convolutional net for 28×28 digits: conv 5×5, 8 filters, stride 2 (ReLU)
 *   → conv 3×3, 16 filters, stride 2 (ReLU) → dense 10 (softmax); 5 386 parameters. The
 *   convolutions are `conv3d` with kernels one voxel deep (see `tfjs_env.ts` for why).
 * - **language**: a character-level causal transformer block on 32 characters: a one-hot input
 *   embedded by a dense layer (32 wide), causal self-attention with learned positions and a
 *   residual, a ReLU feed-forward layer (64 wide) with a residual, and a softmax over the 50
 *   symbols at every position; 12 562 parameters.
 *
 * Both are sized so that the default study fits its time budget on two cores (a step takes
 * about 20 and 40 ms on tfjs-backend-wasm there).
 *
 * @module
 */
import { CausalSelfAttention } from "./attention.ts";
import { VOCABULARY_SIZE } from "./corpus.ts";
import { CLASSES, IMAGE_SIDE } from "./images.ts";
import { tfl } from "./tfjs_env.ts";

/** Characters per training sequence of the language model. */
export const CONTEXT = 32;
/** Width of the language model's embedding and attention. */
const WIDTH = 32;
/** Width of its feed-forward layer. */
const HIDDEN = 64;

/** The tasks of the study. */
export type TaskName = "image" | "language";

const glorot = (seed: number) => tfl.initializers.glorotUniform({ seed });
const he = (seed: number) => tfl.initializers.heNormal({ seed });

/** The image model, weights from `seed`. */
export function imageModel(seed: number): tfl.LayersModel {
  const s = seed * 64;
  return tfl.sequential({
    layers: [
      tfl.layers.conv3d({
        inputShape: [IMAGE_SIDE, IMAGE_SIDE, 1, 1],
        filters: 8,
        kernelSize: [5, 5, 1],
        strides: [2, 2, 1],
        activation: "relu",
        kernelInitializer: he(s + 1),
      }),
      tfl.layers.conv3d({
        filters: 16,
        kernelSize: [3, 3, 1],
        strides: [2, 2, 1],
        activation: "relu",
        kernelInitializer: he(s + 2),
      }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: CLASSES, activation: "softmax", kernelInitializer: glorot(s + 3) }),
    ],
  });
}

/** The language model, weights from `seed`. */
export function languageModel(seed: number): tfl.LayersModel {
  const s = seed * 64;
  const input = tfl.input({ shape: [CONTEXT, VOCABULARY_SIZE] });
  const embedded = tfl.layers.dense({
    units: WIDTH,
    useBias: false,
    kernelInitializer: glorot(s + 1),
  }).apply(input) as tfl.SymbolicTensor;
  const attended = new CausalSelfAttention({ length: CONTEXT, seed: s + 2 })
    .apply(embedded) as tfl.SymbolicTensor;
  const hidden = tfl.layers.dense({
    units: HIDDEN,
    activation: "relu",
    kernelInitializer: he(s + 3),
  }).apply(attended) as tfl.SymbolicTensor;
  const back = tfl.layers.dense({ units: WIDTH, kernelInitializer: glorot(s + 4) })
    .apply(hidden) as tfl.SymbolicTensor;
  const summed = tfl.layers.add().apply([attended, back]) as tfl.SymbolicTensor;
  const output = tfl.layers.dense({
    units: VOCABULARY_SIZE,
    activation: "softmax",
    kernelInitializer: glorot(s + 5),
  }).apply(summed) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: output });
}

/** The model of `task`. */
export function modelFor(task: TaskName, seed: number): tfl.LayersModel {
  return task === "image" ? imageModel(seed) : languageModel(seed);
}
