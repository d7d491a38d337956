import assert from "node:assert/strict";
import fc from "fast-check";
import { defineFlags, helpText, parseFlags } from "../bench/_flags.ts";

const FLAGS = defineFlags({
  quick: { type: "boolean", help: "fewer rounds" },
  rounds: { type: "number", help: "rounds (default: 7; with --quick: 3)" },
  seed: { type: "number", default: 1, help: "seed of the random orders" },
  dir: { type: "string", help: "where the database goes" },
  mode: { type: "string", choices: ["hot", "cold"], default: "hot", help: "the regime" },
  threads: { type: "numbers", default: [1, 2], help: "thread counts" },
  sizes: { type: "strings", choices: ["4K", "256K", "4M"], help: "sizes to time" },
  "no-write": { type: "boolean", help: "print only" },
});

Deno.test("bench flags: absent flags take their defaults; booleans are false", () => {
  const flags = parseFlags(FLAGS, []);
  assert.deepEqual(flags, {
    quick: false,
    rounds: undefined,
    seed: 1,
    dir: undefined,
    mode: "hot",
    threads: [1, 2],
    sizes: undefined,
    "no-write": false,
  });
});

Deno.test("bench flags: --name=value, --name value, bare booleans, lists, the last wins", () => {
  const flags = parseFlags(FLAGS, [
    "--quick",
    "--rounds=3",
    "--seed",
    "-4",
    "--dir",
    "/tmp/x=y",
    "--mode=cold",
    "--threads=1,2,4",
    "--sizes=4M,4K",
    "--no-write",
    "--rounds=5",
  ]);
  assert.deepEqual(flags, {
    quick: true,
    rounds: 5,
    seed: -4,
    dir: "/tmp/x=y",
    mode: "cold",
    threads: [1, 2, 4],
    sizes: ["4M", "4K"],
    "no-write": true,
  });
});

Deno.test("bench flags: a bad command line is a RangeError naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--round=3"], /Unknown flag "--round=3"/],
    [["--round", "3"], /Unknown flag "--round 3" \(did you mean --rounds\?\)/],
    [["--toString"], /Unknown flag "--toString"/],
    [["quick"], /"quick" is not a flag/],
    [["--rounds=three"], /--rounds: expected a number, got "three"/],
    [["--rounds="], /--rounds: expected a number/],
    [["--rounds"], /--rounds: expected a value/],
    [["--rounds", "--quick"], /--rounds: expected a value/],
    [["--threads=1,,2"], /--threads: expected a number, got ""/],
    [["--mode=warm"], /--mode: "warm" is not one of hot, cold/],
    [["--sizes=4K,8K"], /--sizes: "8K" is not one of 4K, 256K, 4M/],
    [["--quick=yes"], /--quick: expected no value/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseFlags(FLAGS, args), (e) => e instanceof RangeError, args.join(" "));
    assert.throws(() => parseFlags(FLAGS, args), message, args.join(" "));
  }
});

Deno.test("bench flags: an unknown flag is named with the nearest one and the list of them", () => {
  const cases: [string, string][] = [
    ["--round=3", "rounds"],
    ["--Quick", "quick"],
    [
      "--no-writes",
      "no-write",
    ],
    ["--thread", "threads"],
    ["--mdoe=hot", "mode"],
  ];
  for (const [arg, near] of cases) {
    assert.throws(() => parseFlags(FLAGS, [arg]), (e) => {
      assert.ok(e instanceof RangeError);
      assert.ok(e.message.includes(`(did you mean --${near}?)`), e.message);
      for (const name of [...Object.keys(FLAGS), "help"]) {
        assert.ok(e.message.includes(`--${name}`), `${e.message} lists --${name}`);
      }
      return true;
    });
  }
});

Deno.test("bench flags: a choice matches in any case; a wrong one names the nearest", () => {
  const flags = parseFlags(FLAGS, ["--mode=COLD", "--sizes=4k,256k,4M"]);
  assert.equal(flags.mode, "cold");
  assert.deepEqual(flags.sizes, ["4K", "256K", "4M"]);
  assert.throws(() => parseFlags(FLAGS, ["--mode=hoot"]), /"hoot" .*did you mean hot\?/);
  assert.throws(() => parseFlags(FLAGS, ["--sizes=4K,25K"]), /"25K" .*did you mean 256K\?/);
});

