/**
 * npm packages the build tools install for themselves (not the project's dependencies), each
 * into a git-ignored folder under `build/`. Private to tools/.
 *
 * @module
 */

/**
 * `name@version` for each of `names`, at the version of deno.json's import map (`npm:` entries),
 * or, where the map gives a range (`^4`), the version deno.lock resolved it to: the tools build
 * with the versions the project runs with.
 */
export async function importMapVersions(names: readonly string[]): Promise<string[]> {
  const deno = JSON.parse(await Deno.readTextFile("deno.json"));
  const lock = JSON.parse(await Deno.readTextFile("deno.lock"));
  return names.map((name) => {
    const spec: string | undefined = deno.imports?.[name];
    let version = spec?.match(/^npm:@?[^@]+@(.+)$/)?.[1];
    if (version !== undefined && !/^\d/.test(version)) {
      const locked = Object.entries(lock.specifiers ?? {})
        .find(([key]) => key.startsWith(`npm:${name}@`))?.[1];
      version = typeof locked === "string" ? locked.split("_")[0] : undefined;
    }
    if (!version) throw new Error(`deno.json's import map has no npm version of ${name}`);
    return `${name}@${version}`;
  });
}

/**
 * Installs `packages` (`name@version`) into `prefix`/node_modules with npm, unless that same
 * list was installed there last (a stamp file, `installed.json`, records it).
 */
export async function npmInstall(prefix: string, packages: readonly string[]): Promise<void> {
  const stamp = `${prefix}/installed.json`;
  try {
    if ((await Deno.readTextFile(stamp)) === JSON.stringify(packages)) return;
  } catch {
    // not installed yet
  }
  await Deno.mkdir(prefix, { recursive: true });
  const npm = new Deno.Command("npm", {
    args: ["install", "--prefix", prefix, "--no-audit", "--no-fund", "--no-save", ...packages],
    stdout: "null",
  });
  const { success } = await npm.output();
  if (!success) throw new Error(`npm install ${packages.join(" ")} failed`);
  await Deno.writeTextFile(stamp, JSON.stringify(packages));
}
