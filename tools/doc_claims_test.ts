/**
 * What README.md, docs/SPEC.md, the npm package's README and the factories' TSDoc state that the
 * library itself can tell: each default they write out (`lr = 1e-3`, `k = 6`, `threshold` (default
 * 5)) is the one the factory's `settings` holds; the table of bytes a parameter gives the arena's
 * and the checkpoint's sizes that the library lays out and writes; every `deno task` they name is
 * a task of deno.json; every file or folder of the repository they name exists; and the table of
 * layers is the one tools/layers.ts checks the imports against.
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  dispose,
  lion,
  lookahead,
  type Optimizer,
  radam,
  ranger,
  saveState,
  sgd,
} from "../mod.ts";
import { planState } from "../core/plan.ts";
import { LAYERS } from "./layers.ts";

const read = (path: string) => Deno.readTextFileSync(new URL(`../${path}`, import.meta.url));
const readme = read("README.md");
const spec = read("docs/SPEC.md");
const npmReadme = read("tools/npm_readme.md");
const registry = read("core/registry.ts");

const FACTORIES: Record<string, () => Optimizer> = {
  radam: () => radam(),
  adam: () => adam(),
  adamw: () => adamw(),
  lion: () => lion(),
  sgd: () => sgd(),
  ranger: () => ranger(),
  lookahead: () => lookahead(adam()),
};

/** A factory's defaults by option name: its settings' hyperparameters, `betas`, loop and LookAhead. */
function defaultsOf(factory: string): Record<string, unknown> {
  const { hyperparameters, run, loop, lookahead } = FACTORIES[factory]().settings;
  const h = hyperparameters as unknown as Record<string, unknown>;
  const flat: Record<string, unknown> = { ...run, ...loop, ...lookahead, ...h };
  if ("beta1" in h) flat.betas = [h.beta1, h.beta2];
  return flat;
}

/** A value as the docs write it (`1e-3`, `[0.9, 0.999]`, `false`, `"auto"`), or undefined. */
function literal(text: string): unknown {
  try {
    return JSON.parse(text.trim());
  } catch {
    return undefined;
  }
}

/** The `option = value` pairs of `text` whose value is a literal. */
function assignments(text: string): [string, unknown][] {
  return [...text.matchAll(/`(\w+) = ([^`]+)`/g)]
    .map(([, name, value]) => [name, literal(value)] as [string, unknown])
    .filter(([, value]) => value !== undefined);
}

/** Where each default is written, what it says, and the factory whose settings it describes. */
interface Claim {
  where: string;
  factory: string;
  option: string;
  value: unknown;
}

/** README's `factory({ a = 1, b = 2 })` (and `lookahead(inner, { … })`) signatures. */
function readmeSignatures(): Claim[] {
  const claims: Claim[] = [];
  for (
    const [, factory, list] of readme.matchAll(/`(\w+)\((?:\w+, )?\{ ([^}`]* = [^}`]*) \}\)`/g)
  ) {
    if (!Object.hasOwn(FACTORIES, factory)) continue; // (another function's options)
    for (const part of list.split(/, (?=\w+ =)/)) {
      const [option, value] = part.split(" = ");
      claims.push({ where: `README ${factory}(…)`, factory, option, value: literal(value) });
    }
  }
  return claims;
}

/** README's "`option` (default V" in the list of options, which are RAdam's. */
function readmeOptionDefaults(): Claim[] {
  const [list] = /^- Options: [\s\S]*?(?=^- )/m.exec(readme) ?? [""];
  return [...list.matchAll(/`(\w+)` \(default `?([^`,;)]+)`?/g)].map(([, option, value]) => ({
    where: "README options",
    factory: "radam",
    option,
    value: literal(value),
  }));
}

