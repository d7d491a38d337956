/**
 * The README's zero-copy loop (`g[i] = …` into `state.grads.w`, reading `state.params.w[i]`)
 * run on a WebGPU state, whose slots are GPU buffer ranges, not Float32Arrays: an element read
 * or written (or a Float32Array's `set`, `fill`, `slice`) was JavaScript's own `undefined` or
 * "Cannot add property 0, object is not extensible"; it is a TypeError naming the tensor, the
 * backend and what to do instead. The slots stay plain records otherwise (keys, JSON,
 * inspection, `instanceof Object`), and still step as the state's own.
 */
import assert from "node:assert/strict";
import { adam, dispose, lookahead, radam, readParams, step } from "../../mod.ts";
import { device, ignore } from "./gpu_device.ts";

/** Asserts `f` throws a TypeError whose message matches every one of `patterns`. */
function throwsNaming(f: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(f, (error: Error) => {
    assert.ok(error instanceof TypeError, String(error));
    for (const p of patterns) assert.match(error.message, p);
    return true;
  });
}

Deno.test({
  name: "webgpu: a slot's element read or written is a TypeError naming the tensor and backend",
  ignore,
  async fn() {
    for (const states of ["32bit", "8bit"] as const) {
      const opt = radam({ lr: 0.1, backend: "webgpu", states });
      const state = await opt.init({ w: new Float32Array(3), "b.x": new Float32Array(2) }, {
        device,
      });
      let next;
      try {
        const w = state.params.w as unknown as Record<number, number>;
        const g = state.grads.w as unknown as Record<number, number>;
        throwsNaming(() => w[0], /state\.params\.w\[0\]/, /webgpu/, /readParams\(state\)/);
        throwsNaming(
          () => {
            g[1] = 2;
          },
          /state\.grads\.w\[1\]/,
          /webgpu/,
          /step\(state, \{ w: g \}\)/,
          /Float32Array/,
        );
        throwsNaming(() => g[2] += 1, /state\.grads\.w\[2\]/);
        throwsNaming(
          () => {
            w[0] = 1;
          },
          /state\.params\.w\[0\]/,
          /\{ from: state \}/,
        );
        const bx = state.grads["b.x"] as unknown as Float32Array;
        throwsNaming(() => bx.fill(0), /state\.grads\["b\.x"\]\.fill/, /\{ "b\.x": g \}/);
        throwsNaming(() => bx.set([1, 2]), /state\.grads\["b\.x"\]\.set/);
        throwsNaming(
          () => (state.params.w as unknown as Float32Array).slice(),
          /state\.params\.w\.slice/,
          /readParams/,
        );
        // Otherwise a plain record of the binding and length, usable as the state's own.
        const slot = state.grads.w;
        assert.deepEqual(Object.keys(slot), ["buffer", "offset", "size", "length"]);
        assert.equal(slot.length, 3);
        assert.ok(slot instanceof Object);
        assert.equal(
          JSON.stringify({ length: slot.length, size: slot.size }),
          '{"length":3,"size":12}',
        );
        assert.match(JSON.stringify(slot), /"length":3/);
        assert.equal(Deno.inspect(slot), Deno.inspect({ ...slot }));
        assert.match(Deno.inspect(state.grads), /length: 3/);
        assert.doesNotMatch(Deno.inspect(state.grads), /prototype/);
        assert.equal((slot as unknown as { then?: unknown }).then, undefined);
        assert.equal(String(Object.prototype.toString.call(slot)), "[object Object]");
        device!.queue.writeBuffer(slot.buffer, slot.offset, new Float32Array([1, 1, 1]));
        next = step(state, state.grads);
        const { w: after } = await readParams(next);
        assert.ok(after[0] < 0, `${states}: stepped from the slot's gradient`);
      } finally {
        dispose(next ?? state);
      }
    }
  },
});

