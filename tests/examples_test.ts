import assert from "node:assert/strict";
import { onlineTrainer, syntheticRecords } from "../examples/online_pipeline.ts";

Deno.test("online pipeline: the loss falls as records stream through", async () => {
  const reports = [];
  const stream = syntheticRecords(16384, 8, 7).pipeThrough(await onlineTrainer({ features: 8 }));
  for await (const r of stream) reports.push(r);
  assert.equal(reports.length, 16384 / 32);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const early = mean(reports.slice(0, 8).map((r) => r.loss));
  const late = mean(reports.slice(-32).map((r) => r.loss));
  assert.ok(late < 0.6 * early, `loss ${early} -> ${late}`);
  assert.ok(mean(reports.slice(-32).map((r) => r.accuracy)) > 0.85);
});
