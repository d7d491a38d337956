/**
 * The settings of the serverless example (examples/serverless_handler.ts): its command line, and
 * the environment variables that stand for it where a platform passes no arguments (Deno Deploy).
 * Each flag has a variable, `RADAM_` and its name in capitals (`--port`: `RADAM_PORT`,
 * `--data-parallel`: `RADAM_DATA_PARALLEL=1`); the command line wins over the environment.
 *
 * Reading the environment needs `--allow-env` for these variables only
 * (`--allow-env=RADAM_PORT,RADAM_KV,…`: {@linkcode ENV_VARS}); without it the example reads none
 * and runs on the command line and the defaults, and says so in a note where that matters
 * ({@linkcode envNote}: some of the variables allowed, or none and no command line).
 *
 * @module
 */
import { typedFlag, unknownFlag } from "./_suggest.ts";

/** The flags that take a value. */
const FLAGS = [
  "--port",
  "--kv",
  "--chunk-bytes",
  "--stale-after-ms",
  "--max-attempts",
  "--timeout-ms",
  "--latency-ms",
  "--staleness",
  "--wait-ms",
  "--lease-ms",
  "--max-fold",
  "--handoff-ms",
  "--handoff-limit",
];

/** The flags given bare, without a value. */
const SWITCHES = ["--data-parallel", "--no-serialize"];

/**
 * The environment variable of flag `--name`: `RADAM_` and the name in capitals, `_` for `-`.
 *
 * @example
 * ```ts
 * import { envName } from "./serverless_settings.ts";
 * console.log(envName("stale-after-ms")); // RADAM_STALE_AFTER_MS
 * ```
 */
export function envName(name: string): string {
  return `RADAM_${name.toUpperCase().replaceAll("-", "_")}`;
}

/** Every variable the example reads, one per flag: what `--allow-env=` should list. */
export const ENV_VARS: readonly string[] = [...SWITCHES, ...FLAGS].map((f) => envName(f.slice(2)));

/**
 * The command line (see the module documentation): each flag's value by name, given as
 * `--name value` or `--name=value`; a TypeError for a flag it does not know (naming the nearest
 * it knows, and their list) or one without a value.
 *
 * @example
 * ```ts
 * import { parseArgs } from "./serverless_settings.ts";
 * console.log(parseArgs(["--port=0", "--kv", "training.sqlite3", "--data-parallel"]));
 * // { port: "0", kv: "training.sqlite3", "data-parallel": "" }
 * ```
 */
export function parseArgs(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].startsWith("--") && args[i].includes("=")
      ? [args[i].slice(0, args[i].indexOf("=")), args[i].slice(args[i].indexOf("=") + 1)]
      : [args[i], undefined];
    if (SWITCHES.includes(flag) && inline === undefined) {
      out[flag.slice(2)] = "";
      continue;
    }
    if (!FLAGS.includes(flag)) {
      const known = [...SWITCHES, ...FLAGS].map((name) => name.slice(2));
      throw new TypeError(
        `${unknownFlag(typedFlag(args, i), known)} (${
          SWITCHES.join(" and ")
        } bare, the others with a value)`,
      );
    }
    const value = inline ?? args[++i];
    if (value === undefined) {
      throw new TypeError(
        `No value for ${JSON.stringify(flag)}; give one as ${flag} VALUE or ${flag}=VALUE`,
      );
    }
    out[flag.slice(2)] = value;
  }
  return out;
}

/**
 * The settings the environment gives, by flag name, as {@linkcode parseArgs} gives them: a
 * variable unset or empty gives nothing; a switch's is `1` or `true` (on), `0` or `false` (off).
 * `env` reads one variable (undefined when unset or not readable). A TypeError names a switch's
 * variable of another value.
 *
 * @example
 * ```ts
 * import { envArgs } from "./serverless_settings.ts";
 * const env: Record<string, string> = { RADAM_PORT: "8000", RADAM_DATA_PARALLEL: "1" };
 * console.log(envArgs((name) => env[name])); // { "data-parallel": "", port: "8000" }
 * ```
 */
export function envArgs(env: (name: string) => string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const flag of [...SWITCHES, ...FLAGS]) {
    const name = flag.slice(2), value = env(envName(name));
    if (value === undefined || value === "") continue;
    if (!SWITCHES.includes(flag)) {
      out[name] = value;
    } else if (!["1", "true", "0", "false"].includes(value.toLowerCase())) {
      throw new TypeError(
        `${envName(name)} must be 1 or true (as ${flag}), or 0 or false, got ${
          JSON.stringify(value)
        }`,
      );
    } else if (value === "1" || value.toLowerCase() === "true") out[name] = "";
  }
  return out;
}