Deno.test({
  name:
    "webgpu: a slot iterated (for...of, spread, Array.from, new Float32Array) or read by another Float32Array method or accessor is a TypeError saying what to do (it was 'is not iterable', 'is not a function', or undefined)",
  ignore,
  async fn() {
    const state = await adam({ backend: "webgpu" }).init({ w: new Float32Array(3) }, { device });
    try {
      const g = state.grads.w as unknown as Float32Array;
      const p = state.params.w as unknown as Float32Array;
      const iterate = /Cannot iterate state\.grads\.w \(for\.\.\.of, spread, Array\.from\)/;
      const uses: [() => unknown, RegExp][] = [
        [() => {
          let sum = 0;
          for (const x of g) sum += x;
          return sum;
        }, iterate],
        [() => [...g].map((x) => x * 2), iterate],
        [() => Array.from(g)[0].toFixed(2), iterate],
        [() => JSON.stringify([...g]), iterate],
        [() => `${[...g][0]}`, iterate],
        [() => new Float32Array(g), iterate],
        [() => Float32Array.from(g), iterate],
        [() => Math.max(...g), iterate],
        [() => g.reduce((a, b) => a + b, 0), /state\.grads\.w\.reduce/],
        [() => g.values(), /state\.grads\.w\.values/],
        [() => g.includes(NaN), /state\.grads\.w\.includes/],
        [() => g.byteLength, /state\.grads\.w\.byteLength/],
      ];
      for (const [use, named] of uses) {
        throwsNaming(use, named, /webgpu/, /step\(state, \{ w: g \}\)/);
      }
      throwsNaming(
        () => [...p].map(Number),
        /Cannot iterate state\.params\.w/,
        /readParams\(state\)/,
      );
      throwsNaming(() => p.join(","), /state\.params\.w\.join/, /readParams\(state\)/);
      // Reading its iterator is no error (a probe of whether it is iterable); calling it is.
      assert.equal(typeof g[Symbol.iterator], "function");
      // What a plain record has stays its own: its keys, entries, length, text.
      assert.deepEqual(Object.entries(g).map(([k]) => k), ["buffer", "offset", "size", "length"]);
      assert.deepEqual({ ...g }, { ...state.grads.w });
      assert.equal(g.length, 3);
      assert.equal(String(g), "[object Object]");
    } finally {
      dispose(state);
    }
  },
});

/** A test runner's deep equality: Jest's `equals`, as `toEqual` calls it (and Vitest's). */
function runnerEquals(a: unknown, b: unknown): boolean {
  return eq(a, b, [iterableEquality], [], []);
}

type Tester = (a: unknown, b: unknown, testers: Tester[]) => boolean | undefined;
type Obj = Record<string | symbol, unknown>;

/**
 * Jest's `eq` (expect-utils' jasmineUtils) on what a slot reaches: an asymmetric matcher's
 * probe, the custom testers first (`iterableEquality`), then identity, the class tag, a DOM
 * node's probe and the own enumerable keys, string and symbol, compared recursively.
 */
function eq(
  a: unknown,
  b: unknown,
  testers: Tester[],
  aStack: unknown[],
  bStack: unknown[],
): boolean {
  const asymmetric = (x: unknown) => !!x && typeof (x as Obj).asymmetricMatch === "function";
  if (asymmetric(a) || asymmetric(b)) throw new Error("no asymmetric matchers here");
  for (const tester of testers) {
    const result = tester(a, b, testers);
    if (result !== undefined) return result;
  }
  if (a instanceof Error && b instanceof Error) return a.message === b.message;
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  const tag = Object.prototype.toString.call(a);
  if (tag !== Object.prototype.toString.call(b)) return false;
  const isDomNode = (x: Obj) =>
    typeof x.nodeType === "number" && typeof x.nodeName === "string" &&
    typeof x.isEqualNode === "function";
  if (isDomNode(a as Obj) || isDomNode(b as Obj)) throw new Error("no DOM nodes here");
  const at = aStack.indexOf(a);
  if (at >= 0) return bStack[at] === b;
  if (Array.isArray(a) && a.length !== (b as unknown[]).length) return false;
  const keys = (x: object) => [
    ...Object.keys(x),
    ...Object.getOwnPropertySymbols(x).filter((s) =>
      Object.getOwnPropertyDescriptor(x, s)!.enumerable
    ),
  ];
  const aKeys = keys(a);
  if (keys(b).length !== aKeys.length) return false;
  aStack.push(a);
  bStack.push(b);
  const same: boolean = aKeys.every((key) =>
    Object.prototype.hasOwnProperty.call(b, key) &&
    eq((a as Obj)[key], (b as Obj)[key], testers, aStack, bStack)
  );
  aStack.pop();
  bStack.pop();
  return same;
}

