/** The example's command line: `--name value` and `--name=value`, as the repo's other CLIs. */
import assert from "node:assert/strict";
import { parseArgs } from "./serverless_handler.ts";
import { ENV_VARS, envName, envNote, settingsOf, wholeNumber } from "./serverless_settings.ts";

Deno.test("serverless handler args: --name=value is taken as --name value is", () => {
  assert.deepEqual(parseArgs(["--port=0", "--kv", "data/x.sqlite3", "--data-parallel"]), {
    port: "0",
    kv: "data/x.sqlite3",
    "data-parallel": "",
  });
  assert.deepEqual(parseArgs(["--kv=a=b.sqlite3", "--no-serialize"]), {
    kv: "a=b.sqlite3",
    "no-serialize": "",
  });
});

Deno.test("serverless handler args: an unknown flag or one without its value is a TypeError saying which", () => {
  for (
    const [args, message] of [
      [["--prot=8787"], /^Unknown flag "--prot=8787" \(did you mean --port\?\); the flags are /],
      [["--port"], /^No value for "--port"; give one as --port VALUE or --port=VALUE$/],
      [["--data-parallel=1"], /^Unknown flag "--data-parallel=1" .*--data-parallel and --no-/],
      [["--datapar"], /^Unknown flag "--datapar" \(did you mean --data-parallel\?\)/],
      [["--Kv", "x"], /^Unknown flag "--Kv x" \(did you mean --kv\?\)/],
      [["--Kv", "--port=0"], /^Unknown flag "--Kv" \(did you mean --kv\?\)/],
      [["--chunk-byte=9"], /^Unknown flag "--chunk-byte=9" \(did you mean --chunk-bytes\?\)/],
    ] as const
  ) {
    assert.throws(
      () => parseArgs([...args]),
      (e) => e instanceof TypeError && message.test(e.message),
    );
  }
});

Deno.test("serverless handler args: a bad command line ends the process with its message, no stack", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "examples/serverless_handler.ts", "--prot", "8787"],
    stdout: "null",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stderr);
  assert.equal(code, 2);
  assert.match(
    text,
    /^error: Unknown flag "--prot 8787" \(did you mean --port\?\); the flags are /,
  );
  assert.doesNotMatch(text, /Uncaught|\s{4}at /);
});

Deno.test("serverless handler settings: each flag has its RADAM_ variable; the command line wins", () => {
  const env: Record<string, string> = {
    RADAM_PORT: "8000",
    RADAM_KV: "default",
    RADAM_DATA_PARALLEL: "1",
    RADAM_NO_SERIALIZE: "false",
    RADAM_WAIT_MS: "",
    RADAM_HANDOFF_LIMIT: "Infinity",
    PORT: "9",
  };
  const settings = settingsOf(["--port=0", "--wait-ms", "50"], (name) => env[name]);
  assert.deepEqual(settings.values, {
    "data-parallel": "",
    port: "0",
    kv: "default",
    "handoff-limit": "Infinity",
    "wait-ms": "50",
  });
  assert.equal(settings.origins.port, "--port");
  assert.equal(settings.origins.kv, "RADAM_KV");
  assert.equal(wholeNumber(settings, "handoff-limit", true), Infinity);
  // Every variable stands for a flag the command line takes, and every flag has one.
  assert.equal(ENV_VARS.length, new Set(ENV_VARS).size);
  for (const name of ENV_VARS) {
    const flag = `--${name.slice("RADAM_".length).toLowerCase().replaceAll("_", "-")}`;
    const known = [[flag], [flag, "1"]].some((args) => {
      try {
        return Object.hasOwn(parseArgs(args), flag.slice(2));
      } catch {
        return false;
      }
    });
    assert.ok(known, name);
    assert.equal(envName(flag.slice(2)), name);
  }
});

