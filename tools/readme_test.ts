/**
 * README.md's Deno set-up works for README.md's own examples: every module its TypeScript
 * examples import is a name the import map of its "Install" section maps (after dropping `jsr:`,
 * as it tells the reader to), or an `npm:`/`node:` specifier, so that a reader who copies the map
 * and then an example gets no "not found in import map" error. And the Deno KV example makes the
 * folder of the database it opens (`Deno.openKv` creates none). The whole program after the Quick
 * start runs as written and prints what its comment says, and so does the conformance kit's
 * example; the serverless examples (optimistic, data-parallel, reading the checkpoint) run one
 * after the other on one database, and the training-loop features' example runs, and the one of a
 * state made from another (init's `from`), each with stand-ins for the reader's model and data. Every in-page link names a heading, and every link to a file of the repository names
 * one that exists (and a heading of it, with an anchor). The demo's and the study's tables are
 * those of their committed runs.
 */
import assert from "node:assert/strict";

const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));

/** The bodies of README's fenced blocks of language `lang` (indented ones, in lists, too). */
function blocks(lang: string): string[] {
  const fence = new RegExp("^ *```" + lang + "\\n([\\s\\S]*?)^ *```$", "gm");
  return [...readme.matchAll(fence)].map((m) => m[1]);
}

/** The import map of the "Install" section: the JSON block with `imports`. */
function importMap(): Record<string, string> {
  const maps = blocks("json").map((b) => JSON.parse(b)).filter((j) => j.imports !== undefined);
  assert.equal(maps.length, 1, "one import map in README.md");
  return maps[0].imports;
}

/**
 * Runs a README example as a module, its imports of the package (`jsr:` or not) taken from this
 * repository, and gives what it printed with `console.log`.
 */
async function run(example: string): Promise<unknown[][]> {
  const source = example.replaceAll(
    /"(?:jsr:)?@optim\/radam(\/\w+)?"/g,
    (_, entry: string | undefined) =>
      JSON.stringify(
        new URL(`../${entry === undefined ? "mod" : entry.slice(1)}.ts`, import.meta.url).href,
      ),
  );
  const printed: unknown[][] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void printed.push(args);
  try {
    await import(
      `data:application/typescript;base64,${
        btoa(String.fromCharCode(...new TextEncoder().encode(source)))
      }`
    );
  } finally {
    console.log = log;
  }
  return printed;
}

Deno.test("README: the Deno import map maps every module its examples import", () => {
  const map = importMap();
  const code = blocks("ts");
  assert.ok(code.length > 5, `only ${code.length} TypeScript examples found`);
  const unmapped = new Set<string>();
  for (const block of code) {
    for (const [, specifier] of block.matchAll(/(?:from|import) "([^"]+)"/g)) {
      const name = specifier.replace(/^jsr:/, "");
      if (/^(npm|node):/.test(name) || name.startsWith(".")) continue;
      if (!Object.hasOwn(map, name)) unmapped.add(specifier);
    }
  }
  assert.deepEqual([...unmapped], []);
  for (const [name, target] of Object.entries(map)) {
    if (!target.startsWith("./radam/")) continue;
    const file = new URL(`../${target.slice("./radam/".length)}`, import.meta.url);
    assert.ok(Deno.statSync(file).isFile, `${name} → ${target}: no such file in the repository`);
  }
});

Deno.test("README: the Deno KV examples make the folder of the database file they open", () => {
  const opening = blocks("ts").filter((b) => /Deno\.openKv\("[^":]+\//.test(b));
  assert.ok(opening.length > 0, "no example opens a database file in a folder");
  for (const block of opening) {
    const [, folder] = /Deno\.openKv\("([^"]+)\/[^"/]+"\)/.exec(block)!;
    const mkdir = block.indexOf(`Deno.mkdir(${JSON.stringify(folder)}`);
    assert.ok(
      mkdir >= 0 && mkdir < block.indexOf("Deno.openKv("),
      `an example opens a database in ${folder}/ without making the folder first`,
    );
  }
});

Deno.test("README: the whole program after the Quick start runs as written and prints what it says", async () => {
  const [program] = blocks("ts").filter((b) => b.includes("Minimise f(w)"));
  assert.ok(program !== undefined, "no whole program after the Quick start");
  const printed = await run(program);
  assert.equal(printed.length, 1);
  const [backend, w] = printed[0] as [string, Float32Array];
  // "wasm Float32Array(3) [ 1, -2, 3 ] (near enough)"
  assert.equal(backend, /console\.log\(state\.backend, w\); \/\/ (\w+) /.exec(program)![1]);
  assert.ok(w instanceof Float32Array);
  const target = [1, -2, 3];
  assert.ok(w.every((x, i) => Math.abs(x - target[i]) < 1e-3), `${w} is not near ${target}`);
});

