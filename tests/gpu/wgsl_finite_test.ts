/**
 * The WebGPU kernels' tests for NaN and infinities, read from the generated WGSL (no device
 * needed). WGSL lets an implementation assume that float arithmetic yields no infinity or NaN
 * (https://www.w3.org/TR/WGSL/#floating-point-evaluation: an overflow may give an indeterminate
 * value), and real GPU compilers (Tint, naga, the drivers below them) fold float tests on that
 * assumption. So every finiteness test (the bits of a float against the exponent mask) must be
 * of a value as stored in a buffer, not of the result of float arithmetic (a sum tested for
 * overflow after the fact), and the clipping decision must not compare a norm that may have
 * overflowed. llvmpipe follows IEEE-754, so the behaviour of a folded test cannot be seen there:
 * this reads the code.
 */
import assert from "node:assert/strict";
import { ADAM } from "../../rules/adam.ts";
import { LION } from "../../rules/lion.ts";
import { SGD } from "../../rules/sgd.ts";
import type { Rule } from "../../base/rule.ts";
import {
  CENTRALIZE,
  CENTRALIZE_NARROW,
  DECIDE,
  GRAD_NORM_PARTIAL,
  GRAD_NORM_TOTAL,
  stepKernels,
} from "../../gpu/wgsl_kernel.ts";
import { compactKernel } from "../../gpu/wgsl_compact.ts";

/** Every kernel's WGSL, by name. */
const KERNELS: Record<string, string> = {
  centralize: CENTRALIZE.code,
  centralize_narrow: CENTRALIZE_NARROW.code,
  decide: DECIDE.code,
  norm_partial: GRAD_NORM_PARTIAL.code,
  norm_total: GRAD_NORM_TOTAL.code,
};
for (const rule of [ADAM, LION, SGD]) {
  KERNELS[`${rule.name} step`] = stepKernels(rule).step.code;
  KERNELS[`${rule.name} compact`] = compactKernel(rule).code;
}

/**
 * Functions whose finiteness test is of a value they store (not a decision made on a passing
 * result): the 8-bit codes' block scale, from the largest new moment's bits, which reads only the
 * finite values (its NaN and infinities are the rule's specials, as bits). (Lion's sign was one:
 * it tested the bits of its interpolation `c`, a sum, which a compiler may assume is no NaN; it
 * now tells `c`'s class from the parameters, moments and gradients as stored.)
 */
const STORES_WHAT_IT_TESTS = new Set(["top_bits"]);

/**
 * Functions that read a float's bits only to carry it (centralization's row sum, through
 * workgroup memory, turned back to the float it was), testing nothing of them.
 */
const CARRIES_BITS = new Set(["row_sum"]);

/** The functions of a WGSL module: name → parameters and body. */
function functionsOf(
  code: string,
): Map<string, { params: string[] & { types: Map<string, string> }; body: string }> {
  const out = new Map<
    string,
    { params: string[] & { types: Map<string, string> }; body: string }
  >();
  const head = /\bfn\s+(\w+)\s*\(([^)]*)\)[^{]*\{/g;
  for (let m; (m = head.exec(code));) {
    const i = closing(code, head.lastIndex, "{", "}");
    const declared = splitArgs(m[2]).filter(Boolean).map((p) => p.split(":").map((x) => x.trim()));
    const params = Object.assign(declared.map(([name]) => name), {
      types: new Map(declared.map(([name, type]) => [name, type ?? ""])),
    });
    out.set(m[1], { params, body: code.slice(head.lastIndex, i) });
  }
  return out;
}

/** The index just past the bracket closing the one opened before `from`. */
function closing(text: string, from: number, open: string, close: string): number {
  let depth = 1, i = from;
  for (; depth > 0 && i < text.length; i++) {
    if (text[i] === open) depth++;
    else if (text[i] === close) depth--;
  }
  return i;
}

/**
 * Whether an expression is a value as stored: a load, a select of one and a constant, or 8-bit
 * codes decoded with their stored scale (`decode_signed(m_codes[i], scales[b])`: finite values
 * times the scale, NaN as the scale's bits where it is NaN).
 */
function stored(expr: string): boolean {
  const e = expr.trim();
  if (/^[\w.]+\[[^\]]+\](\.\w+)?$/.test(e)) return true; // a load: g[i], all_partials[k].sum
  const decode = /^decode_(?:un)?signed\((.*)\)$/.exec(e);
  if (decode) return splitArgs(decode[1]).every(stored);
  if (/^(vec4<f32>\()?0\.0\)?$/.test(e)) return true; // a zero
  const sel = /^select\((.*)\)$/.exec(e);
  return !!sel && splitArgs(sel[1]).slice(0, 2).every(stored);
}

