import { randomBytes } from "node:crypto";
import type { ClientChannel } from "ssh2";
import type { Connection } from "../connection";
import { NetdevError } from "../errors";
import { type PooledConnection, poolKey } from "./pool";
import { shellCommand } from "./quote";
import { redact } from "./redact";
import type { RunResult } from "./types";

// What sudo prints (exit 1) when it refuses; the last three lack the "sudo: " prefix.
const SUDO_REFUSAL = /^(?:sudo: .*|.* is not in the sudoers file.*|Sorry, user .* is not allowed to execute .*|Sorry, user .* may not run sudo on .*)$/gm;
/** `sudo -n` refusing because the rule wants a password: the command did not run. */
const PASSWORD_REQUIRED = /^sudo: a password is required\s*$/;

/**
 * Per (connection, program): does sudo ask this user for a password to run it?
 * Learnt from the first `sudo -n` (which runs the command when no password is
 * needed, and refuses without running it otherwise), then used for every command.
 */
const asksPassword = new Map<string, boolean>();
/** Connections (pool key + password) on which `sudo -v` accepted the password. */
const passwordAccepted = new Set<string>();

/** Forgets what was learnt about sudo on every host (closeAllConnections). */
export function forgetSudo(): void {
  asksPassword.clear();
  passwordAccepted.clear();
}

/**
 * Runs argv as root through sudo on `conn`. The sudo password (sudo: { password })
 * reaches sudo only:
 * - `sudo -n` first: a NOPASSWD rule runs the command with its own input, and the
 *   password is never sent (it would be the command's first input line);
 * - where sudo wants a password: `sudo -k -S -p <unique prompt>`, and the password is
 *   written only once that prompt has appeared on stderr. `-k` makes sudo ask every
 *   time, so a cached credential never lets the password line through to the command.
 *   Once per connection `sudo -v` checks the password first: a wrong one would
 *   otherwise make sudo read the command's input as its next attempt.
 * Everything runs under `sh` (the worker shell, or `exec sh -c` on an exec channel),
 * never parsed by the user's login shell; the program itself is exec'd by sudo, so
 * sudoers rules naming it (NOPASSWD: /usr/sbin/ip) keep working.
 */
export async function runAsRoot(conn: PooledConnection, config: Connection, argv: string[], stdin: string | undefined): Promise<RunResult> {
  const what = argv.join(" ");
  const password = typeof config.sudo === "object" ? config.sudo.password : undefined;
  const key = `${poolKey(config)}\n${argv[0]}`;
  if (password === undefined || asksPassword.get(key) !== true) {
    const r = await conn.run(shellCommand(["sudo", "-n", "--", ...argv]), stdin, what);
    const needsPassword = r.code === 1 && r.stdout === "" && PASSWORD_REQUIRED.test(r.stderr);
    if (password === undefined || !needsPassword) {
      if (password !== undefined) asksPassword.set(key, false);
      return checked(r, config, argv);
    }
    asksPassword.set(key, true);
  }
  const accepted = `${poolKey(config)}\n${password}`;
  if (!passwordAccepted.has(accepted)) {
    const v = await withPrompt(conn, ["-v"], password, undefined, "sudo -v");
    checked(v, config, argv);
    if (v.code !== 0) throw new NetdevError(redact(`${conn.label}: sudo -v failed (exit ${v.code}): ${v.stderr.trim() || "(no output)"}`, config));
    passwordAccepted.add(accepted);
  }
  return checked(await withPrompt(conn, ["--", ...argv], password, stdin, what), config, argv);
}

/** A refusal by sudo itself becomes a NetdevError naming host, user and reason; stderr never shows a password. */
function checked(r: RunResult, config: Connection, argv: string[]): RunResult {
  if (r.code === 1) {
    // A wrong password gives several lines ("no password was provided; 1 incorrect password attempt").
    const refusal = r.stderr.match(SUDO_REFUSAL);
    if (refusal) {
      const reason = refusal.map((l) => l.replace(/^sudo: /, "")).join("; ");
      throw new NetdevError(redact(`${connectionName(config)}: sudo refused to run ${argv[0]} as root for user ${config.user ?? "root"}: ${reason}`, config));
    }
  }
  return typeof config.sudo === "object" ? { ...r, stderr: redact(r.stderr, config) } : r;
}

function connectionName(c: Connection): string {
  return c.port && c.port !== 22 ? `${c.host}:${c.port}` : c.host;
}

/**
 * `sudo -k -S -p <prompt> <rest>` on an exec channel: the password (then `stdin`) is
 * written only after sudo printed the prompt. If sudo asks again (a wrong password),
 * input ends there, so sudo fails instead of reading the command's input as a password.
 */
function withPrompt(conn: PooledConnection, rest: string[], password: string, stdin: string | undefined, what: string): Promise<RunResult> {
  const prompt = `[netdev-sudo-${randomBytes(8).toString("hex")}]`;
  const command = shellCommand(["exec", "sh", "-c", shellCommand(["sudo", "-k", "-S", "-p", prompt, ...rest])]);
  return conn.exec(command, what, (channel: ClientChannel, lost) =>
    new Promise<RunResult>((resolve, reject) => {
      const out: Buffer[] = [];
      let err = "";
      let prompts = 0;
      let code: number | null = null;
      channel.on("data", (d: Buffer) => out.push(d));
      channel.stderr.on("data", (d: Buffer) => {
        err += d.toString("utf8");
        const seen = err.split(prompt).length - 1;
        if (seen === prompts) return;
        prompts = seen;
        if (prompts === 1) {
          channel.write(password + "\n");
          if (stdin !== undefined) channel.write(stdin);
        }
        channel.end();
      });
      channel.on("exit", (c: number | null, signal?: string) => (code = c ?? (signal ? 128 : 255)));
      channel.on("error", () => undefined);
      channel.on("close", () => {
        if (code === null) return reject(lost());
        const stderr = err.split(prompt).join("");
        resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr, code });
      });
    }),
  );
}
