/**
 * Base64 decoding in one place, by a decoder of the library's own: `atob` is a web API that
 * React Native's engine, Hermes, lacks before React Native 0.74 (as it lacked `TextEncoder`,
 * see base/_utf8.ts), and the library decodes base64 on every runtime (its wasm kernels, the
 * settings of a TensorFlow.js config saved by 0.1.0). It decodes as `atob` does (the WHATWG
 * "forgiving-base64 decode"): ASCII whitespace ignored, padding optional, bits past the last
 * byte ignored, and what `atob` refuses refused. Private to the library.
 *
 * @module
 */

/** The 6-bit value of each base64 character's code, -1 for every other code below 128. */
const VALUES: Int8Array = (() => {
  const values = new Int8Array(128).fill(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < alphabet.length; i++) values[alphabet.charCodeAt(i)] = i;
  return values;
})();

/** The error of a string that is not base64 (where `atob` throws an InvalidCharacterError). */
function notBase64(why: string): TypeError {
  return new TypeError(`Expected base64, got a string that ${why}`);
}

/**
 * The bytes `text` encodes in base64, as `atob` decodes it (its characters' codes), on every
 * runtime; a TypeError where `atob` would throw: a character outside the base64 alphabet, `=`
 * other than one or two at the end of a string of a multiple of 4 characters, or a length
 * (without whitespace and padding) of 4k + 1.
 *
 * @example
 * ```ts
 * import { decodeBase64 } from "./_base64.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(decodeBase64("AQID/w=="), new Uint8Array([1, 2, 3, 255]));
 * assert.deepEqual(decodeBase64("AQI D/w"), new Uint8Array([1, 2, 3, 255]));
 * assert.throws(() => decodeBase64("AQID/"), TypeError);
 * ```
 */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const data = text.replace(/[\t\n\f\r ]+/g, "");
  let end = data.length;
  if (end % 4 === 0 && data.charCodeAt(end - 1) === 61) {
    end -= data.charCodeAt(end - 2) === 61 ? 2 : 1;
  }
  if (end % 4 === 1) throw notBase64(`has ${end} characters of data (not 4k + 1)`);
  const out = new Uint8Array(Math.floor(end * 3 / 4));
  let bits = 0;
  let held = 0;
  let at = 0;
  for (let i = 0; i < end; i++) {
    const code = data.charCodeAt(i);
    const value = code < 128 ? VALUES[code] : -1;
    if (value < 0) {
      throw notBase64(`has ${JSON.stringify(data[i])} at ${i}, outside the base64 alphabet`);
    }
    bits = (bits << 6 | value) & 0xffffff;
    held += 6;
    if (held >= 8) {
      held -= 8;
      out[at++] = bits >> held & 0xff;
    }
  }
  return out;
}
