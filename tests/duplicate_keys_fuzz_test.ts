/**
 * The keys a JSON text (a checkpoint's header, or a metadata string) holds twice in one object,
 * found by `checkDuplicateKeys`, against what the text was written from: trees of objects,
 * arrays, strings, numbers, booleans and null, each key and string written with any of JSON's
 * escapes (`\"`, `\\`, `\/`, `\b`…, `\u` in either case, surrogate pairs, lone surrogates) or
 * as itself, any whitespace between tokens. Two keys of one object that spell one string
 * however written are found; keys of different objects, and strings that are values, never.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { checkDuplicateKeys, CheckpointError } from "../base/safetensors.ts";

type Tree =
  | { kind: "object"; entries: [string, Tree][] }
  | { kind: "array"; items: Tree[] }
  | { kind: "leaf"; text: string }
  | { kind: "string"; value: string };

/** Pieces of keys and strings: quotes, backslashes, escapes' letters, surrogates, colons. */
const unit = fc.constantFrom(
  "a",
  "u",
  "0",
  '"',
  "\\",
  "/",
  ":",
  "{",
  "]",
  "\n",
  "\b",
  "\u001f",
  "\u007f",
  "é",
  "😀",
  "\ud800",
  "\udc00",
  "__proto__",
  "constructor",
);
const text = fc.array(unit, { maxLength: 3 }).map((p) => p.join(""));

const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom("0", "-1.5e+3", "true", "false", "null").map((t) => ({
      kind: "leaf",
      text: t,
    })),
    text.map((value) => ({ kind: "string", value })),
    fc.array(tie("tree"), { maxLength: 3 }).map((items) => ({ kind: "array", items })),
    fc.array(fc.tuple(text, tie("tree")), { maxLength: 4 })
      .map((entries) => ({ kind: "object", entries })),
  ) as fc.Arbitrary<Tree>,
}));

/** `value` as a JSON string, each UTF-16 unit written as `choice(i)` picks. */
function written(value: string, choice: (i: number) => number): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i), pick = choice(i);
    const hex = c.toString(16).padStart(4, "0");
    const short: Record<number, string> = { 8: "b", 9: "t", 10: "n", 12: "f", 13: "r" };
    if (pick === 0 && c >= 0x20 && c !== 0x22 && c !== 0x5c) out += value[i];
    else if (pick === 1 && (c === 0x22 || c === 0x5c || c === 0x2f)) out += "\\" + value[i];
    else if (pick === 2 && short[c] !== undefined) out += "\\" + short[c];
    else out += `\\u${pick === 3 ? hex.toUpperCase() : hex}`;
  }
  return out + '"';
}

/** The text of `t` (escapes and spaces from `choice`), and whether an object has a key twice. */
function render(t: Tree, choice: (i: number) => number): { json: string; twice: boolean } {
  const space = () => ["", " ", "\n", "\t", "\r\n "][choice(-1) % 5];
  if (t.kind === "leaf") return { json: t.text, twice: false };
  if (t.kind === "string") return { json: written(t.value, choice), twice: false };
  const parts = t.kind === "array"
    ? t.items.map((item) => render(item, choice))
    : t.entries.map(([k, v]) => {
      const value = render(v, choice);
      return {
        json: `${written(k, choice)}${space()}:${space()}${value.json}`,
        twice: value.twice,
      };
    });
  const keys = t.kind === "object" ? t.entries.map(([k]) => k) : [];
  const [open, close] = t.kind === "array" ? ["[", "]"] : ["{", "}"];
  return {
    json: `${open}${space()}${
      parts.map((p) => p.json).join(`${space()},${space()}`)
    }${space()}${close}`,
    twice: parts.some((p) => p.twice) || new Set(keys).size !== keys.length,
  };
}

Deno.test("a key given twice in one object is found however either is escaped, and no other", () => {
  fc.assert(
    fc.property(
      tree,
      fc.infiniteStream(fc.nat({ max: 4 })),
      (t, picks) => {
        const choice = () => picks.next().value;
        const { json, twice } = render(t, choice);
        JSON.parse(json); // (valid JSON, as a header is when it is checked)
        let found: unknown;
        try {
          checkDuplicateKeys(json, "Checkpoint header");
        } catch (e) {
          found = e;
        }
        assert.equal(found instanceof CheckpointError, twice, json);
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("a key and its escaped spellings are one key", () => {
  const same = [
    ['"a"', '"\\u0061"'],
    ['"a"', '"\\u0061"'],
    ['"/"', '"\\/"'],
    ['"😀"', '"\\ud83d\\ude00"'],
    ['"😀"', '"\\uD83D\\uDE00"'],
    ['"\\ud800"', '"\\uD800"'],
    ['"__proto__"', '"\\u005f_proto__"'],
    ['"\\"\\\\"', '"\\u0022\\u005c"'],
  ];
  for (const [a, b] of same) {
    for (const text of [`{${a}:1,${b}:2}`, `[{"x":[{${b} : "${"\\\\"}", ${a}\n:null}]}]`]) {
      assert.throws(() => checkDuplicateKeys(text, "Checkpoint header"), CheckpointError, text);
    }
  }
  for (const text of ['{"a":"\\"a\\":1","b":{"a":2}}', '{"\\\\":1,"\\"":2}', '[{"a":1},{"a":1}]']) {
    checkDuplicateKeys(text, "Checkpoint header");
  }
});
