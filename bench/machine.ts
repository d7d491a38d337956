/**
 * The machine a benchmark ran on, in words: CPU model (family, model, AVX-512), logical cores,
 * L3 size, OS, Deno and V8 versions. Every result names it (bench/RESULTS.md, bench/ANALYSIS.md).
 *
 * @module
 */

/**
 * The CPU's name, family and model and whether it has AVX-512, from /proc/cpuinfo (read through
 * `cat`: needs `--allow-run`), or "unknown CPU" (not Linux, or not allowed).
 *
 * @example
 * ```ts
 * import { cpuModel } from "./machine.ts";
 * console.log(cpuModel()); // e.g. "AMD EPYC 9R14 (family 25, model 17, AVX-512)"
 * ```
 */
export function cpuModel(): string {
  try {
    // procfs files report size 0, so read through `cat` rather than readTextFile.
    const out = new Deno.Command("cat", { args: ["/proc/cpuinfo"] }).outputSync();
    const info = new TextDecoder().decode(out.stdout);
    const name = info.match(/^model name\s*:\s*(.*)$/m)?.[1];
    const family = info.match(/^cpu family\s*:\s*(.*)$/m)?.[1];
    const model = info.match(/^model\s*:\s*(.*)$/m)?.[1];
    const avx512 = /^flags\s*:.*\bavx512f\b/m.test(info) ? ", AVX-512" : "";
    if (name) return `${name} (family ${family}, model ${model}${avx512})`;
  } catch { /* not Linux, or no --allow-run */ }
  return "unknown CPU";
}

/** One line naming the CPU, its cores and cache, the OS and the runtime. */
export function machine(): string {
  const cpu = cpuModel();
  let cache = "";
  try {
    // through `cat` too: sysfs, like procfs, may read as empty without --allow-all
    const path = "/sys/devices/system/cpu/cpu0/cache/index3/size";
    const out = new Deno.Command("cat", { args: [path] }).outputSync();
    const l3 = new TextDecoder().decode(out.stdout).trim();
    if (l3) cache = `, L3 ${l3}`;
  } catch { /* unknown */ }
  return `${cpu}, ${navigator.hardwareConcurrency} logical cores${cache}; ${Deno.build.os} ${Deno.build.arch}, ` +
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`;
}