Deno.test("serverless handler settings: a bad value names the variable it came from", () => {
  const bad = (env: Record<string, string>, message: RegExp) =>
    assert.throws(() => {
      const settings = settingsOf([], (name) => env[name]);
      for (const name of Object.keys(settings.values)) wholeNumber(settings, name);
    }, (e) => e instanceof TypeError && message.test(e.message));
  bad({ RADAM_WAIT_MS: "soon" }, /^RADAM_WAIT_MS must be a whole number, got "soon"$/);
  bad({ RADAM_DATA_PARALLEL: "yes" }, /^RADAM_DATA_PARALLEL must be 1 or true .*got "yes"$/);
  assert.throws(
    () => wholeNumber(settingsOf(["--port=x"], () => undefined), "port"),
    (e) => e instanceof TypeError && e.message === '--port must be a whole number, got "x"',
  );
});

/** The example started with `env` and `permissions`: its output up to its listening line. */
async function started(env: Record<string, string>, permissions: string[], args: string[] = []) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--unstable-kv", "--allow-net=127.0.0.1", ...permissions]
      .concat("examples/serverless_handler.ts", ...args),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output += text;
      if (/Listening on .*\)\n/.test(output)) child.kill("SIGTERM");
    }
  };
  await Promise.all([read(child.stdout), read(child.stderr)]);
  return { output, code: (await child.status).code };
}

Deno.test("serverless handler settings: the process reads its RADAM_ variables, the command line winning", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kv = `${dir}/env.sqlite3`;
    // RADAM_PORT=1 would need root: the command line's --port 0 is taken.
    const env = { RADAM_KV: kv, RADAM_DATA_PARALLEL: "1", RADAM_PORT: "1" };
    const { output } = await started(env, [
      `--allow-env=${ENV_VARS.join(",")}`,
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
    ], ["--port", "0"]);
    assert.match(
      output,
      /Listening on http:\/\/127\.0\.0\.1:\d+\/ \(Deno KV .*env\.sqlite3, data-parallel\)/,
    );
    assert.doesNotMatch(output, /note:/);
    const bad = await started({ RADAM_MAX_FOLD: "many" }, [`--allow-env=${ENV_VARS.join(",")}`]);
    assert.equal(bad.code, 2);
    assert.match(bad.output, /^error: RADAM_MAX_FOLD must be a whole number, got "many"$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serverless handler settings: without --allow-env it reads none and runs on the command line and the defaults, noting only where some were allowed", async () => {
  const { output } = await started({ RADAM_DATA_PARALLEL: "1", RADAM_MAX_FOLD: "many" }, [], [
    "--port=0",
  ]);
  // Settings on the command line, no --allow-env: a local run, not told on every start.
  assert.doesNotMatch(output, /note:/);
  assert.match(output, /Listening on http:\/\/127\.0\.0\.1:\d+\/ \(in memory, optimistic\)/);
  const some = await started({}, ["--allow-env=RADAM_PORT"], ["--port=0"]);
  assert.match(
    some.output,
    /^note: RADAM_DATA_PARALLEL, RADAM_NO_SERIALIZE, RADAM_KV, .* not read \(not in --allow-env\)/m,
  );
  assert.doesNotMatch(some.output, /RADAM_PORT(, | not read)/);
});

Deno.test("serverless handler settings: the note is printed where the environment was meant", () => {
  // No --allow-env and no command line: the environment would be the only source of settings.
  assert.match(
    envNote([], []) ?? "",
    /^note: no RADAM_\* environment variable read \(no --allow-env\).*--allow-env=RADAM_DATA_PARALLEL,/,
  );
  assert.equal(envNote([], ["--port=0"]), undefined);
  assert.equal(envNote(ENV_VARS, []), undefined);
  assert.equal(envNote(ENV_VARS, ["--port=0"]), undefined);
  // Some allowed: the others are named, with a command line or without.
  for (const args of [[], ["--port=0"]]) {
    assert.match(
      envNote(["RADAM_PORT"], args) ?? "",
      /RADAM_KV, .* not read \(not in --allow-env\)/,
    );
  }
});

Deno.test("serverless handler settings: the README's --allow-env names every variable the example reads", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const lists = [...readme.matchAll(/--allow-env=(RADAM_[A-Z_,]+)/g)].map((m) => m[1].split(","));
  assert.ok(lists.length > 0, "the README runs the example with --allow-env");
  for (const list of lists) assert.deepEqual([...list].sort(), [...ENV_VARS].sort());
});
