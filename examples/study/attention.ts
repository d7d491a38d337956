/**
 * A causal self-attention layer for tfjs-layers (one head, learned positions, a residual
 * connection): `x + softmax(mask(QKᵀ/√d)) V Wₒ` with `x` the input plus the position table.
 *
 * tfjs-layers 4.22 has no attention layer; this one is built from tfjs-core ops inside a
 * `Layer` subclass, so that tfjs-layers owns its weights and `model.fit` trains them.
 *
 * @module
 */
import { tf, tfl } from "./tfjs_env.ts";

/** Options of {@linkcode CausalSelfAttention}. */
export interface AttentionOptions {
  /** Sequence length (the positions learned). */
  readonly length: number;
  /** Seed of the weights' initializers. */
  readonly seed: number;
  readonly name?: string;
}

/** One head of causal self-attention with learned positions and a residual connection. */
export class CausalSelfAttention extends tfl.layers.Layer {
  /** tfjs's class name (for serialization). */
  static className = "CausalSelfAttention";
  readonly #length: number;
  readonly #seed: number;
  #weights: tfl.LayerVariable[] = [];
  #mask: tf.Tensor | undefined;

  constructor(options: AttentionOptions) {
    super({ name: options.name });
    this.#length = options.length;
    this.#seed = options.seed;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const d = (inputShape as number[])[2];
    const glorot = (k: number) => tfl.initializers.glorotUniform({ seed: this.#seed * 16 + k });
    this.#weights = ["query", "key", "value", "output"].map((name, k) =>
      this.addWeight(name, [d, d], "float32", glorot(k))
    );
    this.#weights.push(
      this.addWeight(
        "position",
        [this.#length, d],
        "float32",
        tfl.initializers.randomNormal({ stddev: 0.1, seed: this.#seed * 16 + 4 }),
      ),
    );
    const n = this.#length;
    // -1e9 above the diagonal: position i attends to positions 0..i only.
    this.#mask = tf.keep(
      tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([n, n]), -1, 0)), -1e9)),
    );
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [wq, wk, wv, wo, position] = this.#weights.map((w) => w.read());
      const x = tf.add(Array.isArray(inputs) ? inputs[0] : inputs, position);
      const [b, t, d] = x.shape;
      const flat = tf.reshape(x, [-1, d]);
      const project = (w: tf.Tensor) => tf.reshape(tf.matMul(flat, w), [b, t, d]);
      const scores = tf.add(
        tf.mul(tf.matMul(project(wq), project(wk), false, true), 1 / Math.sqrt(d)),
        this.#mask!,
      );
      const mixed = tf.matMul(tf.softmax(scores), project(wv));
      return tf.add(x, tf.reshape(tf.matMul(tf.reshape(mixed, [-1, d]), wo), [b, t, d]));
    });
  }

  override dispose(): ReturnType<tfl.layers.Layer["dispose"]> {
    this.#mask?.dispose();
    this.#mask = undefined;
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), length: this.#length, seed: this.#seed };
  }
}
