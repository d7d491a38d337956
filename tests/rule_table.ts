/**
 * The table of rules the suites iterate: one row per rule, with its optimizers, the arbitrary of
 * its random options, its float64 reference step (docs/SPEC.md, written from the published
 * formulas, sharing no code with the library), hand-computed values, and what its defaults and
 * bad options must give. The CPU suite (tests/rules_test.ts: wasm = js = threads, the reference,
 * checkpoints), the GPU suite (tests/gpu/rules_test.ts) and the TensorFlow.js suite
 * (tests/tfjs/rules_test.ts) run every row. A new rule adds its row here.
 */
import fc from "fast-check";
import {
  adam,
  adamw,
  type BackendChoice,
  lion,
  type Optimizer,
  radam,
  sgd,
  type StatesFormat,
} from "../mod.ts";
import {
  type AdamConfig,
  emptyStep,
  ETA,
  K,
  refAdamStep,
  type RefState,
  type RefStep,
  U,
} from "./reference.ts";

/**
 * The formats of the moments every CPU suite, and the WebGPU reference suite
 * (tests/gpu/rules_test.ts), runs each rule in (option `states`): 8-bit moments are compared
 * with the same float64 reference, within one code step (tests/cases.ts).
 */
export const FORMATS: readonly StatesFormat[] = ["32bit", "8bit"];

/** A random case's rule part: one of the row's optimizers, and its options (`lr` included). */
export interface RuleCase {
  readonly optimizer: string;
  readonly options: Readonly<Record<string, unknown>>;
}

/**
 * One step of a rule's float64 reference from `s` with gradient `grad`, at step `t` (1-based) and
 * learning rate `lr`, with a bound per element on how far an f32 implementation started from `s`
 * may stray (`gradErr`: the error it may already carry in its gradient; `k`: roundings allowed
 * per quantity).
 */
export type ReferenceStep = (
  s: RefState,
  grad: ArrayLike<number>,
  t: number,
  lr: number,
  gradErr?: ArrayLike<number>,
  k?: number,
) => RefStep;

/** Values worked out by hand from the rule's published algorithm. */
export interface Vector {
  readonly name: string;
  /** The optimizer and its options, every one the reference reads; `lookahead` wraps it. */
  readonly case: RuleCase;
  readonly lookahead?: { readonly k: number; readonly alpha: number };
  readonly params: readonly number[];
  /** The gradient of each step. */
  readonly grads: readonly (readonly number[])[];
  /** The parameters, and the moments by name, after the last step. */
  readonly expected: {
    readonly params: readonly number[];
    readonly moments?: Readonly<Record<string, readonly number[]>>;
  };
  /** Whether they are the f32 results the CPU kernels compute, bit for bit (else within 1e-6). */
  readonly exact?: boolean;
}

/** A rule of the table. */
export interface RuleRow {
  /** The rule's name (`settings.rule`). */
  readonly rule: string;
  /** Its optimizers' factories, by name (the first one's defaults are checked below). */
  // deno-lint-ignore no-explicit-any
  readonly optimizers: Readonly<Record<string, (options?: any) => Optimizer<any>>>;
  /** Random cases (`features`: options some backends' plain suites leave out, e.g. Nesterov). */
  cases(features: boolean): fc.Arbitrary<RuleCase>;
  /** The reference step of a case (`weightDecay`: a parameter group's, else the case's). */
  reference(c: RuleCase, weightDecay?: number): ReferenceStep;
  /** The moments a case's optimizer keeps, in order (they may depend on its options). */
  moments(c: RuleCase): readonly string[];
  /** The hyperparameters a checkpoint of the first optimizer with its defaults stores. */
  readonly stored: Readonly<Record<string, unknown>>;
  /** A representative case (the GPU and TensorFlow.js suites' fixed runs). */
  readonly example: RuleCase;
  /** Bad options: the call, the error it throws and its message. */
  readonly invalid: readonly (readonly [() => unknown, ErrorConstructor, RegExp])[];
  readonly vectors: readonly Vector[];
}

