/**
 * The JSON header a checkpoint is written with is the bytes `JSON.stringify` writes of its object
 * form (`{"__metadata__":{…},"name":{"dtype":…,"shape":[…],"data_offsets":[begin,end]},…}`),
 * whatever the names, metadata, shapes and offsets, and `headerJsonLength` counts as many bytes;
 * a tensor named as the header's metadata is refused, and one named `__proto__` is a key of the
 * header where `__proto__` is the accessor of Object.prototype (as in Node).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  headerJsonLength,
  METADATA_KEY,
  parseSafetensors,
  writeSafetensors,
} from "../base/safetensors.ts";

type Data = Float32Array | Int8Array | Uint8Array;

/** `JSON.stringify` of the header of `tensors` as an object, each name a key of its own. */
function objectForm(
  tensors: readonly { name: string; shape: number[]; data: Data }[],
  metadata: Record<string, string>,
): string {
  const header: Record<string, unknown> = {};
  const own = (key: string, value: unknown) =>
    Object.defineProperty(header, key, { value, enumerable: true, writable: true });
  own(METADATA_KEY, metadata);
  let offset = 0;
  for (const { name, shape, data } of tensors) {
    const dtype = data instanceof Float32Array ? "F32" : data instanceof Int8Array ? "I8" : "U8";
    own(name, { dtype, shape, data_offsets: [offset, offset += data.byteLength] });
  }
  return JSON.stringify(header);
}

/** The JSON of a file `writeSafetensors` wrote, without its padding. */
function headerText(bytes: Uint8Array): string {
  const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  return new TextDecoder().decode(bytes.subarray(8, 8 + length)).trimEnd();
}

const names = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.string({ unit: "grapheme" }),
  fc.constantFrom(
    "__proto__",
    "0",
    "01",
    "4294967294",
    "4294967295",
    "-1",
    "1.5",
    "",
    "\u2028\u2029",
    "\ud800",
    "a\udc00b",
    'q"b\\s',
    "\u0000\u001f",
    "😀",
    "constructor",
  ),
);

Deno.test("a header is JSON.stringify of its object, its length counted", () => {
  const tensor = fc.record({
    name: names,
    dtype: fc.constantFrom("F32", "I8", "U8"),
    shape: fc.array(fc.nat(3), { maxLength: 3 }),
  });
  const metadata = fc.dictionary(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }));
  fc.assert(
    fc.property(fc.uniqueArray(tensor, { selector: (t) => t.name, maxLength: 6 }), metadata, (
      drawn,
      meta,
    ) => {
      const tensors = drawn.filter((t) => t.name !== METADATA_KEY).map(({ name, dtype, shape }) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = dtype === "F32"
          ? new Float32Array(n)
          : dtype === "I8"
          ? new Int8Array(n)
          : new Uint8Array(n);
        return { name, shape, data };
      });
      const bytes = writeSafetensors(tensors, meta);
      const expected = objectForm(tensors, meta);
      assert.equal(headerText(bytes), expected);
      const plans = tensors.map(({ name, shape, data }) => ({
        name,
        shape,
        dtype: data instanceof Float32Array
          ? "F32" as const
          : data instanceof Int8Array
          ? "I8" as const
          : "U8" as const,
        byteLength: data.byteLength,
      }));
      assert.equal(headerJsonLength(plans, meta), new TextEncoder().encode(expected).length);
      assert.deepEqual(
        [...parseSafetensors(bytes).tensors.keys()].sort(),
        tensors.map((t) => t.name).sort(),
      );
    }),
    { numRuns: 400 },
  );
});

Deno.test("a tensor named as the header's metadata is refused, not written as a second key", () => {
  for (const order of [["__metadata__"], ["w", "__metadata__"]]) {
    const tensors = order.map((name) => ({ name, shape: [1], data: new Float32Array(1) }));
    assert.throws(
      () => writeSafetensors(tensors, {}),
      (e) => e instanceof RangeError && /"__metadata__" occurs twice/.test(e.message),
    );
  }
});

Deno.test("a tensor named __proto__ beside one named as an index is a key of the header (Node)", () => {
  // Node keeps Object.prototype.__proto__, the accessor Deno disables: as Node has it.
  const had = Object.getOwnPropertyDescriptor(Object.prototype, "__proto__");
  Object.defineProperty(Object.prototype, "__proto__", {
    configurable: true,
    get(this: object) {
      return Object.getPrototypeOf(this);
    },
    set(this: object, value: object | null) {
      Object.setPrototypeOf(this, value);
    },
  });
  const probe: Record<string, unknown> = {};
  probe["__proto__"] = {};
  assert.equal(Object.hasOwn(probe, "__proto__"), false); // (the accessor set its prototype)
  try {
    const tensors = [
      { name: "__proto__", shape: [1], data: new Float32Array([1]) },
      { name: "0", shape: [2], data: new Float32Array([2, 3]) },
    ];
    const bytes = writeSafetensors(tensors, {});
    const parsed = parseSafetensors(bytes);
    assert.deepEqual(parsed.tensors.get("__proto__"), {
      dtype: "F32",
      shape: [1],
      begin: 0,
      end: 4,
    });
    assert.deepEqual(parsed.tensors.get("0"), { dtype: "F32", shape: [2], begin: 4, end: 12 });
  } finally {
    if (had === undefined) delete (Object.prototype as { __proto__?: unknown }).__proto__;
    else Object.defineProperty(Object.prototype, "__proto__", had);
  }
});
