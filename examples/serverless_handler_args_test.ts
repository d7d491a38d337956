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
      [["--prot=8787"], /^Unknown argument "--prot=8787"; expected .*--port, --kv, /],
      [["--port"], /^No value for "--port"; expected .*\(--port 8787 or --port=8787\)$/],
      [["--data-parallel=1"], /^Unknown argument "--data-parallel=1"/],
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
  assert.match(text, /^error: Unknown argument "--prot"/);
  assert.doesNotMatch(text, /Uncaught|\s{4}at /);
});
