import assert from "node:assert/strict";
import {
  buildGeneratedModule,
  checkDerivedBuild,
  compileKernels,
  GENERATED_PATH,
} from "./build_wasm.ts";
import {
  customSectionOf,
  importMemory,
  KERNEL_MARK,
  KERNEL_MEMORIES,
  sharedSections,
} from "../cpu/_wasm_memory.ts";
import { kernelBytes, sharedKernelBytes } from "../cpu/wasm_backend.ts";
import {
  DISPATCH_PATH,
  kernelDispatchModule,
  kernelLayoutModule,
  LAYOUT_PATH,
} from "./kernel_layout.ts";

Deno.test("the committed kernel module is what assembly/ compiles to (every build)", async () => {
  const rebuilt = await buildGeneratedModule();
  const committed = await Deno.readTextFile(GENERATED_PATH);
  assert.ok(
    rebuilt === committed,
    `${GENERATED_PATH} differs from a fresh build of assembly/: run \`deno task build\``,
  );
});

const builds = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();
/** {@linkcode compileKernels}, once a variant for the tests of this file that share it. */
function compiled(variant: "plain" | "shared" | "imported"): Promise<Uint8Array<ArrayBuffer>> {
  let build = builds.get(variant);
  if (build === undefined) builds.set(variant, build = compileKernels(variant));
  return build;
}

Deno.test("the package ships the plain kernel only, and makes the compiler's other builds from it byte for byte", async () => {
  const generated = await import("../cpu/kernels_wasm.generated.ts");
  assert.deepEqual(Object.keys(generated), ["KERNELS_WASM_BASE64"]);
  assert.deepEqual(kernelBytes(), await compiled("plain"));
  assert.deepEqual(sharedKernelBytes(), await compiled("shared"));
  assert.deepEqual(
    importMemory(kernelBytes(), KERNEL_MEMORIES.imported),
    await compiled("imported"),
  );
});

Deno.test("every build of the kernel carries one mark, the SHA-256 of the sections they share, which setWasmModule compares", async () => {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", sharedSections(kernelBytes())),
  );
  assert.deepEqual(customSectionOf(kernelBytes(), KERNEL_MARK), digest);
  for (const variant of ["plain", "shared", "imported"] as const) {
    const build = await compiled(variant);
    assert.deepEqual(customSectionOf(build, KERNEL_MARK), digest, variant);
    const marks = WebAssembly.Module.customSections(new WebAssembly.Module(build), KERNEL_MARK);
    assert.deepEqual(marks.map((m) => new Uint8Array(m)), [digest], variant);
  }
});

Deno.test("the build fails where the compiler's build of a variant is no longer the plain one with its memory imported", async () => {
  const plain = await compiled("plain");
  for (const variant of ["shared", "imported"] as const) {
    const build = await compiled(variant);
    checkDerivedBuild(plain, variant, build);
    // A byte of the code changed, and a byte more at the end: both refused, the variant named.
    const changed = build.slice();
    changed[changed.length - 3] ^= 1;
    assert.throws(
      () => checkDerivedBuild(plain, variant, changed),
      new RegExp(`The ${variant} kernel .* at byte ${changed.length - 3} `),
    );
    const longer = new Uint8Array([...build, 0]);
    assert.throws(
      () => checkDerivedBuild(plain, variant, longer),
      new RegExp(`at byte ${build.length} \\(${build.length} bytes against ${longer.length}\\)`),
    );
  }
});

const EXPORTED_FUNCTIONS = [
  "function:centralize",
  "function:heapBase",
  "function:nonFinite",
  "function:step",
  "function:sumSquares",
  "function:sumSquaresBlocks",
];

Deno.test("the plain kernel module imports nothing and exports the raw kernel", async () => {
  const module = await WebAssembly.compile(await compiled("plain"));
  assert.deepEqual(WebAssembly.Module.imports(module), []);
  const exports = WebAssembly.Module.exports(module).map((e) => `${e.kind}:${e.name}`).sort();
  assert.deepEqual(exports, [...EXPORTED_FUNCTIONS, "memory:memory"]);
});

