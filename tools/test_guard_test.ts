import assert from "node:assert/strict";
import { endsAllPassed } from "./test_guard.ts";

Deno.test("test_guard: only a last summary with 0 failed counts as all passed", () => {
  const green = "\x1b[0m\x1b[32mok\x1b[0m | 27 passed | 0 failed \x1b[0m\x1b[38;5;245m(13s)\x1b[0m";
  assert.equal(endsAllPassed(`a ... ok\n\n${green}\n\n`), true);
  assert.equal(endsAllPassed("ok | 3 passed (5 steps) | 0 failed (1s)\n"), true);
  assert.equal(endsAllPassed("FAILED | 26 passed | 1 failed (13s)\n"), false);
  assert.equal(endsAllPassed("ok | 1 passed | 10 failed\n"), false);
  assert.equal(endsAllPassed(`${green}\nrunning 3 tests from ./x_test.ts\n`), false);
  assert.equal(endsAllPassed(""), false);
});
