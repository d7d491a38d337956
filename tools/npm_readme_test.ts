/**
 * The npm README's assembly (tools/_npm_readme.ts): README.md's marked sections go where the
 * template names them, every link to a file becomes its address on JSR, and what cannot work on
 * npmjs.com (a file JSR does not get, an in-page anchor, plain http, an unknown section) fails the
 * build, naming it.
 */
import assert from "node:assert/strict";
import { markedSections, npmReadme, type ReadmeTarget } from "./_npm_readme.ts";

const TO: ReadmeTarget = {
  jsrBase: "https://jsr.io/@optim/radam/1.2.3",
  published: new Set(["README.md", "docs/SPEC.md", "LICENSE"]),
};

const README = `# radam

<!-- npm-readme: intro -->

Fast kernels; the rules are in [docs/SPEC.md](docs/SPEC.md#compact-states).

<!-- /npm-readme: intro -->

## Elsewhere

Not shared: [bench](bench/RESULTS.md).
`;

function render(template: string, readme = README): string {
  return npmReadme(
    { path: "tools/npm_readme.md", text: template },
    { path: "README.md", text: readme },
    TO,
  );
}

Deno.test("npm README: a marked section of README.md goes in place, its links on JSR", () => {
  assert.deepEqual(
    [...markedSections(README)],
    [["intro", "Fast kernels; the rules are in [docs/SPEC.md](docs/SPEC.md#compact-states)."]],
  );
  const out = render(
    "<!-- how this file is made -->\n\n# @optim/radam\n\n<!-- README.md: intro -->\n\nMore.\n",
  );
  assert.equal(
    out,
    "# @optim/radam\n\nFast kernels; the rules are in " +
      "[docs/SPEC.md](https://jsr.io/@optim/radam/1.2.3/docs/SPEC.md#compact-states).\n\nMore.\n",
  );
});

Deno.test("npm README: the template's own links are relative to it; https ones and code stay", () => {
  const template = [
    "See [the spec](../docs/SPEC.md), [MIT][license] and [JSR](https://jsr.io/@optim/radam).",
    "",
    "[license]: ../LICENSE",
    "",
    "```js",
    'const s = "[not a link](../bench/x.md)";',
    "```",
    "",
  ].join("\n");
  assert.equal(
    render(template),
    [
      "See [the spec](https://jsr.io/@optim/radam/1.2.3/docs/SPEC.md), [MIT][license] and " +
      "[JSR](https://jsr.io/@optim/radam).",
      "",
      "[license]: https://jsr.io/@optim/radam/1.2.3/LICENSE",
      "",
      "```js",
      'const s = "[not a link](../bench/x.md)";',
      "```",
      "",
    ].join("\n"),
  );
});

Deno.test("npm README: links that cannot work on npmjs.com fail the build, each named", () => {
  const template = [
    "[a file JSR does not get](../bench/RESULTS.md), [an anchor](#install),",
    "[plain http](http://example.com/), [a README-relative path](docs/SPEC.md)",
    "",
    "<!-- README.md: outro -->",
    "",
  ].join("\n");
  assert.throws(() => render(template), (e: Error) => {
    for (
      const part of [
        "tools/npm_readme.md: ../bench/RESULTS.md: bench/RESULTS.md is not a file JSR gets",
        "tools/npm_readme.md: #install: an in-page anchor",
        "tools/npm_readme.md: http://example.com/: only https links",
        "tools/npm_readme.md: docs/SPEC.md: tools/docs/SPEC.md is not a file JSR gets",
        'tools/npm_readme.md: README.md marks no section "outro"',
      ]
    ) {
      assert.ok(e.message.includes(part), `missing "${part}" in:\n${e.message}`);
    }
    return true;
  });
  // A bad link inside an included section is named with README.md, where it is.
  const readme = README.replace("docs/SPEC.md#", "bench/RESULTS.md#");
  assert.throws(
    () => render("<!-- README.md: intro -->\n", readme),
    /README\.md: bench\/RESULTS\.md#compact-states: bench\/RESULTS\.md is not a file JSR gets/,
  );
  assert.throws(
    () => markedSections(README + README.slice(README.indexOf("<!--"))),
    /README\.md marks two sections "intro"/,
  );
});
