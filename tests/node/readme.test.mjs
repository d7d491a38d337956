// The npm package's README.md as its readers get it (on npmjs.com, in node_modules): every link
// works there (an https address, or a file the tarball ships; a file on JSR at the package's
// version, one that deno.json publishes), its package.json names its home, and its examples run
// against the built package: the JavaScript ones under Node, the HTML one in headless Chromium.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { launchChromium } from "./chromium.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const built = fileURLToPath(new URL("../../npm", import.meta.url));
const root = new URL("../../", import.meta.url);
const packageDir = new URL(
  ".",
  import.meta.resolve("@optim/radam/package.json"),
);
const pkg = JSON.parse(
  readFileSync(new URL("package.json", packageDir), "utf8"),
);
const readme = readFileSync(new URL("README.md", packageDir), "utf8");

/** The README's fenced blocks of language `lang`, their indentation (in lists) removed. */
function blocks(lang) {
  const fence = new RegExp("^( *)```" + lang + "\\n([\\s\\S]*?)^ *```$", "gm");
  return [...readme.matchAll(fence)].map(([, indent, body]) =>
    body.replace(new RegExp(`^${indent}`, "gm"), "")
  );
}

/** Whether a fenced block is a bundler's config file (`// vite.config.js` on its first line). */
function isConfigFile(code) {
  return /^\/\/ [\w.-]+\.config\.[cm]?js\b/.test(code);
}