/** The optimizer of a case on `backend`, with `more` options. */
export function optimizerOf(
  row: RuleRow,
  c: RuleCase,
  backend: BackendChoice,
  more: Readonly<Record<string, unknown>> = {},
  // deno-lint-ignore no-explicit-any
): Optimizer<any> {
  return row.optimizers[c.optimizer]({ ...c.options, backend, ...more });
}

/**
 * A double in [min, max], where values below 1e-30 become exactly 0: hyperparameters that
 * would round to a subnormal or zero f32 are a representation corner, not a kernel property.
 */
export function real(min: number, max: number): fc.Arbitrary<number> {
  return fc.double({ min, max, noNaN: true }).map((x) => (x < 1e-30 ? 0 : x));
}

/** β2: never rectified (ρ∞ ≤ 4), ordinary, and near 1. */
const beta2Arb = fc.oneof(real(0, 0.6), real(0.6, 0.99), fc.constantFrom(0.999, 0.9999, 1 - 1e-6));

const f = Math.fround;

// ---------------------------------------------------------------------------------------------
// RAdam, Adam, AdamW (PyTorch's torch.optim semantics)

/** The reference configuration of an RAdam, Adam or AdamW case. */
export function adamConfig(c: RuleCase, weightDecay?: number): AdamConfig {
  const o = c.options as Record<string, number & boolean & [number, number]>;
  return {
    kind: c.optimizer === "radam" ? "radam" : "adam",
    beta1: o.betas[0],
    beta2: o.betas[1],
    eps: o.eps ?? 0,
    weightDecay: weightDecay ?? o.weightDecay,
    decoupled: c.optimizer === "adamw"
      ? (o.decoupledWeightDecay ?? true)
      : !!o.decoupledWeightDecay,
    maximize: !!o.maximize,
    threshold: o.threshold ?? 5,
    degenerateToSgd: o.degenerateToSgd ?? true,
    nesterov: !!o.nesterov,
  };
}

export const ADAM_ROW: RuleRow = {
  rule: "adam",
  optimizers: { radam, adam, adamw },
  cases: (features) =>
    fc.record({
      optimizer: fc.constantFrom("radam", "adam", "adamw"),
      options: fc.record({
        lr: fc.oneof(fc.constant(0), real(1e-5, 0.1)),
        betas: fc.tuple(fc.oneof(fc.constant(0), real(0, 0.99)), beta2Arb),
        eps: fc.constantFrom(0, 1e-12, 1e-8, 1e-5, 1e-3),
        weightDecay: fc.oneof(fc.constant(0), real(0, 0.1)),
        decoupledWeightDecay: fc.boolean(),
        maximize: fc.boolean(),
        threshold: fc.constantFrom(4, 5, 6, 8, 20),
        degenerateToSgd: fc.boolean(),
        nesterov: features ? fc.boolean() : fc.constant(false),
      }),
    }).map(({ optimizer, options }) => {
      // Rectification is RAdam's: Adam and AdamW take none of its options.
      const { threshold, degenerateToSgd, nesterov, ...adamOptions } = options;
      return optimizer === "radam"
        ? { optimizer, options: { ...adamOptions, threshold, degenerateToSgd, nesterov } }
        : { optimizer, options: adamOptions };
    }),
  reference: (c, weightDecay) => (s, grad, t, lr, gradErr, k) =>
    refAdamStep(adamConfig(c, weightDecay), s, grad, t, lr, gradErr, k),
  moments: () => ["exp_avg", "exp_avg_sq"],
  stored: {
    lr: 1e-3,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: 0,
    decoupledWeightDecay: false,
    maximize: false,
    threshold: 5,
    degenerateToSgd: true,
    nesterov: false,
    gc: false,
  },
  example: { optimizer: "radam", options: { lr: 1e-2, weightDecay: 1e-2 } },
  invalid: [
    [() => adam({ threshold: 5 } as unknown as object), TypeError, /Unknown option threshold/],
    [() => radam({ threshold: 3 }), RangeError, /threshold must be ≥ 4/],
  ],
  vectors: [{
    name: "Adam's first step moves each weight by lr against its gradient",
    case: {
      optimizer: "adam",
      options: { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 },
    },
    params: [1, -1],
    grads: [[0.5, -0.5]],
    // m̂ = g, v̂ = g²: p − lr · g / (|g| + eps·…), ≈ lr in each coordinate
    expected: {
      params: [1 - 1e-3 * 0.5 / (0.5 + 1e-8), -1 + 1e-3 * 0.5 / (0.5 + 1e-8)],
      moments: { exp_avg: [0.05, -0.05], exp_avg_sq: [0.001 * 0.25, 0.001 * 0.25] },
    },
  }],
};