Deno.test("README: the conformance kit's example runs as written and reports the clauses kept", async () => {
  const [example] = blocks("ts").filter((b) => b.includes("verifyTrainingStore(yourStore)"));
  assert.ok(example !== undefined, "no example of verifyTrainingStore");
  const printed = await run(example);
  assert.equal(printed.length, 1);
  const [kept, said, skipped] = printed[0] as [number, string, string[]];
  assert.ok(Number.isInteger(kept) && kept > 0, `${kept} clauses kept`);
  assert.equal(said, "clauses kept; skipped:");
  // The in-process store keeps every clause; those skipped need a clock the kit can move.
  assert.ok(Array.isArray(skipped) && skipped.every((c) => typeof c === "string"));
});

Deno.test("README: the serverless examples run as written, one after the other, on one database", async () => {
  const find = (needle: string) => {
    const found = blocks("ts").filter((b) => b.includes(needle));
    assert.equal(found.length, 1, `one example with ${needle}`);
    return found[0];
  };
  // The database is one in memory (the tools' tests may write no file), shared by the examples,
  // each of which opens it and imports what it uses, as a reader's module of its own would.
  const kv = await Deno.openKv(":memory:");
  const shared = globalThis as { readmeKv?: Deno.Kv };
  shared.readmeKv = kv;
  const onKv = (example: string) =>
    example.replace(/await Deno\.mkdir\("serverless-data"[^;]*;/, "")
      .replaceAll('await Deno.openKv("serverless-data/training.sqlite3")', "globalThis.readmeKv")
      .replace(/^kv\.close\(\);$/m, "");
  // `backward`, `batch` and `request` stand for the reader's code and data (as the README says).
  const standIns = (id: string) =>
    `const batch = [[1, 2], [3, 4]];
const request = { id: "${id}" };
function backward(batch: number[][], params: Record<string, Float32Array>, grads?: Record<string, Float32Array>) {
  const g = grads ?? { w: new Float32Array(params.w.length), b: new Float32Array(1) };
  g.w.fill(batch.length);
  g.b.fill(1);
  return g;
}
`;
  try {
    await run(standIns("readme-1") + onKv(find("const done = await optimisticStep(store, {")));
    await run(
      standIns("readme-2") + onKv(find("const trainer = dataParallel(kvCheckpointStore(kv")) +
        "\nawait trainer.close();",
    );
    const printed = await run(onKv(find('kvCheckpointStore(kv, ["models", "linear"]).load()')));
    assert.equal(printed.length, 1);
    const [step, params, lr] = printed[0] as [number, Record<string, Float32Array>, number];
    assert.equal(step, 2, "a step of each mode");
    assert.equal(lr, 1e-3, "the stored lr, as checkpointInfo reads it");
    assert.deepEqual(Object.keys(params), ["w", "b"]);
    assert.deepEqual([params.w.length, params.b.length], [1024, 1]);
  } finally {
    delete shared.readmeKv;
    kv.close();
  }
});

Deno.test("README: the training-loop features' example runs as written (schedule, clipping, groups)", async () => {
  const [example] = blocks("ts").filter((b) => b.includes("clipGradNorm: 1, // global"));
  assert.ok(example !== undefined, "no example of the training-loop features");
  // `w`, `b`, `out`, `inp` and `grads` stand for the reader's model and its gradient.
  const standIns = `const out = 3, inp = 4;
const w = new Float32Array(out * inp).fill(0.5), b = new Float32Array(out);
const grads = { "head.weight": new Float32Array(out * inp).fill(0.1), "head.bias": new Float32Array(out).fill(0.1) };
`;
  const printed = await run(standIns + example);
  assert.equal(printed.length, 1);
  const [norm, skipped] = printed[0] as [number, number];
  const expected = Math.sqrt(15 * Math.fround(0.1) ** 2);
  assert.ok(Math.abs(norm - expected) < 1e-12, `clipping took the gradients' norm: ${norm}`);
  assert.equal(skipped, 0);
});

Deno.test("README: the example of a state made from another (init's option from) runs as written", async () => {
  const [example] = blocks("ts").filter((b) => b.includes("{ from: state }"));
  assert.ok(example !== undefined, "no example of init's option from");
  // `head`, `body`, `headGrad` and `bodyGrad` stand for the reader's model and its gradients.
  const standIns = `const head = new Float32Array(6).fill(0.5), body = new Float32Array(4).fill(1);
const headGrad = (t: number) => new Float32Array(6).fill(0.1 / (t + 1));
const bodyGrad = (t: number) => new Float32Array(4).fill(0.2 / (t + 1));
`;
  const printed = await run(standIns + example);
  assert.deepEqual(printed, [[101, ["head.weight", "body.weight"]]]);
});

/**
 * What an example importing the full "@tensorflow/tfjs" prints, run with what that package is:
 * tfjs-core with its cpu backend, and tfjs-layers.
 */
function runWithTfjs(example: string): Promise<unknown[][]> {
  const tfjs = `import * as core from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as layers from "@tensorflow/tfjs-layers";
const tf = { ...core, ...layers };
core.env().set("PROD", true);
await tf.setBackend("cpu");
`;
  return run(tfjs + example.replace('import * as tf from "@tensorflow/tfjs";', ""));
}

Deno.test("README: the example of gradient accumulation in TensorFlow.js runs as written", async () => {
  const [example] = blocks("ts").filter((b) => b.includes("gradientAccumulationSteps: 4 })"));
  assert.ok(example !== undefined, "no example of option gradientAccumulationSteps");
  const printed = await runWithTfjs(example);
  const said =
    /console\.log\(optimizer\.iterations, optimizer\.accumulatedBatches\); \/\/ (\d+) (\d+):/
      .exec(example)!;
  assert.deepEqual(printed, [[Number(said[1]), Number(said[2])]]);
});

Deno.test("README: the example of moving averages in TensorFlow.js runs as written", async () => {
  const [example] = blocks("ts").filter((b) => b.includes("emaCallback(optimizer)"));
  assert.ok(example !== undefined, "no example of option ema");
  const printed = await runWithTfjs(example);
  const said = /console\.log\(optimizer\.iterations, averages\.length\); \/\/ (\d+) (\d+):/
    .exec(example)!;
  assert.deepEqual(printed, [[Number(said[1]), Number(said[2])]]);
});

/** `markdown` without its fenced blocks (indented ones too). */
function unfenced(markdown: string): string {
  return markdown.replace(/^ *```[\s\S]*?^ *```$/gm, "");
}

/** `markdown` without its fenced blocks and code spans. */
function prose(markdown: string): string {
  return unfenced(markdown).replace(/`[^`\n]*`/g, "");
}

/**
 * The anchors of `markdown`'s headings, as GitHub and JSR name them: lower case, everything but
 * letters, digits, `_`, `-` and spaces dropped, spaces made `-`; a repeated one gets `-1`, `-2`, ….
 */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading] of unfenced(markdown).matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
    const slug = heading.replace(/`/g, "").toLowerCase().replace(/[^\p{L}\p{M}\p{N}_ -]/gu, "")
      .replaceAll(" ", "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** What is wrong with each link of the file at `path` (from the repository's root) that is. */
function badLinks(path: string, markdown: string): string[] {
  const root = new URL("../", import.meta.url);
  const here = new URL(path, root);
  const bad: string[] = [];
  for (const [, target] of prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto:
    const [file, anchor] = target.split("#");
    const url = new URL(file, here);
    let text = markdown;
    if (file !== "") {
      try {
        if (!Deno.statSync(url).isFile) throw new Error("not a file");
      } catch {
        bad.push(`${path}: ${target}: no such file`);
        continue;
      }
      if (anchor === undefined || !file.endsWith(".md")) continue;
      text = Deno.readTextFileSync(url);
    }
    if (!anchors(text).has(anchor)) bad.push(`${path}: ${target}: no such heading`);
  }
  return bad;
}

Deno.test("README: every in-page link names a heading, every file link a file (and its heading)", async () => {
  assert.ok(anchors(readme).has("8-bit-states-compact-moments-states-8bit"));
  assert.ok(anchors("# a\n\n## A\n\n```sh\n# not a heading\n```\n").has("a-1"));
  assert.deepEqual(badLinks("x.md", "[a](#b) [c](README.md#nope) [d](no.md) [e](https://x/#y)"), [
    "x.md: #b: no such heading",
    "x.md: README.md#nope: no such heading",
    "x.md: no.md: no such file",
  ]);
  const template = "tools/npm_readme.md";
  const npm = await Deno.readTextFile(new URL(`../${template}`, import.meta.url));
  assert.deepEqual([...badLinks("README.md", readme), ...badLinks(template, npm)], []);
});

/** The rows of a results table, `| <lr> | … |`, of `markdown`, their cells trimmed. */
function lrRows(markdown: string): string[][] {
  return [...markdown.matchAll(/^\| *\d(?:\.\d+)?e-\d+ *\|.*$/gm)].map(([row]) =>
    row.split("|").slice(1, -1).map((cell) => cell.trim())
  );
}

/** README's section under the heading that starts with `title`, to the next `## ` heading. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}`);
  assert.ok(start >= 0, `no section "${title}"`);
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

Deno.test("README: the demo's and the study's tables are those of their committed runs", async () => {
  for (
    const [title, results, count] of [
      ["The main job", "docs/demo_results.md", 5],
      ["In TensorFlow.js", "docs/study/results.md", 10],
    ] as const
  ) {
    const committed = await Deno.readTextFile(new URL(`../${results}`, import.meta.url));
    const shown = lrRows(section(title));
    assert.equal(shown.length, count, `${title}: ${shown.length} rows`);
    assert.deepEqual(shown, lrRows(committed).slice(0, count), `${title} against ${results}`);
  }
});
