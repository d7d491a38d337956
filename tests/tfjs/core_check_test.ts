/**
 * `checkTfjsCore`: the adapter's `@tensorflow/tfjs-core` mapped (by a page's import map) to a
 * module that is no tfjs-core, as `tf.min.js` (a classic script: no exports), is a TypeError that
 * names the missing exports and the file to map instead, where the import failed with `Class
 * extends value undefined`; that file, the npm package's `tfjs-core-global.js`, is made from the
 * adapter's list, and the READMEs map it. (The page itself is tested in Chromium:
 * tests/node/cdn.test.mjs.)
 */
import assert from "node:assert/strict";
import { checkTfjsCore, TFJS_CORE_EXPORTS } from "../../tfjs/_core_check.ts";
import { CORE_GLOBAL_FILE, coreGlobalModule, NO_GLOBAL_TF } from "../../tools/_npm_core_global.ts";
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
Deno.test("tfjs core check: its message says to map the npm package's tfjs-core-global.js", () => {
  const message = refusal([]);
  assert.ok(message.includes(`to ${CORE_GLOBAL_FILE}, the file beside tfjs.js`), message);
  assert.match(message, /npm package @optim\/radam/);
});

/** The npm package's tfjs-core-global.js, imported as a module of its own (`tag` makes its URL). */
function importCoreGlobal(tag: string): Promise<Record<string, unknown>> {
  const text = `${coreGlobalModule()}// ${tag}\n`;
  return import(`data:text/javascript,${encodeURIComponent(text)}`);
}

Deno.test("tfjs core check: the npm package's tfjs-core-global.js exports TFJS_CORE_EXPORTS from the global tf, which the check takes", async () => {
  const global = globalThis as { tf?: unknown };
  global.tf = tf;
  try {
    const module = await importCoreGlobal("with a global tf");
    assert.deepEqual(Object.keys(module).sort(), [...TFJS_CORE_EXPORTS].sort());
    for (const name of TFJS_CORE_EXPORTS) {
      assert.equal(module[name], (tf as unknown as Record<string, unknown>)[name], name);
    }
    checkTfjsCore(module);
  } finally {
    delete global.tf;
  }
});

Deno.test("tfjs core check: the npm package's tfjs-core-global.js with no global tf is an Error at import that says to load tf.min.js with a <script> tag", async () => {
  assert.equal((globalThis as { tf?: unknown }).tf, undefined);
  await assert.rejects(importCoreGlobal("no global tf"), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.message, NO_GLOBAL_TF);
    assert.match(e.message, /there is no global tf/);
    assert.match(e.message, /<script src="[^"]*\/tf\.min\.js"><\/script>/);
    assert.match(e.message, /before the module that imports @optim\/radam\/tfjs/);
    return true;
  });
});

Deno.test("tfjs core check: every tfjs-core value the adapter's code uses is in TFJS_CORE_EXPORTS", async () => {
  const typeOnly = new Set(["KernelBackend", "NamedTensorMap", "Scalar", "TypedArray"]);
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

Deno.test("tfjs core check: the READMEs map tfjs-core to the npm package's tfjs-core-global.js on jsDelivr and list no exports of their own", async () => {
  const { name, version } = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  const url = `https://cdn.jsdelivr.net/npm/${name}@${version}/${CORE_GLOBAL_FILE}`;
  for (const file of ["README.md", "tools/npm_readme.md"]) {
    const text = await Deno.readTextFile(new URL(`../../${file}`, import.meta.url));
    const mapped = [...text.matchAll(/"@tensorflow\/tfjs-core": "([^"]*tfjs-core-global[^"]*)"/g)];
    assert.deepEqual(mapped.map(([, to]) => to), [url], file);
    // A copy of the list went stale when the adapter used another export.
    assert.doesNotMatch(text, /= globalThis\.tf\b/, file);
  }
});
