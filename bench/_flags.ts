/**
 * The command-line flags of the bench scripts, from one typed table per script: each flag's
 * name, kind of value, default and help line. {@linkcode readFlags} parses `Deno.args` against
 * it, prints the help the table makes on `--help` (or `-h`), and stops with that help on a flag
 * it does not know or a value of the wrong kind, so that a typo never runs a long benchmark with
 * the defaults: an unknown flag is named with the nearest known one, and a value outside its
 * choices with the nearest choice (choices match in any case: `--sizes=4k` is `4K`).
 *
 * Values are given as `--name=value` or `--name value`; lists are comma-separated
 * (`--sizes=4K,256K`); a boolean flag is given bare (`--quick`). The last of repeated flags wins.
 *
 * @module
 */
import { matchChoice, notAChoice, typedFlag, unknownFlag } from "../examples/_suggest.ts";

/** The kinds of value a flag takes. */
export type FlagKind = "boolean" | "number" | "string" | "numbers" | "strings";

/** The parsed value of each kind of flag. */
export interface FlagValues {
  boolean: boolean;
  number: number;
  string: string;
  numbers: readonly number[];
  strings: readonly string[];
}

/** One flag of kind `K`. */
export interface FlagOf<K extends FlagKind> {
  /** The kind of value. */
  readonly type: K;
  /** One line for `--help`: what the flag does (the default and choices are added to it). */
  readonly help: string;
  /** The value when the flag is not given; without one, the value is `undefined` then. */
  readonly default?: FlagValues[K];
  /** The only values allowed (of a `string` flag, or of each item of a `strings` list). */
  readonly choices?: readonly string[];
  /**
   * Of a `number` flag (or each item of a `numbers` list): the least value allowed (1 for a
   * count of rounds, say: 0 would run nothing and print empty tables).
   */
  readonly min?: number;
  /** Of a `number` flag (or each item of a `numbers` list): only whole numbers are allowed. */
  readonly whole?: boolean;
}

/** One flag, of any kind. */
export type Flag = { [K in FlagKind]: FlagOf<K> }[FlagKind];

/** A script's flags by name (the name without its leading `--`). */
export type FlagSpec = Readonly<Record<string, Flag>>;

/**
 * The values `spec` parses into: booleans are `false` when absent; another flag without a
 * default is `undefined` when absent.
 */
export type ParsedFlags<S extends FlagSpec> = {
  -readonly [N in keyof S]: S[N]["type"] extends "boolean" ? boolean
    : S[N] extends { readonly default: unknown } ? FlagValues[S[N]["type"]]
    : FlagValues[S[N]["type"]] | undefined;
};

/** How a script is run and what it does, for the head of its `--help`. */
export interface Usage {
  /** The command line, e.g. `deno task bench [flags]`. */
  readonly command: string;
  /** What the script measures, in a sentence or two. */
  readonly summary: string;
}

/**
 * Types `spec` as written (literal kinds, and whether each flag has a default), checked against
 * {@linkcode FlagSpec}.
 *
 * @example
 * ```ts
 * import { defineFlags, parseFlags } from "./_flags.ts";
 * const FLAGS = defineFlags({ rounds: { type: "number", default: 5, help: "rounds" } });
 * const rounds: number = parseFlags(FLAGS, ["--rounds=3"]).rounds;
 * console.log(rounds); // 3
 * ```
 */
export function defineFlags<const S extends FlagSpec>(spec: S): S {
  return spec;
}

/** The message of a bad command line: `--name: what was expected, and what was given`. */
function flagError(name: string, expected: string, got: string): RangeError {
  return new RangeError(`--${name}: expected ${expected}, got ${JSON.stringify(got)}`);
}

/** `text` as a number within the flag's bounds, or a RangeError naming the flag. */
function numberOf(name: string, flag: Flag, text: string): number {
  const value = Number(text);
  const what = `${flag.whole ? "a whole number" : "a number"}${
    flag.min === undefined ? "" : ` ≥ ${flag.min}`
  }`;
  if (
    text.trim() === "" || !Number.isFinite(value) || (flag.whole && !Number.isInteger(value)) ||
    (flag.min !== undefined && value < flag.min)
  ) throw flagError(name, what, text);
  return value;
}

/** `text` as one of the flag's choices, in any case (or as is: it has none), else a RangeError. */
function choiceOf(name: string, flag: Flag, text: string): string {
  if (flag.choices === undefined) return text;
  const choice = matchChoice(text, flag.choices);
  if (choice === undefined) throw new RangeError(notAChoice(name, text, flag.choices));
  return choice;
}

/** The value of flag `name` given as `text`. */
function valueOf(name: string, flag: Flag, text: string): FlagValues[FlagKind] {
  switch (flag.type) {
    case "boolean":
      throw flagError(name, "no value (a bare flag)", text);
    case "number":
      return numberOf(name, flag, text);
    case "string":
      return choiceOf(name, flag, text);
    case "numbers":
      return text.split(",").map((item) => numberOf(name, flag, item));
    case "strings":
      return text.split(",").map((item) => choiceOf(name, flag, item));
  }
}