/**
 * Jest's `iterableEquality`: two objects (not arrays or typed arrays) that both have a
 * `Symbol.iterator` are equal when their constructors and `size`s are, what their iterators
 * yield is (`b`'s iterator made first, then `a`'s iterated), and so are their entries.
 */
function iterableEquality(a: unknown, b: unknown, testers: Tester[]): boolean | undefined {
  const hasIterator = (x: unknown) => x != null && !!(x as Obj)[Symbol.iterator];
  if (
    typeof a !== "object" || typeof b !== "object" || Array.isArray(a) || Array.isArray(b) ||
    ArrayBuffer.isView(a) || ArrayBuffer.isView(b) || !hasIterator(a) || !hasIterator(b)
  ) {
    return undefined;
  }
  const x = a as Obj & Iterable<unknown>, y = b as Obj & Iterable<unknown>;
  if (x.constructor !== y.constructor) return false;
  if (x.size !== undefined && x.size !== y.size) return false;
  const yIterator = y[Symbol.iterator]();
  for (const xValue of x) {
    const yNext = yIterator.next();
    if (yNext.done || !eq(xValue, yNext.value, testers, [], [])) return false;
  }
  if (!yIterator.next().done) return false;
  return eq(Object.entries(x), Object.entries(y), testers, [], []);
}

Deno.test({
  name:
    "webgpu: two slots compared by a test runner's deep equality (Jest's and Vitest's toEqual, which iterate both) are the slot's TypeError saying to compare their fields, which compare; Node's deepStrictEqual gives an answer",
  ignore,
  async fn() {
    const opt = adam({ backend: "webgpu" });
    const state = await opt.init({ w: new Float32Array(3), b: new Float32Array(3) }, { device });
    try {
      const { w, b } = state.grads;
      const compare = /compare their fields, \{ \.\.\.a \} with \{ \.\.\.b \}$/;
      throwsNaming(() => runnerEquals(w, b), /^Cannot iterate state\.grads\.b/, compare);
      throwsNaming(() => runnerEquals(w, state.params.w), /state\.params\.w/, compare);
      assert.equal(runnerEquals({ ...w }, { ...w }), true);
      assert.equal(runnerEquals({ ...w }, { ...b }), false); // (another offset)
      throwsNaming(() => runnerEquals(state.grads, { ...state.grads }), compare);
      assert.deepStrictEqual(w, w);
      assert.deepStrictEqual(state.grads, state.grads);
      assert.throws(() => assert.deepStrictEqual(w, b), assert.AssertionError);
      // What a comparison of stand-ins would have let through: an answer that says nothing.
      const elements = w as unknown as number[];
      throwsNaming(() => [...elements].some(Number.isNaN), /Cannot iterate state\.grads\.w/);
      throwsNaming(() => Array.from(elements).includes(0), /Cannot iterate state\.grads\.w/);
      throwsNaming(() => Math.max(...elements), /Cannot iterate state\.grads\.w/);
    } finally {
      dispose(state);
    }
  },
});

Deno.test({
  name:
    "webgpu: a slot's BYTES_PER_ELEMENT is a Float32Array's, 4, so that length * BYTES_PER_ELEMENT is its size (it was undefined, and sizes NaN)",
  ignore,
  async fn() {
    const state = await radam({ backend: "webgpu" }).init({ w: new Float32Array(5) }, { device });
    try {
      for (const slot of [state.grads.w, state.params.w]) {
        const g = slot as unknown as Float32Array;
        assert.equal(g.BYTES_PER_ELEMENT, Float32Array.BYTES_PER_ELEMENT);
        assert.equal(g.length * g.BYTES_PER_ELEMENT, slot.size);
        assert.deepEqual(Object.keys(slot), ["buffer", "offset", "size", "length"]);
      }
    } finally {
      dispose(state);
    }
  },
});

