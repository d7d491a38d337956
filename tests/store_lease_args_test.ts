/**
 * The lease calls of each store given what no lease can be made of: a token that is not a
 * request id's kind of string, a term that is not a finite number > 0. Refused, naming it, and
 * nothing changed.
 */
import assert from "node:assert/strict";
import { onEachStore } from "./each_store.ts";

const BAD: readonly [unknown, unknown, typeof TypeError | typeof RangeError, RegExp][] = [
  [123, 1000, TypeError, /token \(acquire's first argument\) must be a string of 1 to 64/],
  [undefined, 1000, TypeError, /token .* got undefined/],
  ["", 1000, TypeError, /got 0 characters/],
  ["x".repeat(5000), 1000, TypeError, /got 5000 characters/],
  ["\ud800", 1000, TypeError, /lone surrogate/],
  ["B", NaN, RangeError, /term \(acquire's ms\) must be a finite number > 0, got NaN/],
  ["B", -5, RangeError, /got -5/],
  ["B", 0, RangeError, /got 0/],
  ["B", Infinity, RangeError, /got Infinity/],
  ["B", "1000", TypeError, /term .* got a string "1000"/],
  ["B", 1000n, TypeError, /term .* got a bigint 1000n$/],
];

Deno.test("stores: acquire refuses a token or a term no lease can be made of, naming it, and changes nothing", async () => {
  // The in-process store made a lease of each (an end of NaN or Infinity, a token of a number
  // or of none); Deno KV did too, or threw its own error for a key too long, naming neither.
  await onEachStore(async (store, name) => {
    const lease = (await store.acquire("A", 60_000))!;
    for (const [token, ms, type, message] of BAD) {
      await assert.rejects(
        () => store.acquire(token as string, ms as number),
        (e: Error) => e instanceof type && message.test(e.message),
        `${name}: acquire(${String(token).slice(0, 10)}, ${String(ms)})`,
      );
    }
    assert.equal(await store.waiting(lease), null, `${name}: no note written`);
    const again = await store.acquire("B", 60_000, false);
    assert.equal(again, null, `${name}: A holds the lease still`);
  });
});

Deno.test("stores: release refuses a token no lease can be held by, naming it, and changes nothing", async () => {
  await onEachStore(async (store, name) => {
    const lease = (await store.acquire("A", 60_000))!;
    for (const token of [123, "", "x".repeat(5000)]) {
      await assert.rejects(
        () => store.release(token as string),
        (e: Error) =>
          e instanceof TypeError && /token \(release's first argument\)/.test(e.message),
        `${name}: release(${String(token).slice(0, 10)})`,
      );
    }
    assert.equal(await store.acquire("B", 60_000, false), null, `${name}: A holds it still`);
    await store.release(lease);
  });
});