/**
 * The top-level arguments of a call's argument text (a `<` or `>` right after a name is a type's
 * bracket, `vec4<u32>`; one after a space a comparison or a shift).
 */
function splitArgs(text: string): string[] {
  const out: string[] = [];
  let depth = 0, from = 0, closedAt = -2;
  for (let i = 0; i < text.length; i++) {
    const typed = /\w/.test(text[i - 1] ?? " ") || closedAt === i - 1;
    if ("([".includes(text[i]) || (text[i] === "<" && typed)) depth++;
    else if (")]".includes(text[i])) depth--;
    else if (text[i] === ">" && typed) {
      depth--;
      closedAt = i;
    } else if (text[i] === "," && depth === 0) {
      out.push(text.slice(from, i));
      from = i + 1;
    }
  }
  return [...out, text.slice(from)].map((a) => a.trim());
}

/**
 * Where the value `name` in function `fn` may come from that is not a value as stored: each
 * assignment of a local, or each call's argument for a parameter, followed to its origin.
 */
function unstoredOrigins(code: string, fn: string, name: string, seen = new Set<string>()) {
  const key = `${fn}:${name}`;
  if (seen.has(key)) return [];
  seen.add(key);
  const fns = functionsOf(code);
  const f = fns.get(fn)!;
  const bad: string[] = [];
  const index = f.params.indexOf(name);
  if (index >= 0) {
    for (const [caller, g] of fns) {
      const call = new RegExp(`\\b${fn}\\(`, "g");
      while (call.exec(g.body)) {
        const i = closing(g.body, call.lastIndex, "(", ")");
        const arg = splitArgs(g.body.slice(call.lastIndex, i - 1))[index];
        if (/^\w+$/.test(arg)) bad.push(...unstoredOrigins(code, caller, arg, seen));
        else if (!stored(arg)) bad.push(`${caller}: ${fn}(…${arg}…)`);
      }
    }
    return bad;
  }
  const escaped = name.replaceAll(".", "\\.");
  const assign = new RegExp(
    `(?:\\b(?:let|var)\\s+)?\\b${escaped}\\s*(?::[^=]+)?=([^=;][^;]*);`,
    "g",
  );
  for (let m; (m = assign.exec(f.body));) {
    if (!stored(m[1])) bad.push(`${fn}: ${name} = ${m[1].trim()}`);
  }
  return bad;
}

Deno.test("webgpu kernels: every NaN or infinity test is of a value as stored, not of an arithmetic result", () => {
  const found: string[] = [];
  let tests = 0;
  for (const [kernel, code] of Object.entries(KERNELS)) {
    for (const [fn, { params, body }] of functionsOf(code)) {
      // Each float any function reads as integer bits (a parameter declared of an integer type is
      // bits already).
      for (const m of body.matchAll(/bitcast<(?:vec4<)?[ui]32>?>\(([\w.]+)\)/g)) {
        if (/^(?:vec4<)?[ui]32>?$/.test(params.types.get(m[1]) ?? "")) continue;
        tests++;
        if (STORES_WHAT_IT_TESTS.has(fn) || CARRIES_BITS.has(fn)) continue;
        found.push(...unstoredOrigins(code, fn, m[1]).map((o) => `${kernel}: ${o}`));
      }
    }
  }
  assert.ok(tests >= 10, `only ${tests} finiteness tests found: has the WGSL changed shape?`);
  assert.deepEqual([...new Set(found)], []);
});

Deno.test("webgpu kernels: the clipping decision compares the norm with max by exponent and fraction, never a norm that may have overflowed", () => {
  for (const [kernel, code] of Object.entries(KERNELS)) {
    const compares = code.match(/[<>]=?\s*s\.clip_max\b|\bs\.clip_max\s*[<>]/g);
    assert.equal(compares, null, `${kernel} compares with s.clip_max: ${compares}`);
  }
});

