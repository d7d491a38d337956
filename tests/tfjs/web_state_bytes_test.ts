/**
 * The web page's "optimizer state" column, as README.md quotes it: the page's own runs (its MLP,
 * its contenders, `web/trainer.ts`'s `stateBytes`) after one step on tfjs's cpu backend give the
 * kB the README's "Web demo" paragraph says, in 32 and in 8 bits.
 */
import assert from "node:assert/strict";
import { batchOf, makeRuns, stateBytes, stepAll } from "../../web/trainer.ts";
import { randoms, tf, useBackend } from "./helpers.ts";

const PIXELS = 784;

/** The page's text of each contender's state bytes after one step in `states`. */
async function pageTexts(states: "32bit" | "8bit"): Promise<Record<string, string>> {
  const runs = makeRuns({ lr: 1e-3, states }, PIXELS);
  const count = 8;
  const set = {
    count,
    pixels: randoms(count * PIXELS, 1),
    labels: Uint8Array.from({ length: count }, (_, i) => i % 10),
  };
  const batch = batchOf(set, 4, () => 0.5, PIXELS);
  await stepAll(runs, batch);
  const texts: Record<string, string> = {};
  for (const run of runs) {
    texts[run.id] = `${((await stateBytes(run.optimizer)) / 1000).toFixed(1)} kB`;
    run.optimizer.dispose();
    run.model.dispose();
  }
  tf.dispose([batch.x, batch.y]);
  return texts;
}

Deno.test("README: the web page's optimizer state bytes are those the page's runs give", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const quoted =
    /writes of it\): ([\d.]+ kB) for RAdam and Adam and ([\d.]+ kB) for Ranger in 32 bits,\s+([\d.]+ kB) and ([\d.]+ kB) in 8 bits/
      .exec(readme);
  assert.ok(quoted, "README.md quotes no state bytes of the web page");
  const [, radam32, ranger32, radam8, ranger8] = quoted;
  await useBackend("cpu");
  assert.deepEqual(await pageTexts("32bit"), { radam: radam32, adam: radam32, ranger: ranger32 });
  assert.deepEqual(await pageTexts("8bit"), { radam: radam8, adam: radam8, ranger: ranger8 });
});