// ---------------------------------------------------------------------------------------------
// Lion (Chen et al. 2023; optax `lion`, lion-pytorch)

/**
 * One Lion step: `c = β1 m + (1 − β1) g`, `p = p (1 − lr wd) − lr sign(c)` (sign(0) = 0),
 * `m = β2 m + (1 − β2) g`. Where `c` is within its own error bound of 0 (but not exactly 0 from
 * m = g = 0), an f32 implementation may take any of sign −1, 0, 1: the bound of `p` then allows
 * `lr` either way.
 */
function refLionStep(
  o: { betas: readonly [number, number]; weightDecay: number; maximize?: boolean },
  s: RefState,
  grad: ArrayLike<number>,
  lr: number,
  gradErr: ArrayLike<number> | undefined,
  k: number = K,
): RefStep {
  const n = s.p.length;
  const out = emptyStep(n);
  out.rectified = true;
  const [b1, b2] = o.betas, wd = o.weightDecay;
  const e = k * U;
  for (let i = 0; i < n; i++) {
    const p = s.p[i], m = s.m[i];
    const g = o.maximize ? -grad[i] : grad[i];
    const ge = gradErr ? gradErr[i] : 0;
    const interp = b1 * m + (1 - b1) * g;
    const ec = e * (b1 * Math.abs(m) + (1 - b1) * Math.abs(g)) + (1 - b1) * ge + k * ETA;
    out.m[i] = b2 * m + (1 - b2) * g;
    out.tolM[i] = e * (b2 * Math.abs(m) + (1 - b2) * Math.abs(g)) + (1 - b2) * ge + k * ETA;
    const decayed = p * (1 - lr * wd);
    // c is exactly 0 in f32 too where m and g are (no rounding error to blur the sign).
    const exactZero = m === 0 && g === 0 && ge === 0;
    const sure = exactZero || Math.abs(interp) > ec;
    const sign = sure && !exactZero ? Math.sign(interp) : 0;
    out.p[i] = decayed - lr * sign;
    out.tolP[i] = e * (Math.abs(decayed) + lr) + (sure ? 0 : lr) + k * ETA;
  }
  return out;
}