/** README's "Ranger's defaults (`betas [0.95, 0.999]`, `eps 1e-5`, …, `gc: true`)". */
function readmeRanger(): Claim[] {
  const [, list] =
    /`ranger\(options\)`[^\n]* Ranger's defaults \(([\s\S]*?)\), named/.exec(readme) ?? [];
  return [...(list ?? "").matchAll(/`(\w+):? ([^`]+)`/g)].map(([, option, value]) => ({
    where: "README ranger(options)",
    factory: "ranger",
    option,
    value: literal(value),
  }));
}

/** The "Defaults: …" sentences of docs/SPEC.md's sections of a rule, or of a factory's TSDoc. */
function defaultsSentences(where: string, sections: [string, string][]): Claim[] {
  const claims: Claim[] = [];
  for (const [factory, text] of sections) {
    for (const [, sentence] of text.matchAll(/[Dd]efaults: ([\s\S]*?)\.(?=\s|$)/g)) {
      for (const [option, value] of assignments(sentence)) {
        claims.push({ where: `${where} ${factory}`, factory, option, value });
      }
    }
  }
  return claims;
}

/** docs/SPEC.md's sections of the rules, by factory. */
function specSections(): [string, string][] {
  const titles: [string, string][] = [
    ["radam", "RAdam, one step"],
    ["ranger", "Ranger"],
    ["lion", "Lion"],
    ["sgd", "SGD with momentum"],
  ];
  return titles.map(([factory, title]) => {
    const start = spec.indexOf(`\n## ${title}`);
    assert.ok(start >= 0, `docs/SPEC.md has no section "${title}"`);
    const end = spec.indexOf("\n## ", start + 1);
    return [factory, spec.slice(start, end)];
  });
}

/** The TSDoc of each factory of core/registry.ts. */
function registryDocs(): [string, string][] {
  return ["radam", "adam", "adamw", "lion", "ranger", "sgd"].map((factory) => {
    const at = registry.search(new RegExp(`^export (?:function|const) ${factory}\\b`, "m"));
    assert.ok(at >= 0, `core/registry.ts exports no ${factory}`);
    const doc = registry.lastIndexOf("/**", at);
    return [factory, registry.slice(doc, at)];
  });
}

Deno.test("docs: every default written out is the factory's (README, SPEC, registry TSDoc)", () => {
  const claims = [
    ...readmeSignatures(),
    ...readmeOptionDefaults(),
    ...readmeRanger(),
    ...defaultsSentences("docs/SPEC.md", specSections()),
    ...defaultsSentences("core/registry.ts", registryDocs()),
  ];
  // Each source states some: a pattern that stops matching would pass vacuously.
  for (
    const where of [
      "README sgd(…)",
      "README lion(…)",
      "README lookahead(…)",
      "README options",
      "README ranger(options)",
      "docs/SPEC.md radam",
      "docs/SPEC.md ranger",
      "docs/SPEC.md lion",
      "docs/SPEC.md sgd",
      "core/registry.ts radam",
      "core/registry.ts lion",
      "core/registry.ts sgd",
    ]
  ) {
    assert.ok(claims.some((c) => c.where === where), `no default found in ${where}`);
  }
  const wrong = claims.filter((c) => {
    const defaults = defaultsOf(c.factory);
    return !Object.hasOwn(defaults, c.option) || !isDeepEqual(defaults[c.option], c.value);
  }).map((c) =>
    `${c.where}: ${c.option} = ${JSON.stringify(c.value)}, the settings hold ${
      JSON.stringify(defaultsOf(c.factory)[c.option])
    }`
  );
  assert.deepEqual(wrong, []);
});

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

/** README's table of bytes a parameter: rule and format, arena, checkpoint. */
function bytesTable(): { label: string; arena: string; checkpoint: string }[] {
  const start = readme.indexOf("**Bytes a parameter**");
  assert.ok(start >= 0, "README has no table of bytes a parameter");
  const table = readme.slice(start).split("\n\n")[1];
  return table.split("\n").slice(2).map((row) => {
    const [label, arena, checkpoint] = row.split("|").slice(1).map((cell) => cell.trim());
    return { label, arena, checkpoint };
  });
}

