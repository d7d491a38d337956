/**
 * The jobs of a threaded wasm state (cpu/threaded_wasm_backend.ts) as the main thread runs them:
 * each started on the workers, the main thread's own share run, then the workers' waited for
 * (cpu/_thread_join.ts `join`); and how the arena is cut into the threads' slices.
 *
 * @module
 */
import { DISPOSED_STATE_MESSAGE } from "../base/_state_errors.ts";
import type { ArenaLayout } from "../base/arena.ts";
import { Q8_BLOCK } from "../base/q8.ts";
import { CONTROL, OP_NON_FINITE, OP_STEP, OP_SUM_SQUARES } from "./thread_worker.ts";
import {
  diedWhy,
  failed,
  faultError,
  join,
  mayBlock,
  ownShareThrew,
  type Release,
} from "./_thread_join.ts";
import { type KernelExports, type PlacedArena, stepSlice } from "./wasm_backend.ts";

/** Element granularity of the step's slices: 16 f32, one 64-byte cache line. */
const SLICE_ALIGN = 16;

/**
 * `[start, end)` of slice `k` of the `n` elements of `layout` cut in `count` slices at
 * SLICE_ALIGN, or at blocks of 256 where it holds 8-bit moments.
 */
export function sliceBounds(layout: ArenaLayout, count: number, k: number): [number, number] {
  const n = layout.total;
  const align = layout.compactStart < n ? Q8_BLOCK : SLICE_ALIGN;
  const cut = (j: number) =>
    j >= count ? n : Math.min(n, Math.floor(n * j / count / align) * align);
  return [cut(k), cut(k + 1)];
}

/** Blocks `[first, last)` of the reduction that thread `k` of `count` sums. */
export function blockBounds(blocks: number, count: number, k: number): [number, number] {
  return [Math.floor(blocks * k / count), Math.floor(blocks * (k + 1) / count)];
}

/** What the jobs of a threaded state run on. */
export interface Team {
  readonly k: KernelExports;
  readonly arena: PlacedArena;
  /** Its memory map's (cpu/threaded_wasm_backend.ts `SharedMap`) blocks, scratch and sums. */
  readonly map: { readonly blocks: number; readonly scratch: number; readonly partials: number };
  readonly ints: Int32Array;
  readonly sums: Float64Array;
  readonly threads: number;
  readonly layout: ArenaLayout;
  readonly release: Release;
}

/**
 * What a job of a threaded state runs with, made once: its team, the main thread's (thread 0's)
 * slice of the step and blocks of the reduction, and the calls that start a job on the workers,
 * refuse one on a failed or disposed state, and wait for the workers' shares (of the step, which
 * writes the arena; of a pass that only reads the gradients).
 */
interface Crew {
  readonly team: Team;
  readonly start: number;
  readonly end: number;
  readonly firstBlock: number;
  readonly lastBlock: number;
  readonly launch: (op: number) => void;
  readonly assertLive: () => void;
  readonly waitStep: () => void;
  readonly wait: () => void;
}

/** The {@linkcode Crew} of `team`, its workers taken for stopped after `stallMs`. */
function crewOf(team: Team, stallMs: number): Crew {
  const { ints, threads, release } = team;
  const [start, end] = sliceBounds(team.layout, threads, 0);
  const [firstBlock, lastBlock] = blockBounds(team.map.blocks, threads, 0);
  const canBlock = mayBlock(ints);
  /** Starts job `op` on the workers. */
  const launch = (op: number) => {
    Atomics.store(ints, CONTROL.OP, op);
    Atomics.store(ints, CONTROL.PENDING, threads - 1);
    Atomics.add(ints, CONTROL.GENERATION, 1);
    Atomics.notify(ints, CONTROL.GENERATION);
  };
  const assertLive = () => {
    if (release.fault !== undefined) throw faultError(release);
    if (release.done) throw new TypeError(DISPOSED_STATE_MESSAGE);
    // A worker that died between steps, its event not delivered yet (steps in a loop).
    const died = diedWhy(ints);
    if (died !== undefined) throw failed(release, died, false);
  };
  // Wait until every worker has finished the job (see cpu/_thread_join.ts `join`).
  const waitStep = () => join(ints, release, canBlock, stallMs, true);
  const wait = () => join(ints, release, canBlock, stallMs, false);
  return { team, start, end, firstBlock, lastBlock, launch, assertLive, waitStep, wait };
}

/** The step, on every thread, the main one last. */
function stepJob(crew: Crew): () => void {
  const { team, start, end, launch, assertLive, waitStep } = crew;
  const { k, arena, ints, release } = team;
  const scratch = team.map.scratch;
  return () => {
    assertLive();
    launch(OP_STEP);
    try {
      stepSlice(k, arena, start, end, scratch);
      waitStep();
    } catch (error) {
      throw ownShareThrew(error, true, ints, release, waitStep);
    }
  };
}

/** The gradients' sum of squares: on every thread (`parallel`), or on the main one alone. */
function sumSquaresJob(crew: Crew, parallel: boolean): () => number {
  const { team, firstBlock, lastBlock, launch, assertLive, wait } = crew;
  const { k, ints, sums, release } = team;
  const n = team.layout.total;
  const g = team.arena.grads;
  const partials = team.map.partials;
  return () => {
    assertLive();
    if (!parallel) return k.sumSquares(g, n);
    launch(OP_SUM_SQUARES);
    try {
      k.sumSquaresBlocks(g, n, firstBlock, lastBlock, partials);
      wait();
    } catch (error) {
      throw ownShareThrew(error, false, ints, release, wait);
    }
    let total = 0;
    for (let b = 0; b < sums.length; b++) total += sums[b];
    return total;
  };
}

/** The non-finite check, each thread on its slice of the step. */
function nonFiniteJob(crew: Crew): () => boolean {
  const { team, start, end, launch, assertLive, wait } = crew;
  const { k, ints, release } = team;
  const g = team.arena.grads;
  return () => {
    assertLive();
    Atomics.store(ints, CONTROL.NON_FINITE, 0);
    launch(OP_NON_FINITE);
    let own: boolean;
    try {
      own = k.nonFinite(g + start * 4, end - start) !== 0;
      wait();
    } catch (error) {
      throw ownShareThrew(error, false, ints, release, wait);
    }
    return own || Atomics.load(ints, CONTROL.NON_FINITE) !== 0;
  };
}

/** The step and the reductions of a threaded state: each on every thread, the main one last. */
export function teamKernels(team: Team, parallelReduction: boolean, stallMs: number) {
  const crew = crewOf(team, stallMs);
  const { k } = team;
  const g = team.arena.grads;
  return {
    update: stepJob(crew),
    gradSumSquares: sumSquaresJob(crew, parallelReduction),
    gradsNonFinite: nonFiniteJob(crew),
    nonFiniteRange: (offset: number, count: number) => k.nonFinite(g + offset * 4, count) !== 0,
    centralize: (offset: number, rows: number, cols: number) =>
      k.centralize(g + offset * 4, rows, cols),
  };
}