Deno.test("bench flags: any values written either way parse back to themselves", () => {
  const number = fc.double({ noNaN: true, noDefaultInfinity: true });
  fc.assert(fc.property(
    fc.record({
      quick: fc.boolean(),
      rounds: fc.option(number, { nil: undefined }),
      threads: fc.array(number, { minLength: 1, maxLength: 4 }),
      sizes: fc.option(fc.array(fc.constantFrom("4K", "256K", "4M"), { minLength: 1 }), {
        nil: undefined,
      }),
      dir: fc.option(fc.string({ minLength: 1 }).filter((s) => !s.startsWith("--")), {
        nil: undefined,
      }),
    }),
    fc.boolean(),
    (given, spaced) => {
      const args: string[] = given.quick ? ["--quick"] : [];
      const put = (name: string, value: string) =>
        args.push(...(spaced ? [`--${name}`, value] : [`--${name}=${value}`]));
      if (given.rounds !== undefined) put("rounds", String(given.rounds));
      put("threads", given.threads.join(","));
      if (given.sizes !== undefined) put("sizes", given.sizes.join(","));
      if (given.dir !== undefined) put("dir", given.dir);
      const flags = parseFlags(FLAGS, args);
      assert.equal(flags.quick, given.quick);
      // as written in decimal (-0 is written "0")
      const written = (x: number) => Number(String(x));
      assert.equal(flags.rounds, given.rounds === undefined ? undefined : written(given.rounds));
      assert.deepEqual(flags.threads, given.threads.map(written));
      assert.deepEqual(flags.sizes, given.sizes);
      assert.equal(flags.dir, given.dir);
    },
  ));
});

Deno.test("bench flags: the help lists every flag with its choices and default", () => {
  const help = helpText(FLAGS, { command: "deno run bench/x.ts [flags]", summary: "Times x." });
  const lines = help.split("\n");
  assert.equal(lines[0], "Usage: deno run bench/x.ts [flags]");
  assert.equal(lines[2], "Times x.");
  const flagLines = lines.slice(lines.indexOf("Flags:") + 1);
  const firsts = flagLines.filter((line) => line.startsWith("  -"));
  assert.deepEqual(
    firsts.map((line) => line.trim().split(/[ =]/)[0]),
    [...Object.keys(FLAGS).map((name) => `--${name}`), "-h,"],
  );
  assert.match(help, /--seed=N +seed of the random orders \(default 1\)$/m);
  assert.match(help, /--threads=N,N +thread counts \(default 1,2\)$/m);
  assert.match(help, /--sizes=A,B +sizes to time \(of 4K, 256K, 4M\)$/m);
  assert.match(help, /--mode=VALUE +the regime \(of hot, cold; default hot\)$/m);
  assert.match(help, /--quick +fewer rounds$/m);
  assert.match(help, /-h, --help +print this help and exit$/);
});

Deno.test("bench flags: long help wraps to 100 columns, in one column", () => {
  const help = helpText(
    defineFlags({
      only: {
        type: "strings",
        choices: Array.from({ length: 40 }, (_, i) => `key-${i}`),
        help: "keys",
      },
      n: { type: "number", help: "a count" },
    }),
    { command: "x", summary: "y" },
  );
  const lines = help.split("\n").slice(5);
  assert.ok(lines.length > 3);
  assert.ok(lines.every((line) => line.length <= 100), help);
  const column = (line: string) =>
    line.startsWith("  -") ? line.search(/(?<=\S {2,})\S/) : line.search(/\S/);
  assert.equal(new Set(lines.map(column)).size, 1, help);
  assert.match(help, /key-0, key-1,/);
  assert.match(help, /key-39\)$/m);
});

Deno.test("bench flags: a count below its least or not whole (--rounds=0, 2.5) is refused, naming the bound", () => {
  const counted = defineFlags({
    rounds: { type: "number", min: 1, whole: true, help: "rounds" },
    threads: { type: "numbers", min: 1, whole: true, default: [1], help: "thread counts" },
  });
  for (
    const [args, message] of [
      [["--rounds=0"], '--rounds: expected a whole number ≥ 1, got "0"'],
      [["--rounds=2.5"], '--rounds: expected a whole number ≥ 1, got "2.5"'],
      [["--threads=1,0"], '--threads: expected a whole number ≥ 1, got "0"'],
    ] as const
  ) {
    assert.throws(() => parseFlags(counted, [...args]), { name: "RangeError", message });
  }
  assert.deepEqual(parseFlags(counted, ["--rounds=3", "--threads=1,2"]), {
    rounds: 3,
    threads: [1, 2],
  });
});

Deno.test("bench: --only without a C contender compiles no C (no cc, no write or run permission needed)", async () => {
  const { cVariants, compileC } = await import("../bench/compare/c_baseline.ts");
  // Run here without those permissions' use: nothing is made, nothing is run.
  const made = await compileC(cVariants(2), ["js", "wasm"]);
  assert.ok(made instanceof Map);
  assert.equal(made.size, 0);
});