/** The optimizers a row of the bytes table speaks for. */
function rowOptimizers(label: string): Optimizer[] {
  const states = label.endsWith("8-bit") ? "8bit" : "32bit";
  if (label.startsWith("RAdam / Adam / AdamW")) {
    return [radam({ states }), adam({ states }), adamw({ states })];
  }
  if (label.startsWith("Ranger, LookAhead(RAdam)")) {
    return [ranger({ states }), lookahead(radam({ states }))];
  }
  if (label.startsWith("Lion, SGD with momentum")) {
    return [lion({ states }), sgd({ momentum: 0.9, states })];
  }
  return [];
}

Deno.test("README: the table of bytes a parameter is the library's arena and checkpoint", async () => {
  const rows = bytesTable().filter((row) => rowOptimizers(row.label).length > 0);
  assert.equal(rows.length, 6, "the library's rows of the table of bytes a parameter");
  const n = 1 << 20;
  for (const { label, arena, checkpoint } of rows) {
    const [, sections, withGaps] = /^([\d.]+) \(([\d.]+)\)$/.exec(arena) ?? [];
    assert.ok(sections !== undefined, `${label}: arena "${arena}"`);
    for (const optimizer of rowOptimizers(label)) {
      const name = `${label}, ${optimizer.settings.name}`;
      const state = await optimizer.init({ w: new Float32Array(n) });
      const bytes = await saveState(state);
      dispose(state);
      // The checkpoint's tensors (its header aside), and the arena's sections: those, gradients.
      const header = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const data = (bytes.length - 8 - header) / n;
      assert.equal(data.toFixed(checkpoint.split(".")[1]?.length ?? 0), checkpoint, name);
      assert.equal((data + 4).toFixed(sections.split(".")[1]?.length ?? 0), sections, name);
      // "measured by the layout at 1M and 16M": the sections with the gaps between them.
      for (const size of [n, 16 * n]) {
        const layout = planState(optimizer.settings, ["w"], [size]);
        assert.equal((layout.byteLength / size).toFixed(2), withGaps, `${name} at ${size}`);
      }
    }
  }
});

Deno.test("docs: every deno task named is one of deno.json's", () => {
  const tasks = Object.keys(JSON.parse(read("deno.json")).tasks);
  const named = new Set<string>();
  for (const text of [readme, spec, npmReadme]) {
    for (const [, task] of text.matchAll(/deno(?:@[\d.]+)? task\s+([\w:-]+)/g)) named.add(task);
  }
  assert.ok(named.size > 5, `only ${named.size} tasks named`);
  assert.deepEqual([...named].filter((task) => !tasks.includes(task)), []);
});

/** Written by a run, not committed (git-ignored, or by a flag of a bench). */
const GENERATED = new Set(["bench/GPU_RESULTS.md"]);

Deno.test("docs: every file and folder of the repository named in code spans exists", () => {
  const top = "base|core|cpu|rules|gpu|store|kv|tfjs|assembly|tests|web|examples|bench|tools|docs";
  const path = new RegExp(`(?<![\\w./@-])((?:${top})/[\\w./-]*[\\w/])`, "g");
  const missing: string[] = [];
  let count = 0;
  for (const [where, text] of [["README.md", readme], ["docs/SPEC.md", spec]]) {
    for (const [, span] of text.matchAll(/`([^`\n]+)`/g)) {
      for (const [, name] of span.matchAll(path)) {
        count++;
        if (GENERATED.has(name)) continue;
        try {
          Deno.statSync(new URL(`../${name}`, import.meta.url));
        } catch {
          missing.push(`${where}: ${name}`);
        }
      }
    }
  }
  assert.ok(count > 50, `only ${count} paths found`);
  assert.deepEqual(missing, []);
});

Deno.test("README: the table of layers is tools/layers.ts's", () => {
  const rows = [...readme.matchAll(/^\| +(\d+) \| ((?:`[^`]+`(?:, )?)+) +\|/gm)];
  const shown = rows.map(([, layer, paths]) => [
    Number(layer),
    [...paths.matchAll(/`([^`]+)`/g)].map(([, path]) => path).sort(),
  ]);
  assert.deepEqual(shown, LAYERS.map((layer, i) => [i, [...layer].sort()]));
});