export const LION_ROW: RuleRow = {
  rule: "lion",
  optimizers: { lion },
  cases: () =>
    fc.record({
      optimizer: fc.constant("lion"),
      options: fc.record({
        lr: fc.oneof(fc.constant(0), real(1e-6, 0.01)),
        betas: fc.tuple(fc.oneof(fc.constant(0), real(0, 0.99)), beta2Arb),
        weightDecay: fc.oneof(fc.constant(0), real(0, 1)),
        maximize: fc.boolean(),
      }),
    }),
  reference: (c, weightDecay) => (s, grad, _t, lr, gradErr, k) => {
    const o = c.options as { betas: [number, number]; weightDecay: number; maximize: boolean };
    return refLionStep(
      { ...o, weightDecay: weightDecay ?? o.weightDecay },
      s,
      grad,
      lr,
      gradErr,
      k,
    );
  },
  moments: () => ["exp_avg"],
  stored: { lr: 1e-4, betas: [0.9, 0.99], weightDecay: 0, maximize: false, gc: false },
  example: { optimizer: "lion", options: { lr: 3e-3, weightDecay: 0.1 } },
  invalid: [
    [() => lion({ lr: -1 }), RangeError, /lr must be ≥ 0/],
    [() => lion({ betas: [1, 0.99] }), RangeError, /betas\[0\]/],
    [() => lion({ weightDecay: NaN }), RangeError, /weightDecay/],
    [() => lion({ eps: 1e-8 } as unknown as object), TypeError, /Unknown option eps for lion/],
  ],
  vectors: [{
    name: "sign(0) = 0, decoupled decay, the first step's exact values",
    case: { optimizer: "lion", options: { lr: 0.01, betas: [0.9, 0.99], weightDecay: 0.5 } },
    params: [1, -2, 3, 0.5, 7],
    grads: [[0.25, 0.5, 0, -1, 0]],
    // c = (1 − β1)·g: p·(1 − lr·wd) − lr·sign(g); m = (1 − β2)·g
    expected: {
      params: [1, -2, 3, 0.5, 7].map((p, i) =>
        f(f(p * f(1 - 0.005)) - f(0.01) * [1, 1, 0, -1, 0][i])
      ),
      moments: { exp_avg: [0.25, 0.5, 0, -1, 0].map((g) => f(f(1 - 0.99) * g)) },
    },
    exact: true,
  }, {
    name: "maximize climbs: the same step with the sign reversed",
    case: {
      optimizer: "lion",
      options: { lr: 0.01, betas: [0.9, 0.99], weightDecay: 0, maximize: true },
    },
    params: [1],
    grads: [[0.25]],
    expected: { params: [f(1 + f(0.01))] },
    exact: true,
  }, {
    name: "lookahead(lion()) syncs every k steps",
    case: { optimizer: "lion", options: { lr: 0.1, betas: [0.9, 0.99], weightDecay: 0 } },
    lookahead: { k: 2, alpha: 0.5 },
    params: [1],
    grads: [[1], [1]],
    // p1 = 1 − lr, p2 = p1 − lr, then slow = 1 + α (p2 − 1) = p
    expected: { params: [f(1 + f(0.5 * f(f(f(1 - f(0.1)) - f(0.1)) - 1)))] },
    exact: true,
  }],
};

// ---------------------------------------------------------------------------------------------
// SGD with momentum (PyTorch's torch.optim.SGD)

