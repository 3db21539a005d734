// The one quoting function, checked by a real POSIX shell: what sh receives must be
// exactly the argv we meant, and nothing in a value may run.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { shellCommand, shellQuote } from "../../provider/transport/quote";

const dir = mkdtempSync(join(tmpdir(), "netdev-quote-"));
// Files a glob in an unquoted value would expand to.
for (const f of ["a1", "a2", "b c"]) writeFileSync(join(dir, f), "");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const marker = (n: string) => join(dir, `pwned-${n}`);

const hostile: string[] = [
  "plain",
  "two words",
  "  leading and trailing  ",
  "it's",
  "'",
  "''",
  '"',
  'say "hi"',
  `mix'of"both'"`,
  `$(touch ${marker("dollar")})`,
  `\`touch ${marker("backtick")}\``,
  `x; touch ${marker("semicolon")}`,
  `x | touch ${marker("pipe")}`,
  `x && touch ${marker("and")}`,
  `x || touch ${marker("or")}`,
  `x & touch ${marker("bg")}`,
  `x\ntouch ${marker("newline")}`,
  `x\rtouch ${marker("cr")}`,
  `> ${marker("redirect")}`,
  `<(touch ${marker("procsub")})`,
  `'; touch ${marker("breakout")}; '`,
  `'\\''; touch ${marker("breakout2")}; echo '`,
  "$HOME",
  "${PATH}",
  "$1 $@ $* $$ $? $!",
  "*",
  "a*",
  "?",
  "[ab]1",
  "{a1,a2}",
  "~",
  "~root",
  "!",
  "#not a comment",
  "x#y",
  "\\",
  "back\\slash\\n",
  "\t",
  "tab\there",
  "",
  "-n",
  "-e",
  "--",
  "-",
  "--help",
  "a=b",
  "%s",
  "é ünïcödé ✓",
  "\x01\x7f",
];

function runInSh(values: string[]): string[] {
  const cmd = shellCommand(["printf", "%s\\0", ...values]);
  const out = execFileSync("sh", ["-c", cmd], { cwd: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/nonexistent-home" } });
  const parts = out.toString("utf8").split("\0");
  expect(parts.pop()).toBe(""); // every value ends with a NUL
  return parts;
}

describe("shellCommand through a real sh", () => {
  it("every hostile value arrives byte for byte, one argument each", () => {
    expect(runInSh(hostile)).toEqual(hostile);
  });

  it("each value also survives on its own (no reliance on neighbours)", () => {
    for (const v of hostile) expect(runInSh([v]), JSON.stringify(v)).toEqual([v]);
  });

  it("nothing in any value ran", () => {
    runInSh(hostile);
    for (const n of ["dollar", "backtick", "semicolon", "pipe", "and", "or", "bg", "newline", "cr", "redirect", "procsub", "breakout", "breakout2"])
      expect(existsSync(marker(n)), n).toBe(false);
  });

  it("the command word itself is quoted too", () => {
    const out = execFileSync("sh", ["-c", shellCommand(["printf", "%s|", "a b", "c"])], { cwd: dir }).toString();
    expect(out).toBe("a b|c|");
    expect(() => execFileSync("sh", ["-c", shellCommand([`printf; touch ${marker("cmd")}`, "x"])], { cwd: dir, stdio: "pipe" })).toThrow();
    expect(existsSync(marker("cmd"))).toBe(false);
  });
});

describe("shellQuote", () => {
  it("leaves plain tokens bare and single-quotes everything else", () => {
    expect(shellQuote("eth0")).toBe("eth0");
    expect(shellQuote("192.0.2.1/24")).toBe("192.0.2.1/24");
    expect(shellQuote("02:00:00:00:00:01")).toBe("02:00:00:00:00:01");
    expect(shellQuote("-n")).toBe("-n");
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("$(x)")).toBe("'$(x)'");
    expect(shellQuote("*")).toBe("'*'");
    expect(shellQuote("~")).toBe("'~'");
  });

  it("refuses a NUL byte, which no argv element can carry", () => {
    expect(() => shellQuote("a\0b")).toThrow(/NUL/);
    expect(() => shellCommand(["printf", "x\0"])).toThrow(/NUL/);
  });
});
