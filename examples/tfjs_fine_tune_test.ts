import assert from "node:assert/strict";
import { fineTune } from "./tfjs_fine_tune.ts";

Deno.test("tfjs fine-tune example: Ranger learns the new head, then the whole model; a line per epoch", async () => {
  const lines: string[] = [];
  const { reports, testAccuracy } = await fineTune({ epochs: 10, log: (l) => lines.push(l) });
  assert.equal(reports.length, 20);
  assert.equal(lines.length, 21);
  assert.match(lines[0], /^head\s+epoch {2}1\/10 {2}loss \d+\.\d{4} {2}accuracy \d+\.\d%$/);
  const head = reports.filter((r) => r.phase === "head");
  const all = reports.filter((r) => r.phase === "all layers");
  assert.ok(head.at(-1)!.loss < head[0].loss, `head: ${head[0].loss} -> ${head.at(-1)!.loss}`);
  assert.ok(all.at(-1)!.loss < head.at(-1)!.loss, `all: ${all.at(-1)!.loss}`);
  assert.ok(testAccuracy > 0.7, `test accuracy ${testAccuracy}`);
});