Deno.test("webgpu kernels: no infinity or NaN is a constant expression (Tint, in browsers, refuses the whole module)", () => {
  const constant = /bitcast<(?:vec\d<)?f32>?>\(\s*(?:vec\d<u32>\()?(0x[0-9a-f]+)u?\)?\s*\)/gi;
  for (const [kernel, code] of Object.entries(KERNELS)) {
    for (const m of code.matchAll(constant)) {
      assert.notEqual(Number(m[1]) & 0x7f800000, 0x7f800000, `${kernel}: ${m[0]}`);
    }
  }
});

Deno.test("webgpu kernels: centralization writes a gradient minus its row's mean only through functions that write an infinity as bits (a difference past f32's largest may not read as one)", () => {
  for (const kernel of ["centralize", "centralize_narrow"]) {
    const stores = [...KERNELS[kernel].matchAll(/\bx\[[^\]]+\]\s*=\s*([^;]*);/g)].map((m) => m[1]);
    assert.ok(
      stores.length >= 2,
      `${kernel}: ${stores.length} stores found: has the WGSL changed?`,
    );
    for (const value of stores) {
      assert.match(value, /^minus_(?:mean|special)\(/, `${kernel} stores ${value}`);
    }
  }
  // And minus_mean decides the infinity from the halves, clamping what it finds finite.
  const minusMean = functionsOf(CENTRALIZE.code).get("minus_mean")!.body;
  assert.match(minusMean, /bitcast<f32>\(inf\)/);
  assert.match(minusMean, /clamp\(v - mean/);
});

/** The stored inputs of `rule_values` each rule reads (a second moment only where it keeps one). */
const RULE_INPUTS: [Rule, string[]][] = [
  [ADAM, ["p0", "g", "m0", "v0"]],
  [LION, ["p0", "g", "m0"]],
  [SGD, ["p0", "g", "m0"]],
];

Deno.test("webgpu kernels: every rule reads the bits of each value it steps as stored, where float arithmetic on a NaN or an infinity may give any value", () => {
  for (const [rule, inputs] of RULE_INPUTS) {
    const body = functionsOf(stepKernels(rule).step.code).get("rule_values")!.body;
    for (const name of inputs) {
      assert.match(body, new RegExp(`bitcast<vec4<u32>>\\(${name}\\)`), `${rule.name}: ${name}`);
    }
  }
});

Deno.test("webgpu kernels: Adam and SGD decide the special of their coupled-decay gradient g + wd · p with one helper, from g's bits and p's special", () => {
  const shared = functionsOf(stepKernels(ADAM).step.code).get("grad_special")!.body;
  assert.match(shared, /let sg = special_times\(gb, grad_scale\);/);
  assert.match(shared, /if \(wd == 0\.0\) \{ return sg; \}/);
  assert.match(
    shared,
    /sum_checked\(grad_scale \* \(g \* pre\), sg, wd \* p0, times_checked\(p0, sp0, wd\)\)/,
  );
  for (const rule of [ADAM, SGD]) {
    for (const code of [stepKernels(rule).step.code, compactKernel(rule).code]) {
      // Written once: the sum's special is the helper's alone.
      assert.equal(code.split("sum_checked(grad_scale * (g * pre)").length - 1, 1, rule.name);
      assert.match(
        code,
        /let sg = grad_special\(grad_scale, pre, g, gb, p0, sp0, b\.coupledDecay\);/,
        rule.name,
      );
    }
  }
});

Deno.test("webgpu kernels: every parameter, moment and slow weight is stored with its special (a NaN or an infinity as bits), and 8-bit codes of an infinity come from its bits", () => {
  const step = stepKernels(ADAM).step.code;
  const stores = [...step.matchAll(/\b([mv])\[i\]\s*=\s*([^;]*);/g)];
  assert.equal(stores.length, 2);
  for (const [, , value] of stores) {
    assert.match(value, /^select\(with_special\(r\.[mv], r\.[mv]s\)/);
  }
  for (const code of [step, compactKernel(ADAM).code]) {
    assert.match(code, /finish_update\(i, p0, r\.p, r\.ps,/);
  }
  const finish = functionsOf(step).get("finish_update")!.body;
  assert.match(finish, /var pn = with_special\(pi, ps\)/);
  // LookAhead's sync: p − slow, alpha · that and slow + it, each op's class decided.
  assert.match(finish, /difference_checked\(pi, ps, s0,/);
  assert.match(finish, /sum_checked\(s0, \w+, alpha \* d, times_checked\(d, \w+, alpha\)\)/);
  const compact = functionsOf(compactKernel(ADAM).code);
  for (const encode of ["encode_signed", "encode_unsigned"]) {
    const body = compact.get(encode)!.body;
    assert.match(body, /scaled\(select\(x, vec4<f32>\(0\.0\), inf\), top\)/, encode);
    assert.match(body, /bitcast<vec4<i32>>\(s\), inf\)/, encode);
  }
  assert.match(compactKernel(ADAM).code, /top_bits\(mn, ms\), top_bits\(vn, vs\)/);
});

Deno.test("webgpu kernels: Lion's p · paramDecay − lr · sign(c) is decided from scaled and halved operands where it may pass f32's largest (an overflow may give any value)", () => {
  const body = functionsOf(stepKernels(LION).step.code).get("rule_values")!.body;
  assert.match(body, /abs\(b\.paramDecay\) > 1\.0 \|\| b\.stepSize >= /);
  assert.match(body, /lion_step_overflow\(p0, b\.paramDecay, b\.stepSize, sign_c\)/);
});

Deno.test("webgpu kernels: Adam and SGD take a vec4 through their checked path from a magnitude bound of the step's scalars, where finite values may overflow (an overflow may give any value)", () => {
  const cases: [Rule, string, string[], RegExp][] = [
    [
      ADAM,
      "adam_limit",
      ["coupledDecay", "momentMix", "gradMix", "eps", "paramDecay", "stepSize"],
      /return limit_bits\(min\(min\(63 - a, 125 - a - em\), min\(126 - pd, 123 - max\(ss, -1\) - a - em \+ le\)\)\);/,
    ],
    [
      SGD,
      "sgd_limit",
      ["coupledDecay", "bufferDecay", "momentum", "stepSize"],
      /return limit_bits\(min\(125 - c, 124 - c - exp_above\(bitcast<u32>\(b\.stepSize\)\)\)\);/,
    ],
  ];
  for (const [rule, limit, scalars, bound] of cases) {
    for (const code of [stepKernels(rule).step.code, compactKernel(rule).code]) {
      const fns = functionsOf(code);
      const body = fns.get("rule_values")!.body;
      assert.match(
        body,
        new RegExp(`at_least\\([^;]*, ${limit}\\(b\\)\\)`),
        rule.name,
      );
      const bodyOfLimit = fns.get(limit)!.body;
      // (tests/gpu/overflow_finite_test.ts checks this bound in f32 arithmetic.)
      assert.match(bodyOfLimit, bound, rule.name);
      for (const s of scalars) {
        assert.match(bodyOfLimit, new RegExp(`exp_above\\(bitcast<u32>\\(b\\.${s}\\)\\)`), s);
      }
    }
  }
  // Adam's eps below 2⁻⁶⁴ bounds no quotient: a v below 2⁻¹²⁶ takes the checked path (0 / 0).
  const adam = functionsOf(stepKernels(ADAM).step.code).get("rule_values")!.body;
  assert.match(adam, /b\.eps < 0x1p-64f && any\(vi < vec4<f32>\(0x1p-126f\)\)/);
});

Deno.test("webgpu kernels: Lion takes a vec4 with a magnitude of 2¹²⁶ or more through its checked path, which decides β2 · m + (1 − β2) · g's overflow (an overflow may give any value)", () => {
  for (const code of [stepKernels(LION).step.code, compactKernel(LION).code]) {
    const body = functionsOf(code).get("rule_values")!.body;
    // (tests/gpu/overflow_finite_test.ts checks this bound in f32 arithmetic.)
    assert.match(body, /let wide = at_least\(pb, mb, gb, vec4<u32>\(0u\), limit_bits\(126\)\);/);
    assert.match(body, /if \(any\(wide\)\) \{/);
    assert.match(
      body,
      /sum_checked\(b\.beta2 \* m0, special_times\(mb, b\.beta2\), b\.oneMinusBeta2 \* gi, special_times\(sg, b\.oneMinusBeta2\)\)/,
    );
    assert.match(body, /r\.ms = select\(vec4<u32>\(0u\), sm, wide\)/);
    // (The value itself from halves, which no contraction can overflow.)
    assert.match(
      body,
      /let hm = b\.beta2 \* \(m0 \* 0\.5\) \+ b\.oneMinusBeta2 \* \(gi \* 0\.5\);/,
    );
    assert.match(body, /select\(r\.m, hm \* 2\.0, abs\(hm\) >= /);
  }
});
