/**
 * A Deno data pipeline that learns online: records stream through a `TransformStream` that
 * trains a logistic-regression model with RAdam, one mini-batch at a time, and passes on a
 * progress report (running loss and accuracy) after each batch.
 *
 * Run: `deno run examples/online_pipeline.ts` (a synthetic stream; no permissions needed).
 *
 * @module
 */
import { radam, step } from "../mod.ts";

/** One labelled example. */
export interface LabelledRecord {
  features: Float32Array;
  label: 0 | 1;
}

/** What the trainer emits after each mini-batch. */
export interface TrainingReport {
  /** Records seen so far. */
  seen: number;
  /** Mean log-loss of the batch, measured before the model learned from it. */
  loss: number;
  /** Accuracy on the batch, before the model learned from it. */
  accuracy: number;
}

/** Options of {@linkcode onlineTrainer}. */
export interface TrainerOptions {
  /** Number of features per record. */
  features: number;
  /** Records per optimizer step. Default 32. */
  batchSize?: number;
  /** Learning rate. Default 0.05. */
  lr?: number;
}

/**
 * A stream stage that trains logistic regression on the records passing through it. The
 * weights and gradients live in the optimizer's arena; the gradient is accumulated straight
 * into the zero-copy slot `state.grads.w`, so a step copies nothing.
 */
export async function onlineTrainer(
  options: TrainerOptions,
): Promise<TransformStream<LabelledRecord, TrainingReport>> {
  const d = options.features, batchSize = options.batchSize ?? 32;
  // w[0..d-1] are the weights, w[d] the bias.
  let state = await radam({ lr: options.lr ?? 0.05 }).init({ w: new Float32Array(d + 1) });
  let inBatch = 0, seen = 0, lossSum = 0, correct = 0;
  return new TransformStream({
    transform(record, controller) {
      const w = state.params.w, g = state.grads.w;
      if (inBatch === 0) g.fill(0);
      let z = w[d];
      for (let j = 0; j < d; j++) z += w[j] * record.features[j];
      const p = 1 / (1 + Math.exp(-z));
      lossSum += -Math.log(record.label ? Math.max(p, 1e-12) : Math.max(1 - p, 1e-12));
      if ((p >= 0.5 ? 1 : 0) === record.label) correct++;
      const err = (p - record.label) / batchSize;
      for (let j = 0; j < d; j++) g[j] += err * record.features[j];
      g[d] += err;
      inBatch++;
      seen++;
      if (inBatch === batchSize) {
        state = step(state);
        controller.enqueue({ seen, loss: lossSum / inBatch, accuracy: correct / inBatch });
        inBatch = 0;
        lossSum = 0;
        correct = 0;
      }
    },
  });
}

/** A synthetic stream: labels from a fixed linear rule with 5% label noise. */
export function syntheticRecords(
  count: number,
  features: number,
  seed = 1,
): ReadableStream<LabelledRecord> {
  let a = seed >>> 0;
  const rand = () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 4294967296;
  };
  const truth = Float32Array.from(
    { length: features },
    (_, j) => (j % 2 ? 1 : -1) * (1 + j / features),
  );
  let produced = 0;
  return new ReadableStream({
    pull(controller) {
      if (produced === count) return controller.close();
      const x = Float32Array.from({ length: features }, () => rand() * 2 - 1);
      let z = 0.3;
      for (let j = 0; j < features; j++) z += truth[j] * x[j];
      const label = (z > 0) !== (rand() < 0.05) ? 1 : 0;
      controller.enqueue({ features: x, label });
      produced++;
    },
  });
}

if (import.meta.main) {
  const reports = syntheticRecords(20_000, 16).pipeThrough(await onlineTrainer({ features: 16 }));
  for await (const r of reports) {
    if (r.seen % 2048 === 0) {
      console.log(
        `seen ${r.seen}: loss ${r.loss.toFixed(3)}, accuracy ${(100 * r.accuracy).toFixed(1)}%`,
      );
    }
  }
}
