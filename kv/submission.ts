/**
 * The ids of submissions: UUIDs that sort in the order this process made them, so that two
 * stored contributions of one id (sent again once its record expired) fold in the order they
 * were sent. Private to kv/.
 *
 * @module
 */

/** The last millisecond an id was made for, and the ids made for it so far. */
let last = { ms: 0, n: 0 };

/** Two hex digits a byte. */
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0"));

/**
 * A new submission id: a UUID of version 7 (RFC 9562), its time this process's `Date.now()`,
 * its next 12 bits a count of the ids made within that millisecond, so that this process's ids
 * sort (as strings, as Deno KV orders keys) in the order it made them, even when its clock
 * steps back; another process's by their clocks, then at random.
 */
export function submissionId(): string {
  const now = Date.now();
  if (now > last.ms) last = { ms: now, n: 0 };
  else if (++last.n > 0xfff) last = { ms: last.ms + 1, n: 0 };
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let ms = last.ms;
  for (let i = 5; i >= 0; i--, ms = Math.floor(ms / 256)) bytes[i] = ms % 256;
  bytes[6] = 0x70 | (last.n >> 8);
  bytes[7] = last.n & 0xff;
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const h = hex(bytes).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * When a submission id was made, in ms by its maker's clock; null for one that does not say
 * (a random UUID, as an earlier version of this library made them).
 */
export function submittedAt(id: string): number | null {
  return id[14] === "7" ? parseInt(id.slice(0, 8) + id.slice(9, 13), 16) : null;
}
