/**
 * What the functions of one Deno KV store share. Private to kv/.
 *
 * @module
 */
import type { CheckpointKeys } from "./format.ts";
import type { RecordKeys } from "./records.ts";
import type { WaitingNotes } from "../store/_notes.ts";
import type { LeaseSighting } from "../store/_lease.ts";
import type { WriteSightings } from "./sightings.ts";

/** One store's database, keys and settings. */
export interface Ctx {
  readonly kv: Deno.Kv;
  readonly keys: CheckpointKeys;
  readonly records: RecordKeys;
  readonly model: string | undefined;
  readonly chunkBytes: number;
  readonly staleAfterMs: number;
  readonly rememberMs: number;
  /** The most checks one atomic write may hold (the option `maxChecks`). */
  readonly maxChecks: number;
  /** The waiting notes this store object has read (see `waiting`). */
  readonly notes: WaitingNotes;
  /** What this store object saw of the lease record (see `acquire`). */
  readonly lease: LeaseSighting;
  /** What this store object saw of unfinished saves, and of gradients being stored (`sweep`). */
  readonly writes: WriteSightings;
  readonly blobWrites: WriteSightings;
}
