import { NetdevError } from "./errors";

/**
 * The one builder of `ip -batch` / `bridge -batch` scripts. Every line that goes to
 * a batch's standard input (writes and reads alike) is made here from argv words,
 * and every word is checked first.
 *
 * Why the check: a batch line is text that iproute2 splits again (lib/utils.c
 * makeargs and getcmdline). It splits on blanks, a word that starts with a quote
 * runs to the next same quote, `#` starts a comment and a trailing backslash joins
 * the next line. So a device name like `x up\nlink del eth0` or `a#b` would read
 * back as other words or other commands. A word that could change meaning is
 * refused, never escaped: there is no escape that iproute2 reads back exactly.
 */

/** A word the batch tokenizer reads back unchanged: no blank, quote, backslash, comment sign or control character. */
const BATCH_SAFE = /^[^\s"'\\#\x00-\x1f\x7f]+$/;

/** True when `word` can be written into a batch line (the empty word is written as ""). */
export function isBatchSafe(word: string): boolean {
  return word === "" || BATCH_SAFE.test(word);
}

/** A word that cannot go into an `ip -batch` line. */
export class UnsafeBatchWordError extends NetdevError {
  constructor(
    readonly word: string,
    readonly line: string[],
  ) {
    super(
      `refusing to write ${JSON.stringify(word)} into an ip -batch line (in: ${line.map((w) => JSON.stringify(w)).join(" ")}): ` +
        "it contains a blank, quote, backslash, '#' or control character that the batch parser would read differently",
    );
  }
}

/** One batch line from its words (the words after `ip [-n ns]`). Throws UnsafeBatchWordError on an unsafe word. */
export function batchLine(words: string[]): string {
  if (words.length === 0) throw new NetdevError("refusing to write an empty ip -batch line (it would shift the line numbers ip reports)");
  for (const w of words) if (!isBatchSafe(w)) throw new UnsafeBatchWordError(w, words);
  // The tokenizer reads "" (a word starting with a quote, ending at the next one) as the empty word, e.g. `alias ""`.
  return words.map((w) => (w === "" ? '""' : w)).join(" ");
}

/** A whole batch script: one line per entry, each ending with a newline. */
export function batchScript(lines: string[][]): string {
  return lines.map((l) => batchLine(l) + "\n").join("");
}

/**
 * The lines of a `-force -batch` run that failed (1-based line → its error text):
 * iproute2 prints each failing line's error followed by "Command failed -:N" on
 * stderr and goes on with the next line.
 */
export function failedBatchLines(stderr: string): Map<number, string> {
  const failed = new Map<number, string>();
  for (const m of stderr.matchAll(/([\s\S]*?)Command failed -:(\d+)\n?/g)) failed.set(Number(m[2]), m[1].trim());
  return failed;
}
