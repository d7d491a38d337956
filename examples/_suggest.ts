/**
 * The wording of a command-line mistake, shared by the repository's command lines (the demo, the
 * study, the bench scripts, the serverless example): an unknown flag is named with the nearest
 * known one (by edit distance, case ignored) and the list of those that exist; a value outside
 * its choices likewise. Choices match whatever their case ({@linkcode matchChoice}).
 *
 * Here, in examples/, because bench/ and tools/ import from examples/ already: a helper in either
 * would make two folders import each other (see tools/layers.ts).
 *
 * @module
 */

/**
 * The edit distance between `a` and `b`, case ignored: the fewest insertions, deletions,
 * substitutions and swaps of two neighbouring letters that turn one into the other.
 *
 * @example
 * ```ts
 * import { editDistance } from "./_suggest.ts";
 * console.log(editDistance("optimizer", "optimizers"), editDistance("lsr", "LRS")); // 1 1
 * ```
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase(), t = b.toLowerCase();
  // rows[i][j]: the distance between the first i letters of s and the first j of t.
  const rows = Array.from({ length: s.length + 1 }, (_, i) => {
    const row = new Array<number>(t.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= t.length; j++) rows[0][j] = j;
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const same = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + same);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        best = Math.min(best, rows[i - 2][j - 2] + 1);
      }
      rows[i][j] = best;
    }
  }
  return rows[s.length][t.length];
}

/** Whether the letters of `short` appear in `long` in order, from its first (`lrs`, `lr-sweep`). */
function abbreviates(short: string, long: string): boolean {
  const s = short.toLowerCase(), l = long.toLowerCase();
  if (s.length === 0 || s[0] !== l[0]) return false;
  let at = 0;
  for (const letter of l) if (letter === s[at]) at++;
  return at >= s.length;
}

/**
 * Of `candidates`, the nearest to `word` by {@linkcode editDistance} (the first of equals) among
 * those near enough to be what was meant: within one edit for every three letters of `word`
 * (at least one), or one spelling the other in short (`lrs` and `lr-sweep`); else undefined.
 *
 * @example
 * ```ts
 * import { nearest } from "./_suggest.ts";
 * console.log(nearest("state", ["epochs", "states"]), nearest("bogus", ["out"])); // states undefined
 * ```
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  const within = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined, bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    const near = distance <= within || abbreviates(candidate, word) ||
      abbreviates(word, candidate);
    if (near && distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

/**
 * The unknown flag at `args[index]` as the user typed it, for {@linkcode unknownFlag}: with its
 * `=value`, or with the word after it where that is no flag (`--optimizer radam`: an unknown
 * flag's value, taken apart from it). A parser that reports the flag's name alone (node:util's
 * `parseArgs`: `--optimizer`) is given its index by {@linkcode typedIndex}.
 *
 * @example
 * ```ts
 * import { typedFlag } from "./_suggest.ts";
 * console.log(typedFlag(["--optimizer", "radam", "--epochs=2"], 0)); // --optimizer radam
 * ```
 */
export function typedFlag(args: readonly string[], index: number): string {
  const arg = args[index], next = args[index + 1];
  if (!arg.startsWith("-") || arg.includes("=") || next === undefined || next.startsWith("-")) {
    return arg;
  }
  return `${arg} ${next}`;
}

/**
 * The index in `args` of the flag a parser reported by its name alone (`--optimizer`, as
 * node:util's `parseArgs` does): the first argument that is it, or it with an `=value`;
 * undefined where none is (a short flag among others, `-xv`).
 *
 * @example
 * ```ts
 * import { typedIndex } from "./_suggest.ts";
 * console.log(typedIndex(["--epochs", "2", "--optimizer=radam"], "--optimizer")); // 2
 * ```
 */
export function typedIndex(args: readonly string[], name: string): number | undefined {
  const index = args.findIndex((arg) => arg === name || arg.startsWith(`${name}=`));
  return index < 0 ? undefined : index;
}

/**
 * The message of an unknown flag: `given` as typed (`--optimizer=radam`, or `--optimizer radam`
 * as {@linkcode typedFlag} gives it), the nearest of the flags `known` (named without their
 * `--`), and the list of them.
 *
 * @example
 * ```ts
 * import { unknownFlag } from "./_suggest.ts";
 * console.log(unknownFlag("--optimizer=radam", ["epochs", "optimizers"]));
 * // Unknown flag "--optimizer=radam" (did you mean --optimizers?); the flags are --epochs, ...
 * ```
 */
export function unknownFlag(given: string, known: readonly string[]): string {
  const name = given.split(/[= ]/, 1)[0].replace(/^-+/, "");
  const near = nearest(name, known);
  return `Unknown flag ${JSON.stringify(given)}${
    near === undefined ? "" : ` (did you mean --${near}?)`
  }; the flags are ${known.map((flag) => `--${flag}`).join(", ")}`;
}

/**
 * `text` as one of `choices`: the choice itself, or the only one that differs from it in case
 * alone (`RAdam` for `radam`); undefined if none (or several) match.
 *
 * @example
 * ```ts
 * import { matchChoice } from "./_suggest.ts";
 * console.log(matchChoice("RAdam", ["radam", "adam"]), matchChoice("adamW", ["adam"])); // radam undefined
 * ```
 */
export function matchChoice(text: string, choices: readonly string[]): string | undefined {
  if (choices.includes(text)) return text;
  const same = choices.filter((choice) => choice.toLowerCase() === text.toLowerCase());
  return same.length === 1 ? same[0] : undefined;
}

/**
 * The message of a value of flag `--name` outside its `choices`: the value, the nearest choice
 * and the list of them (case does not matter: say so).
 *
 * @example
 * ```ts
 * import { notAChoice } from "./_suggest.ts";
 * console.log(notAChoice("optimizers", "adamW", ["radam", "adam", "lion"]));
 * // --optimizers: "adamW" is not one of radam, adam, lion (in any case; did you mean adam?)
 * ```
 */
export function notAChoice(name: string, given: string, choices: readonly string[]): string {
  const near = nearest(given, choices);
  return `--${name}: ${JSON.stringify(given)} is not one of ${choices.join(", ")} (in any case${
    near === undefined ? "" : `; did you mean ${near}?`
  })`;
}