Deno.test({
  name: "webgpu: a bare Float32Array's slot and LookAhead's say the same",
  ignore,
  async fn() {
    const state = await adam({ backend: "webgpu" }).init(new Float32Array(4), { device });
    const g = state.grads[""] as unknown as Record<number, number>;
    throwsNaming(
      () => {
        g[0] = 1;
      },
      /state\.grads\[""\]\[0\]/,
      /step\(state, g\)/,
    );
    dispose(state);
    const ranger = await lookahead(radam({ backend: "webgpu" })).init({ w: new Float32Array(2) }, {
      device,
    });
    throwsNaming(() => (ranger.params.w as unknown as number[])[1], /state\.params\.w\[1\]/);
    dispose(ranger);
  },
});

Deno.test({
  name:
    "webgpu: Array.prototype's methods called on a slot (slice.call, reduce.call, forEach.call) are the slot's TypeError (they skipped every element: holes, reduce's start, no call)",
  ignore,
  async fn() {
    const state = await adam({ backend: "webgpu" }).init({ w: new Float32Array(3) }, { device });
    try {
      const g = state.grads.w as unknown as ArrayLike<number>;
      const p = state.params.w as unknown as ArrayLike<number>;
      const element = /Cannot use state\.grads\.w\[0\]/;
      let calls = 0;
      const uses: (() => unknown)[] = [
        () => Array.prototype.slice.call(g),
        () => Array.prototype.reduce.call(g, (a, b) => (a as number) + b, 0),
        () => Array.prototype.forEach.call(g, () => calls++),
        () => Array.prototype.map.call(g, (x: number) => x * 2),
        () => Array.prototype.some.call(g, Number.isNaN),
        () => Array.prototype.indexOf.call(g, 0),
      ];
      for (const use of uses) throwsNaming(use, element, /webgpu/, /step\(state, \{ w: g \}\)/);
      assert.equal(calls, 0);
      throwsNaming(() => Array.prototype.slice.call(p), /state\.params\.w\[0\]/, /readParams/);
      // The slot is still a plain record of its four fields, and steps as the state's own.
      assert.equal(Object.hasOwn(g, "0"), false);
      assert.deepEqual(Object.keys(g), ["buffer", "offset", "size", "length"]);
      assert.equal("buffer" in g && !("fill" in g), true);
    } finally {
      dispose(state);
    }
  },
});

Deno.test({
  name:
    "webgpu: a property set on a slot (a symbol key, a name it lacks) is a TypeError naming the slot and where to keep it (it was V8's \"'set' on proxy: trap returned falsish\")",
  ignore,
  async fn() {
    const state = await adam({ backend: "webgpu" }).init({
      w: new Float32Array(3),
      "b.x": new Float32Array(2),
    }, {
      device,
    });
    try {
      const tag = Symbol("tag");
      const g = state.grads.w as unknown as Record<string | symbol, unknown>;
      const p = state.params["b.x"] as unknown as Record<string | symbol, unknown>;
      const frozen = /is a frozen range of the state's GPU buffer/;
      const weakMap = /keep what you attach to it in a WeakMap keyed by it/;
      throwsNaming(
        () => (g[tag] = 1),
        /^Cannot set state\.grads\.w\[Symbol\(tag\)\]: /,
        frozen,
        weakMap,
      );
      throwsNaming(
        () => (p[tag] = 1),
        /^Cannot set state\.params\["b\.x"\]\[Symbol\(tag\)\]: /,
        weakMap,
      );
      throwsNaming(() => (g.name = "w"), /^Cannot set state\.grads\.w\.name: /, frozen, weakMap);
      throwsNaming(() => (g["a-b"] = 1), /^Cannot set state\.grads\.w\["a-b"\]: /);
      // An element is still the element's error; nothing was added.
      throwsNaming(() => (g[0] = 1), /^Cannot use state\.grads\.w\[0\]: /);
      assert.deepEqual(Reflect.ownKeys(state.grads.w).filter((k) => typeof k === "string"), [
        "buffer",
        "offset",
        "size",
        "length",
      ]);
      assert.equal(g[tag], undefined);
      // An object made on a slot is not one: a set on it is JavaScript's own.
      const derived = Object.create(state.grads.w) as Record<symbol, unknown>;
      derived[tag] = 1;
      assert.equal(derived[tag], 1);
    } finally {
      dispose(state);
    }
  },
});

