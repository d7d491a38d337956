import assert from "node:assert/strict";
import { Q8_GENERATED_PATH, q8GeneratedModule } from "./build_q8_wasm.ts";

Deno.test("the committed test build of the 8-bit codes is what assembly/q8.ts compiles to", async () => {
  const rebuilt = await q8GeneratedModule();
  const committed = await Deno.readTextFile(Q8_GENERATED_PATH);
  assert.ok(
    rebuilt === committed,
    `${Q8_GENERATED_PATH} differs from a fresh build of assembly/q8_exports.ts: run ` +
      "`deno run --allow-read --allow-write=tests --allow-env tools/build_q8_wasm.ts`",
  );
});
