/**
 * `checkTfjsCore`: the adapter's `@tensorflow/tfjs-core` mapped (by a page's import map) to a
 * module that is no tfjs-core, as `tf.min.js` (a classic script: no exports), is a TypeError that
 * names the missing exports and the shim to map instead, where the import failed with `Class
 * extends value undefined`. (The page itself is tested in Chromium: tests/node/cdn.test.mjs.)
 */
import assert from "node:assert/strict";
import { checkTfjsCore, TFJS_CORE_EXPORTS } from "../../tfjs/_core_check.ts";
import { tf } from "./helpers.ts";

/** The TypeError of a module with `names` only; its message. */
function refusal(names: readonly string[]): string {
  const namespace = Object.fromEntries(
    names.map((name) => [name, (tf as unknown as Record<string, unknown>)[name]]),
  );
  let message = "";
  assert.throws(() => checkTfjsCore(namespace), (e) => {
    assert.ok(e instanceof TypeError);
    message = e.message;
    return true;
  });
  return message;
}

Deno.test("tfjs core check: tfjs-core passes; a module with none or some of its exports is a TypeError naming the missing", () => {
  checkTfjsCore(tf);
  const none = refusal([]);
  assert.match(none, /"@tensorflow\/tfjs-core" resolves to does not export Optimizer, Tensor, /);
  assert.match(none, /tf\.min\.js/);
  const some = refusal(TFJS_CORE_EXPORTS.filter((name) => name !== "sub" && name !== "tidy"));
  assert.match(some, /does not export sub, tidy \(/);
});

Deno.test("tfjs core check: the shim its message suggests re-exports a global tf that the check then takes", async () => {
  const [, shim] = /module of yours that holds: (export const \{[^}]*\} = globalThis\.tf;)/.exec(
    refusal([]),
  )!;
  const global = globalThis as { tf?: unknown };
  global.tf = tf;
  try {
    const url = `data:text/javascript,${encodeURIComponent(shim)}`;
    const module = await import(url);
    checkTfjsCore(module);
    assert.equal(module.Optimizer, tf.Optimizer);
  } finally {
    delete global.tf;
  }
});

Deno.test("tfjs core check: every tfjs-core value the adapter's code uses is in TFJS_CORE_EXPORTS", async () => {
  const typeOnly = new Set(["KernelBackend", "NamedTensorMap", "TypedArray"]);
  const used = new Set<string>();
  for await (const entry of Deno.readDir(new URL("../../tfjs/", import.meta.url))) {
    if (!entry.name.endsWith(".ts")) continue;
    const text = await Deno.readTextFile(new URL(`../../tfjs/${entry.name}`, import.meta.url));
    for (const line of text.split("\n")) {
      if (/^\s*(\*|\/\/|\/\*)/.test(line)) continue; // TSDoc and comments
      // Messages name tfjs functions: no strings, no template text (to its end or a `${`).
      const code = line.replace(/"[^"]*"|'[^']*'|`[^`]*?(`|\$\{|$)/g, "");
      for (const [, name] of code.matchAll(/\btf\.([A-Za-z_]\w*)/g)) {
        if (!typeOnly.has(name)) used.add(name);
      }
    }
  }
  assert.ok(used.size > 10, `found only ${[...used]}`);
  assert.deepEqual([...used].filter((name) => !TFJS_CORE_EXPORTS.includes(name)), []);
});

Deno.test("tfjs core check: the READMEs' tfjs-core-global.js exports TFJS_CORE_EXPORTS", async () => {
  for (const file of ["README.md", "tools/npm_readme.md"]) {
    const text = await Deno.readTextFile(new URL(`../../${file}`, import.meta.url));
    const shims = [
      ...text.matchAll(/\/\/ tfjs-core-global\.js[^\n]*\n *export const \{([^}]*)\}/g),
    ];
    assert.equal(shims.length, 1, `${file}: no (or several) tfjs-core-global.js`);
    const names = shims[0][1].split(",").map((name) => name.trim()).filter(Boolean);
    assert.deepEqual(names, [...TFJS_CORE_EXPORTS], file);
  }
});
