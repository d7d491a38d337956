/** The example's command line: `--name value` and `--name=value`, as the repo's other CLIs. */
import assert from "node:assert/strict";
import { parseArgs } from "./serverless_handler.ts";

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
      [["--Kv", "x"], /^Unknown flag "--Kv" \(did you mean --kv\?\)/],
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
  assert.match(text, /^error: Unknown flag "--prot" \(did you mean --port\?\); the flags are /);
  assert.doesNotMatch(text, /Uncaught|\s{4}at /);
});
