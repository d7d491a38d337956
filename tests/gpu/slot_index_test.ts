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
          for (const x of g) return x;
        }, iterate],
        [() => [...g], iterate],
        [() => Array.from(g), iterate],
        [() => new Float32Array(g), iterate],
        [() => Math.max(...g), iterate],
        [() => g.reduce((a, b) => a + b, 0), /state\.grads\.w\.reduce/],
        [() => g.values(), /state\.grads\.w\.values/],
        [() => g.includes(NaN), /state\.grads\.w\.includes/],
        [() => g.byteLength, /state\.grads\.w\.byteLength/],
      ];
      for (const [use, named] of uses) {
        throwsNaming(use, named, /webgpu/, /step\(state, \{ w: g \}\)/);
      }
      throwsNaming(() => [...p], /Cannot iterate state\.params\.w/, /readParams\(state\)/);
      throwsNaming(() => p.join(","), /state\.params\.w\.join/, /readParams\(state\)/);
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

Deno.test({
  name:
    "webgpu: a slot probed for iteration (slot[Symbol.iterator], as a test runner's deep equality probes each value) is not refused, and iterated it still is (the read threw)",
  ignore,
  async fn() {
    const state = await adam({ backend: "webgpu" }).init({ w: new Float32Array(3) }, { device });
    try {
      const g = state.grads.w as unknown as Iterable<number>;
      // The probe of Jest's and Vitest's toEqual (an iterable's elements are compared as such).
      const hasIterator = (x: unknown) =>
        x != null && !!(x as { [Symbol.iterator]?: unknown })[Symbol.iterator];
      assert.doesNotThrow(() => hasIterator(g));
      assert.doesNotThrow(() => hasIterator(state.params.w));
      assert.equal(Symbol.iterator in g, false);
      const iterate = /^Cannot iterate state\.grads\.w \(for\.\.\.of, spread, Array\.from\)/;
      throwsNaming(() => [...g], iterate, /step\(state, \{ w: g \}\)/);
      throwsNaming(() => new Float32Array(g), iterate);
      throwsNaming(() => g[Symbol.iterator](), iterate);
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