/** The example's settings: each flag's value by name, and where it came from. */
export interface Settings {
  /** Each flag's value, by name (`""` for a switch that is on). */
  readonly values: Readonly<Record<string, string>>;
  /** Where each value came from: `--port` or `RADAM_PORT`. */
  readonly origins: Readonly<Record<string, string>>;
}

/**
 * The settings of command line `args` over environment `env` (see {@linkcode envArgs}): the
 * command line wins.
 *
 * @example
 * ```ts
 * import { settingsOf } from "./serverless_settings.ts";
 * const env: Record<string, string> = { RADAM_PORT: "8000", RADAM_KV: "default" };
 * const { values, origins } = settingsOf(["--port=0"], (name) => env[name]);
 * console.log(values, origins); // { kv: "default", port: "0" } { kv: "RADAM_KV", port: "--port" }
 * ```
 */
export function settingsOf(
  args: readonly string[],
  env: (name: string) => string | undefined,
): Settings {
  const fromArgs = parseArgs(args), fromEnv = envArgs(env);
  const origins: Record<string, string> = {};
  for (const name of Object.keys(fromEnv)) origins[name] = envName(name);
  for (const name of Object.keys(fromArgs)) origins[name] = `--${name}`;
  return { values: { ...fromEnv, ...fromArgs }, origins };
}

/**
 * Of {@linkcode ENV_VARS}, those this process may read, without asking: a reader of them, and
 * the note to print where that matters ({@linkcode envNote} of them and command line `args`).
 *
 * @example
 * ```ts ignore
 * import { readableEnv } from "./serverless_settings.ts";
 * const { env, note } = readableEnv(Deno.args);
 * if (note) console.log(note);
 * console.log(env("RADAM_PORT"));
 * ```
 */
export function readableEnv(args: readonly string[]): {
  env: (name: string) => string | undefined;
  note?: string;
} {
  const readable = ENV_VARS.filter((variable) =>
    Deno.permissions.querySync({ name: "env", variable }).state === "granted"
  );
  const env = (name: string) => readable.includes(name) ? Deno.env.get(name) : undefined;
  return { env, note: envNote(readable, args) };
}

/**
 * The note to print where the process may read only the variables `readable` of
 * {@linkcode ENV_VARS}, run with command line `args`, or undefined where it does not matter. It
 * matters where `--allow-env` names some of the variables but not all (the environment was
 * meant, and some of it is not read), and where it names none and the command line is empty
 * (the environment would be the only source of settings, as on Deno Deploy). A local run that
 * gives its settings on the command line without `--allow-env` is not told on every start.
 *
 * @example
 * ```ts
 * import { ENV_VARS, envNote } from "./serverless_settings.ts";
 * console.log(envNote([], ["--port=0"]), envNote(ENV_VARS, [])); // undefined undefined
 * console.log(envNote([], [])); // note: no RADAM_* environment variable read (no --allow-env)…
 * ```
 */
export function envNote(readable: readonly string[], args: readonly string[]): string | undefined {
  if (readable.length === ENV_VARS.length) return undefined;
  if (readable.length === 0 && args.length > 0) return undefined;
  const unread = ENV_VARS.filter((name) => !readable.includes(name));
  return `note: ${
    readable.length === 0
      ? "no RADAM_* environment variable read (no --allow-env)"
      : `${unread.join(", ")} not read (not in --allow-env)`
  }: those settings are the command line's or the defaults. To read ${
    readable.length === 0 ? "them" : "them too"
  }, run with --allow-env=${ENV_VARS.join(",")}`;
}

/**
 * Setting `name` as a whole number (or `Infinity`, where `infinity` allows it), undefined when
 * not set; a TypeError naming where it came from otherwise.
 *
 * @example
 * ```ts
 * import { settingsOf, wholeNumber } from "./serverless_settings.ts";
 * const settings = settingsOf(["--port", "8000"], () => undefined);
 * console.log(wholeNumber(settings, "port"), wholeNumber(settings, "wait-ms")); // 8000 undefined
 * ```
 */
export function wholeNumber(
  settings: Settings,
  name: string,
  infinity = false,
): number | undefined {
  const text = settings.values[name];
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) && !(infinity && text === "Infinity")) {
    throw new TypeError(
      `${settings.origins[name]} must be a whole number${infinity ? " or Infinity" : ""}, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return Number(text);
}
