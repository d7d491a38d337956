/**
 * The per-tensor checks of a checkpoint, made without a string or a JSON call for each tensor
 * where none is needed, against the plain forms they replace (kept here as references): which
 * names two of a state's tensors would share (and the error that says so), the length of the
 * header a state would save, and the keys a header holds twice.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { lion, lookahead, radam, sgd } from "../mod.ts";
import {
  checkDuplicateKeys,
  headerLength,
  METADATA_KEY,
  type TensorPlan,
  writeSafetensors,
} from "../base/safetensors.ts";
import type { Settings } from "../base/settings.ts";
import type { ArenaLayout } from "../base/arena.ts";
import { checkSavableNames, stateTensors } from "../core/checkpoint_tensors.ts";
import { planState } from "../core/plan.ts";

/** Every file name each tensor takes, claimed in turn in one map: the first taken twice throws. */
function savableNamesReference(config: Settings<unknown>, layout: ArenaLayout): void {
  const holder = new Map<string, string>();
  const claim = (file: string, what: string) => {
    const other = file === METADATA_KEY ? "the header's metadata" : holder.get(file);
    if (other !== undefined) {
      throw new TypeError(
        `A checkpoint would hold ${JSON.stringify(file)} twice, as ${other} and as ${what}: ` +
          `rename the tensor`,
      );
    }
    holder.set(file, what);
  };
  for (const name of layout.names) {
    for (const k of stateTensors(config)) {
      const file = name + k.suffix;
      const what = k.suffix === ""
        ? `the parameter ${JSON.stringify(name)}`
        : `the ${k.suffix.slice(1)} of ${JSON.stringify(name)}`;
      claim(file, what);
      if (k.moment !== undefined) {
        claim(`${file}.codes`, `${what} (codes)`);
        claim(`${file}.scales`, `${what} (scales)`);
      }
    }
  }
}