/** `markdown` outside its code blocks and code spans. */
function proseOf(markdown) {
  return markdown.replace(/^ *```[\s\S]*?^ *```$/gm, "").replace(
    /`[^`\n]*`/g,
    "",
  );
}

/**
 * Every link target of `markdown`'s prose: inline, reference definitions, autolinks, HTML
 * attributes (images too).
 */
function links(markdown = readme) {
  const prose = proseOf(markdown);
  const patterns = [
    /\]\(([^)\s]+)/g,
    /^ {0,3}\[[^\]]+\]:[ \t]*(\S+)/gm,
    /<([a-z][a-z+.-]*:[^>\s]+)>/gi,
    /\b(?:href|src)=["']([^"']+)["']/gi,
  ];
  return patterns.flatMap((p) => [...prose.matchAll(p)].map((m) => m[1]));
}

/** The files the tarball holds (`npm pack`'s own list). */
function shipped() {
  const [{ files }] = JSON.parse(
    execFileSync("npm", [
      "pack",
      built,
      "--dry-run",
      "--json",
      "--loglevel=error",
    ], {
      cwd: here,
      encoding: "utf8",
    }),
  );
  return new Set(files.map((f) => f.path));
}

/** Whether deno.json's `publish` sends `path` to JSR (its include: files, and folders with /). */
function publishedOnJsr(path) {
  const { publish } = JSON.parse(
    readFileSync(new URL("deno.json", root), "utf8"),
  );
  return publish.include.some((p) => p === path || (p.endsWith("/") && path.startsWith(p)));
}

test("npm README: every link works on npmjs.com and in node_modules", () => {
  const targets = links();
  assert.ok(targets.length >= 5, `only ${targets.length} links found`);
  const files = shipped();
  assert.ok(
    files.has("README.md") && files.has("docs/SPEC.md"),
    "README.md and the spec ship",
  );
  const jsr = `https://jsr.io/${pkg.name}`;
  for (const target of targets) {
    if (!target.startsWith("https://")) {
      // npmjs.com resolves relative links against a repository the package does not have: only
      // files it ships work, and those only in node_modules.
      const path = target.replace(/^\.\//, "");
      assert.ok(
        files.has(path),
        `${target}: a relative link to a file the package does not ship`,
      );
      continue;
    }
    if (!target.startsWith(`${jsr}/`) || target.startsWith(`${jsr}/doc`)) {
      continue;
    }
    const [, version, path] = /^https:\/\/jsr\.io\/@[^/]+\/[^/]+\/([^/]+)\/([^#]+)/.exec(target) ??
      [];
    assert.equal(
      version,
      pkg.version,
      `${target}: not at the package's version`,
    );
    assert.ok(
      existsSync(new URL(path, root)),
      `${target}: no ${path} in the repository`,
    );
    assert.ok(
      publishedOnJsr(path),
      `${target}: deno.json does not publish ${path} to JSR`,
    );
  }
});

test("JSR README: every file that README.md, or a page JSR gets, links or shows is one JSR gets", () => {
  // JSR shows README.md and the Markdown files it gets with their relative links and images
  // resolved against the package's own files at its version (the package names no repository):
  // a file deno.json does not publish is a broken link or image there.
  const { publish } = JSON.parse(
    readFileSync(new URL("deno.json", root), "utf8"),
  );
  const seen = new Set([
    "README.md",
    ...publish.include.filter((p) => p.endsWith(".md")),
  ]);
  const pages = [...seen];
  const broken = [];
  let relative = 0;
  while (pages.length > 0) {
    const page = pages.shift();
    for (const target of links(readFileSync(new URL(page, root), "utf8"))) {
      if (/^[a-z][a-z+.-]*:/i.test(target) || target.startsWith("#")) continue;
      relative++;
      const path = decodeURIComponent(
        new URL(target, `file:///${page}`).pathname.slice(1),
      );
      if (!existsSync(new URL(path, root)) || !publishedOnJsr(path)) {
        broken.push(`${page}: ${target}`);
      } else if (path.endsWith(".md") && !seen.has(path)) {
        seen.add(path);
        pages.push(path);
      }
    }
  }
  assert.ok(relative >= 5, `only ${relative} relative links found`);
  assert.deepEqual(broken, []);
});

test("npm README: package.json names the package's home, and no repository it does not have", () => {
  assert.equal(pkg.homepage, `https://jsr.io/${pkg.name}`);
  // A repository field, once there is a public one, must be a real address.
  if (pkg.repository !== undefined) {
    const url = typeof pkg.repository === "string" ? pkg.repository : pkg.repository.url;
    assert.match(url, /^(git\+)?https:\/\/\S+$/);
  }
});

test("npm README: the install line names the package, and the examples import only what it installs", () => {
  const install = blocks("sh").join("\n");
  const installed = [...install.matchAll(/npm install ((?:[@\w./-]+ ?)+)/g)]
    .flatMap((m) => m[1].trim().split(/\s+/));
  assert.ok(installed.includes(pkg.name), `no "npm install ${pkg.name}"`);
  const entries = Object.keys(pkg.exports).map((p) => p.replace(/^\./, pkg.name));
  for (const code of [...blocks("js"), ...blocks("html")]) {
    for (const [, specifier] of code.matchAll(/(?:from|import) "([^"]+)"/g)) {
      assert.ok(
        entries.includes(specifier) || installed.includes(specifier) ||
          specifier.startsWith("node:"),
        `an example imports ${specifier}, which neither the package exports nor Install installs`,
      );
    }
  }
});

test("npm README: every JavaScript example runs under Node against the built package", (t) => {
  // Config files are run by the bundlers' test (bundlers.test.mjs), not here.
  const examples = blocks("js").filter((code) => !isConfigFile(code));
  assert.ok(
    examples.length >= 2,
    `only ${examples.length} JavaScript examples`,
  );
  assert.ok(
    examples.some((code) => code.includes('"@optim/radam/tfjs"')),
    "no tfjs example",
  );
  // As a user's file, named as its first line says, in a folder of this one (whose node_modules
  // has the package, linked, and tfjs), where the examples that write files write them. That
  // folder's package.json is `npm init -y`'s, `"type": "commonjs"`: a `.js` file there is CommonJS,
  // and a pasted example's `import` a SyntaxError.
  const cwd = mkdtempSync(join(here, ".readme-"));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  writeFileSync(join(cwd, "package.json"), '{ "type": "commonjs" }\n');
  for (const code of examples) {
    const [, file] = /^\/\/ ([\w-]+\.mjs)\n/.exec(code) ?? [];
    assert.ok(file, `an example whose first line names no .mjs file to save it as:\n${code}`);
    writeFileSync(join(cwd, file), code);
    const output = execFileSync(
      process.execPath,
      ["--preserve-symlinks", file],
      {
        cwd,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 120_000,
      },
    );
    // Each example prints where its steps ran, first: the package's WebAssembly kernel.
    assert.match(
      output,
      /^wasm\b/m,
      `the example printed:\n${output}\nfor:\n${code}`,
    );
  }
});

test("npm README: every JavaScript example type-checks as TypeScript under --strict", (t) => {
  // Pasted into a .mts file of a TypeScript project: the save handler's weightData, which tfjs
  // types as an ArrayBuffer, a list of them or undefined, was given to new Uint8Array as it was.
  // (skipLibCheck: tfjs-layers' own declarations fail under --strict; packed_app.test.mjs.)
  const examples = blocks("js").filter((code) => !isConfigFile(code));
  const cwd = mkdtempSync(join(here, ".readme-ts-"));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  const files = examples.map((code) => {
    const [, name] = /^\/\/ ([\w-]+)\.mjs\n/.exec(code) ?? [];
    assert.ok(name, `an example whose first line names no .mjs file:\n${code}`);
    writeFileSync(join(cwd, `${name}.mts`), code);
    return `${name}.mts`;
  });
  assert.ok(files.includes("save_model.mts"), "no save_model.mjs example");
  const tsc = join(here, "node_modules", "typescript", "bin", "tsc");
  const args = ["--strict", "--noEmit", "--skipLibCheck", "--preserveSymlinks", "--module"];
  let output = "";
  try {
    execFileSync(process.execPath, [
      tsc,
      ...args,
      "nodenext",
      "--target",
      "es2022",
      "--types",
      "node",
      ...files,
    ], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    output = `${e.stdout}${e.stderr}`;
  }
  assert.equal(output, "");
});

test("npm README: the HTML example runs in headless Chromium, the package served from node_modules", async () => {
  const [page] = blocks("html");
  assert.ok(page, "no HTML example");
  const prefix = `/node_modules/${pkg.name}/`;
  const server = http.createServer((req, res) => {
    const path = req.url.startsWith(prefix) ? req.url.slice(prefix.length) : undefined;
    const file = path && !path.includes("..") ? new URL(path, packageDir) : undefined;
    if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(
        `<!doctype html>${page}`,
      );
    } else if (file && existsSync(file) && extname(path) === ".js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(
        readFileSync(file),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const browser = await launchChromium();
  try {
    const tab = await browser.newPage();
    const errors = [];
    tab.on("pageerror", (e) => errors.push(String(e)));
    await tab.goto(`http://127.0.0.1:${server.address().port}/`);
    await tab.waitForFunction(
      () => document.body?.textContent.trim() || null,
      null,
      {
        timeout: 60_000,
      },
    ).catch(() => {});
    assert.deepEqual(errors, []);
    const text = await tab.evaluate(() => document.body.textContent.trim());
    // The same script under Node, its document a stand-in that prints: the same text.
    const [, script] = /<script type="module">([\s\S]*?)<\/script>/.exec(page);
    const inNode = execFileSync(process.execPath, [
      "--preserve-symlinks",
      "--input-type=module",
      "--eval",
      `globalThis.document = { body: { append: (s) => console.log(s) } };\n${script}`,
    ], { cwd: here, encoding: "utf8" });
    assert.match(text, /^wasm: /);
    assert.equal(text, inNode.trim());
  } finally {
    await browser.close();
    server.close();
  }
});