/**
 * Parses `args` against `spec`. Throws a RangeError naming the flag on an unknown flag (and the
 * nearest known one), a missing or malformed value, a value outside the choices (which match in
 * any case), or an argument that is not a flag.
 *
 * @example
 * ```ts
 * import { defineFlags, parseFlags } from "./_flags.ts";
 * import assert from "node:assert/strict";
 *
 * const FLAGS = defineFlags({
 *   quick: { type: "boolean", help: "fewer rounds" },
 *   sizes: { type: "strings", choices: ["4K", "4M"], help: "sizes to time" },
 *   threads: { type: "numbers", default: [1, 2], help: "thread counts" },
 * });
 * const flags = parseFlags(FLAGS, ["--quick", "--sizes", "4K,4M"]);
 * assert.deepEqual(flags, { quick: true, sizes: ["4K", "4M"], threads: [1, 2] });
 * assert.throws(() => parseFlags(FLAGS, ["--sizes=8K"]), RangeError);
 * ```
 */
export function parseFlags<S extends FlagSpec>(spec: S, args: readonly string[]): ParsedFlags<S> {
  const values: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(spec)) {
    values[name] = flag.type === "boolean" ? flag.default ?? false : flag.default;
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) throw new RangeError(`${JSON.stringify(arg)} is not a flag`);
    const equals = arg.indexOf("=");
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    const flag = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (flag === undefined) {
      throw new RangeError(unknownFlag(typedFlag(args, i), [...Object.keys(spec), "help"]));
    }
    if (equals >= 0) {
      values[name] = valueOf(name, flag, arg.slice(equals + 1));
    } else if (flag.type === "boolean") {
      values[name] = true;
    } else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith("--")) throw flagError(name, "a value", "");
      values[name] = valueOf(name, flag, next);
      i++;
    }
  }
  return values as ParsedFlags<S>;
}

/** The flag as it is written in the help's left column: `--rounds=N`, `--sizes=A,B`. */
function synopsis(name: string, flag: Flag): string {
  switch (flag.type) {
    case "boolean":
      return `--${name}`;
    case "number":
      return `--${name}=N`;
    case "string":
      return `--${name}=VALUE`;
    case "numbers":
      return `--${name}=N,N`;
    case "strings":
      return `--${name}=A,B`;
  }
}

/** The default as it would be written on the command line. */
function written(value: FlagValues[FlagKind]): string {
  return Array.isArray(value) ? value.join(",") : String(value);
}

/** `text` in lines of at most `width` characters (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  return [...lines, line];
}

/** Help lines are wrapped to this many columns. */
const HELP_WIDTH = 100;

/**
 * The `--help` text of `spec`: the usage line, the summary, then each flag with its help, its
 * choices and its default, wrapped to 100 columns.
 *
 * @example
 * ```ts
 * import { defineFlags, helpText } from "./_flags.ts";
 * const FLAGS = defineFlags({ rounds: { type: "number", default: 5, help: "rounds" } });
 * console.log(helpText(FLAGS, { command: "deno run bench/x.ts [flags]", summary: "Times x." }));
 * ```
 */
export function helpText(spec: FlagSpec, usage: Usage): string {
  const rows: [string, string][] = Object.entries(spec).map(([name, flag]) => {
    const notes: string[] = [];
    if (flag.choices) notes.push(`of ${flag.choices.join(", ")}`);
    if (flag.default !== undefined && flag.type !== "boolean") {
      notes.push(`default ${written(flag.default)}`);
    }
    return [synopsis(name, flag), notes.length ? `${flag.help} (${notes.join("; ")})` : flag.help];
  });
  rows.push(["-h, --help", "print this help and exit"]);
  const column = Math.max(...rows.map(([left]) => left.length)) + 4;
  const lines = rows.flatMap(([left, help]) =>
    wrap(help, HELP_WIDTH - column).map((text, i) =>
      (i === 0 ? `  ${left}` : "").padEnd(column) + text
    )
  );
  return [`Usage: ${usage.command}`, "", usage.summary, "", "Flags:", ...lines].join("\n");
}

/**
 * The flags of the running script: prints the help and exits on `--help` or `-h`; prints the
 * error and the help and exits with status 2 on a bad command line; else the parsed values.
 *
 * @example
 * ```ts ignore
 * import { defineFlags, readFlags } from "./_flags.ts";
 * const flags = readFlags(
 *   defineFlags({ quick: { type: "boolean", help: "fewer rounds" } }),
 *   { command: "deno run bench/x.ts [--quick]", summary: "Times x." },
 * );
 * if (flags.quick) console.log("quick");
 * ```
 */
export function readFlags<S extends FlagSpec>(
  spec: S,
  usage: Usage,
  args: readonly string[] = Deno.args,
): ParsedFlags<S> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(helpText(spec, usage));
    Deno.exit(0);
  }
  try {
    return parseFlags(spec, args);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    console.error(`${error.message}\n\n${helpText(spec, usage)}`);
    Deno.exit(2);
  }
}
