/**
 * The optimizers the study compares, each built through this library's public API and handed to
 * tfjs with `tfOptimizer`: Adam without warmup, Adam with a linear warmup of three lengths,
 * RAdam, Ranger, and Lion (at a tenth of the learning rate, as its authors advise).
 *
 * @module
 */
import { adam, linearWarmup, lion, type Optimizer, radam, ranger } from "../../mod.ts";

/** One optimizer of the comparison. */
export interface StudyOptimizer {
  /** Short id, used in files and flags. */
  readonly id: string;
  /** Name shown in tables and figures. */
  readonly label: string;
  /** Line colour in the figures. */
  readonly color: string;
  /** Steps of linear warmup (0: none). */
  readonly warmupSteps: number;
  /** The learning rate actually used at a sweep point `lr` (Lion takes `lr / 10`). */
  readonly lrAt: (lr: number) => number;
  /** Builds the optimizer for a run at sweep point `lr`. */
  readonly make: (lr: number) => Optimizer;
}

/** Warmup lengths of the "Adam + warmup" rows. */
export const WARMUP_LENGTHS = [10, 50, 200] as const;

const same = (lr: number) => lr;

function warmupRow(steps: number, color: string): StudyOptimizer {
  return {
    id: `adam-warmup-${steps}`,
    label: `Adam + warmup ${steps}`,
    color,
    warmupSteps: steps,
    lrAt: same,
    make: (lr) => adam({ lr: linearWarmup(lr, { warmupSteps: steps }) }),
  };
}

/** Every row of the comparison, in the order of tables and legends. */
export const STUDY_OPTIMIZERS: readonly StudyOptimizer[] = [
  {
    id: "adam",
    label: "Adam",
    color: "#1f77b4",
    warmupSteps: 0,
    lrAt: same,
    make: (lr) => adam({ lr }),
  },
  warmupRow(WARMUP_LENGTHS[0], "#9ecae1"),
  warmupRow(WARMUP_LENGTHS[1], "#2ca02c"),
  warmupRow(WARMUP_LENGTHS[2], "#17becf"),
  {
    id: "radam",
    label: "RAdam",
    color: "#d62728",
    warmupSteps: 0,
    lrAt: same,
    make: (lr) => radam({ lr }),
  },
  {
    id: "ranger",
    label: "Ranger",
    color: "#9467bd",
    warmupSteps: 0,
    lrAt: same,
    make: (lr) => ranger({ lr }),
  },
  {
    id: "lion",
    label: "Lion (lr ÷ 10)",
    color: "#8c564b",
    warmupSteps: 0,
    lrAt: (lr) => lr / 10,
    make: (lr) => lion({ lr: lr / 10 }),
  },
];

/** The row with this id. */
export function studyOptimizer(id: string): StudyOptimizer {
  const row = STUDY_OPTIMIZERS.find((o) => o.id === id);
  if (!row) throw new RangeError(`No optimizer ${JSON.stringify(id)} in the study`);
  return row;
}