/** What `fn` throws (its kind and words), or "ok". */
function outcome(fn: () => void): string {
  try {
    fn();
    return "ok";
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

Deno.test("the names two tensors would share are found as taking each name in a map finds them", () => {
  const configs = [
    radam().settings,
    lookahead(radam()).settings,
    sgd({ momentum: 0.9 }).settings,
    sgd().settings,
    lion().settings,
  ];
  // Names of the pieces of the files' names: collisions are common.
  const piece = fc.constantFrom(
    "w",
    "",
    ".exp_avg",
    "_sq",
    ".codes",
    ".scales",
    ".slow",
    ".momentum_buffer",
    "__metadata__",
    "__meta",
    "data__",
    ".",
    "é",
  );
  const name = fc.array(piece, { minLength: 1, maxLength: 4 }).map((p) => p.join(""));
  fc.assert(
    fc.property(
      // (Names given twice too: a layout planned of them must be refused as well.)
      fc.array(name, { minLength: 1, maxLength: 8 }),
      fc.constantFrom(...configs),
      (names, config) => {
        // (Planned, a layout of these names would be refused by the check itself.)
        const layout = { names } as unknown as ArenaLayout;
        assert.equal(
          outcome(() => checkSavableNames(config, layout)),
          outcome(() => savableNamesReference(config, layout)),
        );
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("a state planned of a name given twice is refused, whatever its rule's kinds of tensors", () => {
  for (const config of [sgd().settings, radam().settings, lookahead(lion()).settings]) {
    for (const names of [["w", "w"], ["a", "w", "b", "w"], ["__metadata", "__metadata"]]) {
      assert.throws(
        () => planState(config, names, names.map(() => 2)),
        (e) =>
          e instanceof TypeError &&
          e.message.startsWith(
            `A checkpoint would hold "${names[names.length - 1]}" twice, as the parameter`,
          ),
      );
    }
  }
});

Deno.test("the predicted header length is that of the header written, whatever the names and shapes", () => {
  const name = fc.oneof(
    fc.string({ maxLength: 8 }),
    fc.string({ unit: "grapheme", maxLength: 4 }),
    fc.string({ unit: "binary", maxLength: 4 }),
    fc.constantFrom('"', "\\", "a\u0000b", "\u007f", "\ud800", "😀", "0", "__metadata__x"),
  );
  const dim = fc.oneof(fc.nat(), fc.double(), fc.constantFrom(-0, NaN, Infinity, 1e21, 2 ** 53));
  fc.assert(
    fc.property(
      fc.uniqueArray(
        fc.tuple(name, fc.array(dim, { maxLength: 3 }), fc.nat({ max: 5 }), fc.boolean()),
        { maxLength: 6, selector: ([n]) => n },
      ),
      fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 })),
      (specs, metadata) => {
        // (Names that no state has: the object a header is written from would take them out
        // of order, or as its prototype; the state refuses them.)
        specs = specs.filter(([n]) => !/^(0|[1-9][0-9]*)$/.test(n) && n !== "__proto__");
        const tensors = specs.map(([name, shape, n, bytes]) => ({
          name,
          shape,
          data: bytes ? new Uint8Array(n) : new Float32Array(n),
        }));
        const plans: TensorPlan[] = tensors.map((t) => ({
          name: t.name,
          shape: t.shape,
          dtype: t.data instanceof Float32Array ? "F32" : "U8",
          byteLength: t.data.byteLength,
        }));
        const out = writeSafetensors(tensors, metadata);
        const written = Number(new DataView(out.buffer).getBigUint64(0, true));
        assert.equal(headerLength(plans, metadata), written);
      },
    ),
    { numRuns: 3000 },
  );
});

/** The keys of each object of valid JSON `text`, each read as JSON: the first twice throws. */
function duplicateKeysReference(text: string, what: string): void {
  const stack: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length;) {
    const c = text[i];
    if (c === "{" || c === "[") stack.push(c === "{" ? new Set() : null);
    if (c === "}" || c === "]") stack.pop();
    if (c !== '"') {
      i++;
      continue;
    }
    let j = i + 1;
    while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
    const raw = text.slice(i, j + 1);
    i = j + 1;
    const top = stack[stack.length - 1];
    let k = i;
    while (/\s/.test(text[k] ?? "")) k++;
    if (!top || text[k] !== ":") continue;
    const key = JSON.parse(raw) as string;
    if (top.has(key)) throw new RangeError(`${what} has the key ${JSON.stringify(key)} twice`);
    top.add(key);
  }
}

Deno.test("the keys a header has twice are found, escaped or not, as reading each as JSON finds them", () => {
  // A key written as itself, or with each character escaped (\uXXXX, or \" and \\ as they are).
  const written = (key: string, escape: boolean[]) =>
    '"' +
    [...key].map((ch, i) =>
      escape[i % escape.length]
        ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`
        : JSON.stringify(ch).slice(1, -1)
    ).join("") + '"';
  const key = fc.constantFrom("a", "b", '"', "\\", "a\\", "é", "\n", "", " :");
  const value = fc.constantFrom('"a"', '":"', "[]", '["a","a"]', "1", '{"a":1}', '{"a":1,"a":2}');
  fc.assert(
    fc.property(
      fc.array(fc.tuple(key, fc.array(fc.boolean(), { minLength: 1 }), value, fc.boolean())),
      (entries) => {
        const text = "{" +
          entries.map(([k, escape, v, spaced]) =>
            `${written(k, escape)}${spaced ? " \n: " : ":"}${v}`
          ).join(",") + "}";
        JSON.parse(text); // valid JSON, as the header is when it is checked
        assert.equal(
          outcome(() => checkDuplicateKeys(text, "Checkpoint header")),
          outcome(() => duplicateKeysReference(text, "Checkpoint header")).replace(
            "RangeError",
            "CheckpointError",
          ),
        );
      },
    ),
    { numRuns: 3000 },
  );
});