Deno.test("the shared kernel module imports only a shared memory that can hold 4 GiB", async () => {
  const module = await WebAssembly.compile(await compiled("shared"));
  assert.deepEqual(
    WebAssembly.Module.imports(module).map((i) => `${i.kind}:${i.module}.${i.name}`),
    ["memory:env.memory"],
  );
  // Instantiating with a shared memory of the maximum it declares works; a plain one does not.
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  await WebAssembly.instantiate(module, { env: { memory } });
  await assert.rejects(
    WebAssembly.instantiate(module, { env: { memory: new WebAssembly.Memory({ initial: 1 }) } }),
  );
  const exports = WebAssembly.Module.exports(module).map((e) => `${e.kind}:${e.name}`).sort();
  assert.deepEqual(exports, [...EXPORTED_FUNCTIONS, "memory:memory"]);
});

/** The ids of a WebAssembly binary's sections, in order. */
function sectionIds(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let i = 8;
  const leb = () => {
    let value = 0, shift = 0, byte;
    do {
      byte = bytes[i++];
      value |= (byte & 127) << shift;
      shift += 7;
    } while (byte & 128);
    return value;
  };
  while (i < bytes.length) {
    ids.push(bytes[i++]);
    const length = leb(); // (read before i is: leb moves i past the length)
    i += length;
  }
  return ids;
}

Deno.test("the imported kernel module runs on a plain memory it is given and writes nothing into it", async () => {
  const bytes = await compiled("imported");
  const module = await WebAssembly.compile(bytes);
  assert.deepEqual(
    WebAssembly.Module.imports(module).map((i) => `${i.kind}:${i.module}.${i.name}`),
    ["memory:env.memory"],
  );
  // No data section (id 11): another module's heap is left as it was.
  assert.ok(!sectionIds(bytes).includes(11), `sections ${sectionIds(bytes)}`);
  const memory = new WebAssembly.Memory({ initial: 2 });
  const before = new Uint8Array(memory.buffer);
  before.fill(0xa5);
  await WebAssembly.instantiate(module, { env: { memory } });
  assert.ok(new Uint8Array(memory.buffer).every((b) => b === 0xa5));
  await assert.rejects(
    WebAssembly.instantiate(module, {
      env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }) },
    }),
  );
});

Deno.test("the committed kernel layout and dispatch are what the tables and the registry generate", async () => {
  for (
    const [path, text] of [[LAYOUT_PATH, kernelLayoutModule()], [
      DISPATCH_PATH,
      kernelDispatchModule(),
    ]]
  ) {
    assert.ok(
      await Deno.readTextFile(path) === text,
      `${path} differs from its sources: run \`deno task build\``,
    );
  }
});

Deno.test("every rule of the registry gets its own tag, offsets and dispatch; two rules of one name are refused", async () => {
  const { default: REGISTRY } = await import("../core/registry.ts");
  const { ADAM } = await import("../rules/adam.ts");
  const rules = REGISTRY.rules;
  assert.equal(new Set(rules.map((r) => r.name)).size, rules.length);
  const dispatch = kernelDispatchModule();
  rules.forEach((rule, tag) => {
    assert.match(dispatch, new RegExp(`\\(tag == ${tag}\\) ${rule.name}Range\\(`));
    assert.match(kernelLayoutModule(), new RegExp(`export const ${rule.name.toUpperCase()}_`));
    // Every optimizer of the rule carries its tag.
    for (const origin of Object.values(REGISTRY.optimizers)) {
      if (origin.rule === rule) assert.equal(origin.tag, tag, origin.name);
    }
  });
  // A second rule of one name would shadow the first's kernel: refused, not dropped.
  const twin = { ...ADAM };
  assert.throws(() => kernelLayoutModule([ADAM, twin]), /Two rules are named "adam"/);
  assert.throws(() => kernelDispatchModule([ADAM, twin]), /Two rules are named "adam"/);
  assert.throws(() => kernelLayoutModule([{ ...ADAM, name: "Adam-2" }]), /lower-case letters/);
});
