/**
 * The store's entry points and layers: mod.ts imports nothing of them; `store.ts` (and store/)
 * imports only mod.ts, its own folder and the library's private helpers of base/ (`base/_*.ts`:
 * UTF-8 where the runtime has no TextEncoder, the wording of errors; no state, no internals),
 * and uses no Deno API; `kv.ts` (and kv/) imports only mod.ts, store/, those helpers and its own
 * folder. (Here, beside the serverless example, because reading the sources needs --allow-read
 * and --allow-run, which the tests of examples/ run with.)
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);

/** The local files of the module graph of `entry` (paths relative to the repository). */
async function graphOf(entry: string): Promise<string[]> {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(entry, root).pathname],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(info.success, `deno info ${entry}`);
  const graph = JSON.parse(new TextDecoder().decode(info.stdout));
  return graph.modules
    .map((m: { specifier: string }) => m.specifier)
    .filter((s: string) => s.startsWith(root.href))
    .map((s: string) => s.slice(root.href.length));
}

/** The relative import specifiers of a source file. */
async function importsOf(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(path, root));
  return [...text.matchAll(/^(?:import|export)\b[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]);
}

async function sourcesIn(folder: string): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(new URL(folder, root))) {
    if (e.isFile && e.name.endsWith(".ts")) files.push(`${folder}${e.name}`);
  }
  return files.sort();
}

Deno.test("mod.ts imports nothing of the store or KV entry points and needs no permission", async () => {
  const files = await graphOf("mod.ts");
  assert.ok(files.includes("core/checkpoint.ts"), "the graph was read");
  for (const f of files) {
    assert.ok(!/^(store|kv)(\.ts$|\/)/.test(f), f);
  }
});

Deno.test("store.ts imports only mod.ts, store/ and base's private helpers, and no Deno API", async () => {
  const files = await graphOf("store.ts");
  assert.ok(files.includes("store/optimistic.ts"), "the graph was read");
  for (const f of files) assert.ok(!/^kv(\.ts$|\/)/.test(f), f);
  for (const file of ["store.ts", ...await sourcesIn("store/")]) {
    for (const spec of await importsOf(file)) {
      const ok = file === "store.ts"
        ? /^\.\/store\//.test(spec)
        : /^(\.\/|\.\.\/mod\.ts$|\.\.\/base\/_\w+\.ts$)/.test(spec);
      assert.ok(ok, `${file} imports ${spec}`);
    }
    const code = (await Deno.readTextFile(new URL(file, root)))
      .replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    assert.doesNotMatch(code, /\bDeno\./, file);
  }
});

Deno.test("kv.ts and kv/ import only mod.ts, store.ts, store/, base's private helpers and kv/", async () => {
  for (const file of ["kv.ts", ...await sourcesIn("kv/")]) {
    const allowed = file === "kv.ts"
      ? /^\.\/(store\.ts|kv\/)/
      : /^(\.\/|\.\.\/store\/|\.\.\/mod\.ts$|\.\.\/base\/_\w+\.ts$)/;
    for (const spec of await importsOf(file)) {
      assert.ok(allowed.test(spec), `${file} imports ${spec}`);
    }
  }
});
