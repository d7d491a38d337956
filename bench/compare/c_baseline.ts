/**
 * The practical limit of the machine, in bench/compare.ts: the same update in C
 * (bench/radam_step.c, the same f32 operations in the same order), built with `cc` at three
 * settings into bench/build/ (git-ignored) and run once per timed sample.
 *
 * @module
 */
import type { Contender } from "./timing.ts";

/** One build of the C step. */
export interface CVariant {
  name: string;
  key: string;
  flags: string[];
  threads: number;
}

/** The builds: 128-bit SIMD, the machine's own, and OpenMP on `threads` threads. */
export function cVariants(threads: number): CVariant[] {
  return [
    { name: "C -O3 -msse4.2 (128-bit)", key: "c-sse", flags: ["-O3", "-msse4.2"], threads: 1 },
    { name: "C -O3 -march=native", key: "c-native", flags: ["-O3", "-march=native"], threads: 1 },
    {
      name: `C -O3 -march=native, OpenMP ${threads} threads`,
      key: "c-omp",
      flags: ["-O3", "-march=native", "-fopenmp"],
      threads,
    },
  ];
}

const BENCH_DIR = new URL("../", import.meta.url);

/**
 * Compiled C binaries by key, or why there are none: of the `variants` that `only` (the
 * bench's `--only`) keeps, all without it; none kept, nothing is compiled, and the bench needs
 * neither a C compiler nor the permissions to write `bench/build` and run it.
 */
export async function compileC(
  variants: CVariant[],
  only?: readonly string[],
): Promise<Map<string, string> | string> {
  const wanted = variants.filter((v) => only === undefined || only.includes(v.key));
  if (wanted.length === 0) return new Map();
  const source = new URL("radam_step.c", BENCH_DIR).pathname;
  // bench/build/ is git-ignored
  const dir = new URL("build", BENCH_DIR).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const binaries = new Map<string, string>();
  for (const variant of wanted) {
    const out = `${dir}/${variant.key}`;
    try {
      const result = await new Deno.Command("cc", {
        // no fused multiply-add and no errno: the same f32 operations as the wasm kernel
        args: [...variant.flags, "-fno-math-errno", "-ffp-contract=off", "-o", out, source, "-lm"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!result.success) {
        console.error(`${variant.name}: ${new TextDecoder().decode(result.stderr).trim()}`);
        continue;
      }
      binaries.set(variant.key, out);
    } catch (error) {
      return `no C compiler (cc): ${(error as Error).message}`;
    }
  }
  return binaries;
}

/** The C build `variant`, from `binaries` (or the reason there are none). */
export function cContender(variant: CVariant, binaries: Map<string, string> | string): Contender {
  return {
    name: variant.name,
    key: variant.key,
    setup(n) {
      if (typeof binaries === "string") return Promise.resolve(binaries);
      const binary = binaries.get(variant.key);
      if (!binary) return Promise.resolve("did not compile");
      return Promise.resolve({
        async time(steps: number) {
          const result = await new Deno.Command(binary, {
            args: [String(n), String(steps)],
            env: { OMP_NUM_THREADS: String(variant.threads), OMP_PROC_BIND: "true" },
            stdout: "piped",
          }).output();
          if (!result.success) throw new Error(`${variant.name} failed at ${n}`);
          return Number(new TextDecoder().decode(result.stdout).split(" ")[0]);
        },
      });
    },
  };
}
