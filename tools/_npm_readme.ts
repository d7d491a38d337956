/**
 * The npm package's README.md, made by `deno task build:npm` from two sources: its own text,
 * `tools/npm_readme.md` (what only an npm user needs: install, imports, Node, bundlers, browsers),
 * and the sections of the repository's README.md marked for it (the text both share, such as
 * what the library is), which replace the template's lines that name them:
 *
 * ```md
 * <!-- npm-readme: intro -->            in README.md, around the shared text
 * …
 * <!-- /npm-readme: intro -->
 *
 * <!-- README.md: intro -->             in tools/npm_readme.md, where it goes
 * ```
 *
 * The package has no repository page, so a relative link cannot work on npmjs.com: every link to
 * a file of the repository becomes that file's address on JSR, at the package's version
 * (`https://jsr.io/@optim/radam/0.2.0/docs/SPEC.md`), and a file that JSR does not get (see
 * {@link jsrPublishedFiles}) is an error, as are in-page anchors and plain `http:` links. Private
 * to tools/.
 *
 * @module
 */

/** Where each source lies in the repository (its links are relative to it), and its text. */
export interface ReadmeSource {
  /** The file's path from the repository's root, e.g. `tools/npm_readme.md`. */
  readonly path: string;
  readonly text: string;
}

/** What {@link npmReadme} needs besides its two sources. */
export interface ReadmeTarget {
  /** The package's home on JSR at its version: `https://jsr.io/<name>/<version>`. */
  readonly jsrBase: string;
  /** The paths (from the repository's root) of the files JSR gets. */
  readonly published: ReadonlySet<string>;
}

const SECTION = /^<!-- npm-readme: ([\w-]+) -->\n([\s\S]*?)^<!-- \/npm-readme: \1 -->$/gm;
const INCLUDE = /^<!-- README\.md: ([\w-]+) -->$/gm;
const FENCE = /^ *```[\s\S]*?^ *```$/gm;
/** An inline link or image target, `](target)`, or a reference definition, `[x]: target`. */
const LINK = /(\]\()([^)\s]+)|(^ {0,3}\[[^\]]+\]:[ \t]*)(\S+)/gm;

/** The sections of README.md marked for the npm README, by name, trimmed. */
export function markedSections(readme: string): Map<string, string> {
  const sections = new Map<string, string>();
  for (const [, name, body] of readme.matchAll(SECTION)) {
    if (sections.has(name)) throw new Error(`README.md marks two sections "${name}"`);
    sections.set(name, body.trim());
  }
  return sections;
}

/** One link's address in the npm README, or the reason it cannot have one. */
function rewriteLink(target: string, from: string, to: ReadmeTarget): string | Error {
  if (target.startsWith("https://")) return target;
  if (/^[a-z][a-z+.-]*:/i.test(target)) {
    return new Error(`${target}: only https links work everywhere the README is read`);
  }
  if (target.startsWith("#")) {
    return new Error(
      `${target}: an in-page anchor (headings are named differently where it is read)`,
    );
  }
  const url = new URL(target, `file:///${from}`);
  const path = decodeURIComponent(url.pathname.slice(1));
  if (!to.published.has(path)) {
    return new Error(`${target}: ${path} is not a file JSR gets (deno.json's "publish")`);
  }
  return `${to.jsrBase}/${path}${url.hash}`;
}

/** `text` with its links (outside code blocks) rewritten; the bad ones added to `errors`. */
function rewriteLinks(text: string, from: string, to: ReadmeTarget, errors: string[]): string {
  const rewrite = (prose: string) =>
    prose.replace(LINK, (whole, open, inline, refOpen, ref) => {
      const target: string = inline ?? ref;
      const address = rewriteLink(target, from, to);
      if (address instanceof Error) {
        errors.push(`${from}: ${address.message}`);
        return whole;
      }
      return `${inline !== undefined ? open : refOpen}${address}`;
    });
  let out = "", last = 0;
  for (const fence of text.matchAll(FENCE)) {
    out += rewrite(text.slice(last, fence.index)) + fence[0];
    last = fence.index + fence[0].length;
  }
  return out + rewrite(text.slice(last));
}

/**
 * The npm README: the template with the marked sections of README.md in place, its comments
 * dropped, every link absolute. Throws one error listing every unknown section and bad link.
 */
export function npmReadme(template: ReadmeSource, readme: ReadmeSource, to: ReadmeTarget): string {
  const errors: string[] = [];
  const sections = markedSections(readme.text);
  const own = rewriteLinks(template.text, template.path, to, errors);
  const included = own.replace(INCLUDE, (line, name: string) => {
    const section = sections.get(name);
    if (section === undefined) {
      errors.push(`${template.path}: ${readme.path} marks no section "${name}"`);
      return line;
    }
    return rewriteLinks(section, readme.path, to, errors);
  });
  if (errors.length > 0) throw new Error(`the npm README:\n  ${errors.join("\n  ")}`);
  return included.replace(/^<!--[\s\S]*?-->\n+/gm, "").trimStart();
}

/**
 * The files `deno publish` would upload to JSR, by their paths from the repository's root (the
 * current directory), as its dry run lists them.
 */
export async function jsrPublishedFiles(): Promise<Set<string>> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty", "--no-check"],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const { success, stdout, stderr } = await command.output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  if (!success) throw new Error(`deno publish --dry-run failed:\n${text}`);
  const root = new URL(`file://${Deno.cwd()}/`).href;
  const files = new Set<string>();
  for (const [, url] of text.matchAll(/^\s*(file:\/\/\S+)/gm)) {
    if (url.startsWith(root)) files.add(decodeURIComponent(url.slice(root.length)));
  }
  if (files.size === 0) throw new Error(`deno publish --dry-run listed no files:\n${text}`);
  return files;
}
