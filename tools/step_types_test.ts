/**
 * What TypeScript says of a newcomer's first wrong call of `step`: gradients as numbers in an
 * Array (as `tensor.arraySync()` gives them, or a PyTorch user writes them). Its error names
 * Float32Array, and is the short one of a single signature: with one overload for each kind of
 * state it was "No overload matches this call", then each overload's error, WebGPU's GpuTensor
 * among them, for the mistake of a CPU state.
 */
import assert from "node:assert/strict";
import ts from "typescript";

/** The file a user writes, beside the library's entry point. */
const USER_FILE = "user_step.ts";

/**
 * The WebGPU globals that `step`'s types name, declared as `@webgpu/types` (or Deno's own
 * library) declares them, in part: TypeScript's DOM library has none, and an undeclared
 * `GPUBuffer` would be any, which every gradient matches.
 */
const WEBGPU_FILE = "webgpu_globals.d.ts";
const WEBGPU_GLOBALS = `
interface GPUBuffer {
  readonly label: string;
  readonly size: number;
  readonly usage: number;
  readonly mapState: "unmapped" | "pending" | "mapped";
  destroy(): undefined;
}
declare var GPUBuffer: { prototype: GPUBuffer; new (): never };
interface GPUDevice {
  readonly label: string;
  destroy(): undefined;
}
declare var GPUDevice: { prototype: GPUDevice; new (): never };
`;

/** The messages TypeScript gives of `code`, a file that imports `./mod.ts`, flattened. */
function errorsOf(code: string): string[] {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    strict: true,
    noEmit: true,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile;
  const given: Record<string, string> = { [USER_FILE]: code, [WEBGPU_FILE]: WEBGPU_GLOBALS };
  host.getSourceFile = (name, language, ...rest) => {
    const text = given[name.slice(name.lastIndexOf("/") + 1)];
    return text === undefined
      ? getSourceFile(name, language, ...rest)
      : ts.createSourceFile(name, text, language);
  };
  host.fileExists =
    ((exists) => (name: string) =>
      name.endsWith(USER_FILE) || name.endsWith(WEBGPU_FILE) || exists(name))(host.fileExists);
  const program = ts.createProgram([WEBGPU_FILE, USER_FILE], options, host);
  const file = program.getSourceFile(USER_FILE);
  assert.ok(file, "the user's file was not read");
  return ts.getPreEmitDiagnostics(program, file).map((d) =>
    ts.flattenDiagnosticMessageText(d.messageText, "\n")
  );
}

Deno.test("step given numbers in an Array: TypeScript's error names Float32Array, briefly, and no GPU type", () => {
  const prelude = 'import { radam, step } from "./mod.ts";\n' +
    "const state = await radam().init({ w: new Float32Array(3) });\n";
  const errors = errorsOf(`${prelude}step(state, { w: [0.1, 0.2, 0.3] });\n`);
  assert.equal(errors.length, 1, errors.join("\n\n"));
  const [error] = errors;
  assert.match(
    error,
    /Type 'number\[\]' is missing the following properties from type 'Float32Array/,
  );
  assert.doesNotMatch(error, /overload|Gpu/i);
  assert.ok(error.length < 300, `${error.length} characters:\n${error}`);
  // What it says to write compiles.
  assert.deepEqual(
    errorsOf(`${prelude}step(state, { w: new Float32Array([0.1, 0.2, 0.3]) });\n`),
    [],
  );
});

Deno.test("step's one signature takes what its overloads took: a WebGPU state's GPU tensors, a state of either kind", () => {
  const code = 'import { type GpuTensor, type OptimizerState, step } from "./mod.ts";\n' +
    "declare const gpu: OptimizerState<GpuTensor>;\n" +
    "declare const either: OptimizerState | OptimizerState<GpuTensor>;\n" +
    "declare const unknown: OptimizerState<unknown>;\n" +
    "declare const buffer: GPUBuffer;\n" +
    "const g: OptimizerState<GpuTensor> = step(gpu, { w: buffer, v: new Float32Array(2) });\n" +
    "step(g, { w: { buffer, length: 2 }, v: g.grads.v });\n" +
    "const e: OptimizerState | OptimizerState<GpuTensor> = step(either, { w: buffer });\n" +
    "step(unknown, buffer);\n" +
    "step(e);\n";
  assert.deepEqual(errorsOf(code), []);
  // A CPU state takes no GPU buffer (the overload of a state of either kind let it through).
  const cpu = 'import { radam, step } from "./mod.ts";\n' +
    "declare const buffer: GPUBuffer;\n" +
    "step(await radam().init({ w: new Float32Array(2) }), { w: buffer });\n";
  assert.equal(errorsOf(cpu).length, 1);
});