Deno.test({
  name:
    "webgpu: a slot's field assigned is a TypeError naming the slot and what to do (it was V8's \"Cannot assign to read only property\"); a name defined on it (Object.defineProperty) or deleted is a TypeError, nothing changed",
  ignore,
  async fn() {
    const state = await adam({ backend: "webgpu" }).init({
      w: new Float32Array(3),
      "b.x": new Float32Array(2),
    }, { device });
    try {
      const g = state.grads.w as unknown as Record<string, unknown>;
      const p = state.params["b.x"] as unknown as Record<string, unknown>;
      const before = { ...g };
      const frozen = /is a frozen range of the state's GPU buffer/;
      const stepFrom = /state = step\(state, \{ w: \{ buffer, offset, length \} \}\)/;
      throwsNaming(
        () => (g.offset = 256),
        /^Cannot set state\.grads\.w\.offset: /,
        frozen,
        stepFrom,
      );
      throwsNaming(
        () => (p.buffer = g.buffer),
        /^Cannot set state\.params\["b\.x"\]\.buffer: /,
        /where the state keeps parameter "b\.x"'s values/,
        /opt\.init\(params, \{ from: state \}\)/,
      );
      // (V8's words: a slot is a plain frozen record, not a Proxy, so it stays cloneable.)
      throwsNaming(() => Object.defineProperty(g, "length", { value: 1 }), /length/);
      throwsNaming(() => Object.defineProperty(g, "tag", { value: 1 }), /tag/);
      throwsNaming(() => delete g.size, /size/);
      throwsNaming(() => Reflect.set(g, "offset", 0), /^Cannot set state\.grads\.w\.offset: /);
      // Nothing changed; a define that changes nothing (as Object.freeze makes) is taken.
      assert.deepEqual({ ...g }, before);
      assert.equal(Object.freeze(g), g);
      assert.ok(Object.isFrozen(g));
      assert.equal(delete g.absent, true);
      assert.deepEqual(Object.keys(g), ["buffer", "offset", "size", "length"]);
      // An object made on a slot keeps JavaScript's own sets.
      const derived = Object.create(g) as Record<string, unknown>;
      derived.tag = 1;
      assert.equal(derived.tag, 1);
      // Still the state's own slot: it steps as step(state) does.
      device!.queue.writeBuffer(g.buffer as GPUBuffer, 0, Float32Array.of(1, 1, 1));
      const next = step(state, { w: state.grads.w, "b.x": new Float32Array(2) });
      assert.ok((await readParams(next)).w[0] < 0);
    } finally {
      dispose(state);
    }
  },
});

Deno.test({
  name:
    "webgpu: a slot and a state's records are structured-cloneable (structuredClone, postMessage) as the plain records of their fields (a Proxy, the slot was a DataCloneError)",
  ignore,
  async fn() {
    const state = await adam({ backend: "webgpu" }).init({
      w: new Float32Array(3),
      "b.x": new Float32Array(2),
    }, { device });
    try {
      const g = state.grads.w;
      const plain = { buffer: {}, offset: g.offset, size: 12, length: 3 };
      assert.deepEqual(structuredClone(g), plain);
      const params = structuredClone(state.params);
      assert.deepEqual(Object.keys(params), ["w", "b.x"]);
      assert.deepEqual(params["b.x"], {
        ...plain,
        offset: state.params["b.x"].offset,
        size: 8,
        length: 2,
      });
      assert.deepEqual(Object.keys(structuredClone(state.grads)), ["w", "b.x"]);
      // Its fields are still the slot's alone: assigned, the slot's TypeError.
      throwsNaming(
        () => ((g as { offset: number }).offset = 256),
        /^Cannot set state\.grads\.w\.offset: /,
      );
      assert.equal(g.offset, plain.offset);
    } finally {
      dispose(state);
    }
  },
});
