// Preloaded into the provider host process (NODE_OPTIONS=--require) by the benchmark,
// so what is counted is what THAT process does; the product code is not touched.
//
// - SSH connections: every TCP client socket the process connects to port 22, seen
//   through Node's `net.client.socket` diagnostics channel (no monkey-patching).
// - SSH commands: the runtime's own sshStats counter (one per exec channel).
// - Peak RSS: VmHWM of the process.
// On SIGUSR2 the numbers are written as JSON to $BENCH_PROBE_OUT.
import * as dc from "node:diagnostics_channel";
import * as inspector from "node:inspector";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";

const out = process.env.BENCH_PROBE_OUT;
let tcpConnects22 = 0;

dc.subscribe("net.client.socket", (message: unknown) => {
  const socket = (message as { socket: Socket }).socket;
  socket.once("connect", () => {
    if (socket.remotePort === 22) tcpConnects22++;
  });
});

/** The runtime's counters, from the module instance the host actually loaded. */
function sshStats(): { connectionsOpened: number; commandsRun: number } | undefined {
  const file = Object.keys(require.cache).find((f) => f.endsWith("/dist/provider/transport/ssh.js"));
  return file ? require.cache[file]?.exports.sshStats : undefined;
}

function peakRssKiB(): number {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : 0;
}

if (out) {
  process.on("SIGUSR2", () => {
    const stats = sshStats();
    const report = { tcpConnects22, sshHandshakes: stats?.connectionsOpened ?? 0, sshCommands: stats?.commandsRun ?? 0, peakRssKiB: peakRssKiB() };
    writeFileSync(`${out}.tmp`, JSON.stringify(report));
    renameSync(`${out}.tmp`, out);
  });
}

// BENCH_CPU_PROF=<dir>: a V8 CPU profile of this process (--cpu-prof is not allowed in
// NODE_OPTIONS), written when the harness stops the host with SIGTERM.
const profDir = process.env.BENCH_CPU_PROF;
if (profDir) {
  const session = new inspector.Session();
  session.connect();
  session.post("Profiler.enable", () => session.post("Profiler.setSamplingInterval", { interval: 500 }, () => session.post("Profiler.start")));
  process.on("SIGTERM", () => {
    session.post("Profiler.stop", (err, res) => {
      if (!err) {
        mkdirSync(profDir, { recursive: true });
        writeFileSync(`${profDir}/host-${process.pid}.cpuprofile`, JSON.stringify(res.profile));
      }
      process.exit(0);
    });
  });
}