/** SGD's options, as the reference reads them. */
interface SgdConfig {
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

/**
 * One SGD step, as PyTorch's documented algorithm: `g = ∇ + λθ`; with momentum μ, `b = g` at
 * step 1, else `b = μ b + (1 − τ) g`, and `g = g + μ b` (Nesterov) or `g = b`; `θ = θ − γ g`.
 * `maximize` negates the gradient first (PyTorch's implementation; its pseudo-code flips the
 * sign of the update at the end, which differs only with weight decay).
 */
function refSgdStep(
  c: SgdConfig,
  s: RefState,
  grad: ArrayLike<number>,
  t: number,
  lr: number,
  gradErr?: ArrayLike<number>,
  k: number = K,
): RefStep {
  const n = s.p.length;
  const out = emptyStep(n);
  out.rectified = true;
  const { momentum: mu, dampening: tau, weightDecay: wd } = c;
  const e = k * U;
  for (let i = 0; i < n; i++) {
    const p = s.p[i];
    let g = c.maximize ? -grad[i] : grad[i];
    let gAbs = Math.abs(g);
    if (wd !== 0) {
      g = g + wd * p;
      gAbs += wd * Math.abs(p);
    }
    const eg = e * gAbs + k * ETA + (gradErr ? gradErr[i] : 0);
    let d = g, ed = eg;
    if (mu !== 0) {
      const b = t === 1 ? g : mu * s.m[i] + (1 - tau) * g;
      const eb = t === 1 ? eg : e * (mu * Math.abs(s.m[i]) + (1 - tau) * gAbs) + (1 - tau) * eg +
        k * ETA;
      out.m[i] = b;
      out.tolM[i] = eb;
      d = c.nesterov ? g + mu * b : b;
      ed = c.nesterov ? eg + mu * eb + e * (Math.abs(g) + mu * Math.abs(b)) : eb;
    }
    out.p[i] = p - lr * d;
    // k · ETA · |d|: an lr that is an f32 subnormal is rounded by an absolute ETA / 2.
    out.tolP[i] = e * (Math.abs(p) + lr * Math.abs(d)) + lr * ed + k * ETA * (1 + Math.abs(d));
  }
  return out;
}

export const SGD_ROW: RuleRow = {
  rule: "sgd",
  optimizers: { sgd },
  cases: (features) =>
    fc.record({
      lr: fc.oneof(fc.constant(0), real(1e-5, 0.1)),
      momentum: fc.oneof(fc.constant(0), fc.constantFrom(0.5, 0.9, 0.99), real(0.01, 0.99)),
      dampening: fc.oneof(fc.constant(0), fc.constantFrom(0.1, 0.5, 1), real(0, 1)),
      weightDecay: fc.oneof(fc.constant(0), real(0, 0.1)),
      nesterov: features ? fc.boolean() : fc.constant(false),
      maximize: fc.boolean(),
    }).map((o) => ({
      optimizer: "sgd",
      // Nesterov needs momentum and no dampening.
      options: o.nesterov && o.momentum > 0 ? { ...o, dampening: 0 } : { ...o, nesterov: false },
    })),
  reference: (c, weightDecay) => (s, grad, t, lr, gradErr, k) => {
    const o = c.options as Partial<SgdConfig>;
    const config: SgdConfig = {
      momentum: o.momentum ?? 0,
      dampening: o.dampening ?? 0,
      weightDecay: weightDecay ?? o.weightDecay ?? 0,
      nesterov: !!o.nesterov,
      maximize: !!o.maximize,
    };
    return refSgdStep(config, s, grad, t, lr, gradErr, k);
  },
  moments: (c) => (c.options.momentum ?? 0) === 0 ? [] : ["momentum_buffer"],
  stored: {
    lr: 1e-3,
    momentum: 0,
    dampening: 0,
    weightDecay: 0,
    nesterov: false,
    maximize: false,
    gc: false,
  },
  example: { optimizer: "sgd", options: { lr: 0.05, momentum: 0.9 } },
  invalid: [
    [() => sgd({ momentum: -0.1 }), RangeError, /Option momentum must be ≥ 0, got -0.1/],
    [() => sgd({ dampening: 1.5 }), RangeError, /Option dampening must be ≥ 0 and ≤ 1/],
    [() => sgd({ nesterov: true }), RangeError, /nesterov must be false with momentum 0/],
    [
      () => sgd({ momentum: 0.9, dampening: 0.1, nesterov: true }),
      RangeError,
      /Nesterov needs momentum > 0 and dampening 0/,
    ],
    [() => sgd({ betas: [0.9, 0.99] } as unknown as object), TypeError, /Unknown option betas/],
  ],
  vectors: [{
    // b1 = g1 = ∇ + λθ (not (1 − τ)·g1), then b = μb + (1 − τ)g; θ −= γ b
    name: "momentum, dampening and L2 decay: three steps of PyTorch's algorithm",
    case: {
      optimizer: "sgd",
      options: { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 },
    },
    params: [1, -2],
    grads: [[0.5, 1], [0.25, -1], [-0.5, 0.5]],
    expected: {
      params: [0.86162543869, -2.13410753938],
      moments: { momentum_buffer: [0.1812046131, 0.3979573938] },
    },
  }, {
    name: "Nesterov: the step uses g + μ·b",
    case: { optimizer: "sgd", options: { lr: 0.1, momentum: 0.9, nesterov: true } },
    params: [1],
    grads: [[1], [1]],
    // b = 1, θ = 1 − 0.1·1.9; b = 0.9 + 1, θ = 0.81 − 0.1·(1 + 0.9·1.9)
    expected: { params: [0.539], moments: { momentum_buffer: [1.9] } },
  }, {
    name: "the first step sets the buffer to the gradient, undamped",
    case: { optimizer: "sgd", options: { lr: 1, momentum: 0.5, dampening: 0.5 } },
    params: [0],
    grads: [[2]],
    expected: { params: [-2], moments: { momentum_buffer: [2] } },
    exact: true,
  }, {
    name: "no momentum, maximize: the gradient is negated before the L2 decay is added",
    case: { optimizer: "sgd", options: { lr: 0.5, weightDecay: 0.1, maximize: true } },
    params: [2],
    grads: [[1]],
    // g = −1 + 0.1·2 = −0.8: θ = 2 + 0.4
    expected: { params: [2.4], moments: {} },
  }],
};

/** Every rule, in the registry's order. */
export const RULE_TABLE: readonly RuleRow[] = [ADAM_ROW, LION_ROW, SGD_ROW];
