/**
 * The rules' TypeScript element loops call nothing per element but `Math.fround` (as `f32`) and
 * `Math.sqrt`: V8 peels a loop without calls and hoists its checks out, and a call in it (even
 * one V8 inlines, as LookAhead's sync was, fused into every loop's end) made RAdam's loop run at
 * about 0.75× the speed and Lion's at 0.4–0.8× (measured, not asserted: the tests time nothing).
 * LookAhead's sync is a pass after the loop (`syncJs`, rules/lookahead.ts), whose bits the
 * backend tests compare with the wasm kernel's, which fuses it.
 */
import assert from "node:assert/strict";
import REGISTRY from "../core/registry.ts";

/** Names called in `source`, control keywords left out. */
function callsIn(source: string): Set<string> {
  const calls = new Set<string>();
  for (const [, name] of source.matchAll(/([A-Za-z_$][\w$.]*)\s*\(/g)) {
    if (!["for", "if", "while", "switch"].includes(name)) calls.add(name);
  }
  return calls;
}

Deno.test("every rule's TypeScript loop calls only Math.fround (f32) and Math.sqrt", () => {
  assert.ok(REGISTRY.rules.length >= 3);
  for (const rule of REGISTRY.rules) {
    const calls = [...callsIn(rule.jsStep.toString())].filter(
      (name) => !["f32", "Math.fround", "Math.sqrt"].includes(name),
    );
    assert.deepEqual(calls, [], `${rule.name}'s jsStep calls ${calls.join(", ")}`);
  }
});

Deno.test("the call finder (the check itself) finds a call, and not a loop's keyword", () => {
  const source = "(s, a) => { for (let i = 0; i < a; i++) { if (s) finishJs(p, i); x = f32(1); } }";
  assert.deepEqual([...callsIn(source)], ["finishJs", "f32"]);
});
