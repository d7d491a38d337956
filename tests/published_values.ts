/**
 * Published values from another implementation's own test suite, reproduced through this API
 * (used by tests/training_loop_test.ts on wasm and js, and tests/gpu/webgpu_test.ts on WebGPU).
 *
 * Source: TensorFlow Addons, `tensorflow_addons/optimizers/tests/rectified_adam_test.py`
 * (github.com/tensorflow/addons, `run_dense_sample`): two tensors `[1, 2]` and `[3, 4]` with the
 * constant gradients `[0.1, 0.2]` and `[0.03, 0.04]`, stepped 100 times, then compared with
 * `np.testing.assert_allclose(..., atol=2e-4)`; that tolerance is kept here. TFA's RAdam
 * defaults: β = (0.9, 0.999), ε = 1e-7, SMA threshold 5, the un-rectified steps take the
 * bias-corrected momentum (our `degenerateToSgd: true`), and its `weight_decay` is decoupled
 * (`p −= lr · (update + wd · p)`). TFA adds ε to sqrt(v̂) where PyTorch (and this library) adds
 * it to sqrt(v); at these gradients the difference is below 1e-9. The sparse-gradient variants
 * of that file have no dense counterpart here, and its weight-decay schedule
 * (`test_schedulers`) has none either (weight decay is a constant), so they are not reproduced.
 *
 * @module
 */
import { lookahead, type Optimizer, radam } from "../mod.ts";

/** The file's `run_dense_sample` tolerance (absolute). */
export const TFA_ATOL = 2e-4;

/** One published case: the optimizer (built for a backend) and the expected tensors. */
export interface PublishedCase {
  name: string;
  make(backend: "wasm" | "js" | "webgpu"): Optimizer;
  expected: { a: number[]; b: number[] };
}

/** TFA's warmup schedule (`total_steps`, `warmup_proportion`, `min_lr`), at step t (1-based). */
function tfaWarmup(lr: number, total: number, proportion: number, minLr: number) {
  const warmup = total * proportion;
  const decay = total - warmup;
  return (t: number) =>
    t <= warmup ? lr * (t / warmup) : lr + (minLr - lr) * (Math.min(t - warmup, decay) / decay);
}

/** The dense cases of TFA's rectified_adam_test.py. */
export const TFA_CASES: readonly PublishedCase[] = [
  {
    name: "test_dense_sample: RectifiedAdam(lr=1e-3)",
    make: (backend) => radam({ lr: 1e-3, eps: 1e-7, backend }),
    expected: { a: [0.985769, 1.985269], b: [2.986119, 3.986068] },
  },
  {
    name: "test_dense_sample_with_weight_decay: RectifiedAdam(lr=1e-3, weight_decay=0.01)",
    make: (backend) =>
      radam({ lr: 1e-3, eps: 1e-7, weightDecay: 0.01, decoupledWeightDecay: true, backend }),
    expected: { a: [0.984775, 1.983276], b: [2.983125, 3.982076] },
  },
  {
    name:
      "test_dense_sample_with_warmup: RectifiedAdam(lr=1e-3, total_steps=100, warmup_proportion=0.1, min_lr=1e-5)",
    make: (backend) => radam({ lr: tfaWarmup(1e-3, 100, 0.1, 1e-5), eps: 1e-7, backend }),
    expected: { a: [0.994062, 1.993912], b: [2.994167, 3.994152] },
  },
  {
    name:
      "test_dense_sample_with_lookahead: Lookahead(RectifiedAdam(lr=1e-3, beta_1=0.95), sync_period=6, slow_step_size=0.45)",
    make: (backend) =>
      lookahead(radam({ lr: 1e-3, betas: [0.95, 0.999], eps: 1e-7, backend }), {
        k: 6,
        alpha: 0.45,
      }),
    expected: { a: [0.993126, 1.992901], b: [2.993283, 3.993261] },
  },
];

/** The case's parameters and its constant gradients. */
export function tfaSample(): {
  params: { a: Float32Array; b: Float32Array };
  grads: { a: Float32Array; b: Float32Array };
} {
  return {
    params: { a: new Float32Array([1, 2]), b: new Float32Array([3, 4]) },
    grads: { a: new Float32Array([0.1, 0.2]), b: new Float32Array([0.03, 0.04]) },
  };
}

/** The largest absolute difference between `actual` and the published values. */
export function tfaError(
  actual: Readonly<Record<string, Float32Array>>,
  expected: PublishedCase["expected"],
): number {
  let worst = 0;
  for (const k of ["a", "b"] as const) {
    expected[k].forEach((x, i) => worst = Math.max(worst, Math.abs(actual[k][i] - x)));
  }
  return worst;
}
