#!/usr/bin/env node
// The CI summary (.ci/run): reads the report vitest's json reporter wrote and ends
// with one line, "N passed, N failed, N skipped"; exits 1 when anything failed.
//
// A file whose setup failed (beforeAll threw: a VM that did not boot, a lab that did
// not start) is reported by vitest as status "failed" with every test "skipped": its
// tests count as failed here (they were meant to run), never as skipped.
"use strict";
const fs = require("fs");

/** Suites that must have passing tests: a kernel or provider-host suite that skipped tested nothing. */
const REQUIRED_SUITES = ["unit", "kernel", "host"];

/**
 * @param {any} report what vitest's json reporter wrote
 * @param {{ requiredSuites?: string[] }} [opts]
 * @returns {{ passed: number, failed: number, skipped: number, ranIn: Record<string, number>, notes: string[] }}
 */
function summarize(report, opts = {}) {
  const requiredSuites = opts.requiredSuites ?? REQUIRED_SUITES;
  let passed = 0, failed = 0, skipped = 0;
  const ranIn = {};
  const notes = [];
  for (const file of report.testResults ?? []) {
    const suite = file.name.replace(/^.*\/test\//, "test/").split("/")[1];
    const tests = file.assertionResults ?? [];
    const setupFailed = file.status === "failed" && !tests.some((t) => t.status === "failed");
    if (setupFailed) {
      // Crashed on load (no tests) or a hook failed (tests left unrun): every test it held failed.
      const unrun = tests.filter((t) => t.status !== "passed").length;
      failed += Math.max(1, unrun);
      notes.push(`${file.name}: setup failed, ${unrun} test(s) did not run${file.message ? `: ${file.message.split("\n")[0]}` : ""}`);
    }
    for (const t of tests) {
      if (t.status === "passed") {
        passed++;
        ranIn[suite] = (ranIn[suite] || 0) + 1;
      } else if (t.status === "failed") failed++;
      else if (!setupFailed) skipped++;
    }
  }
  for (const suite of requiredSuites) {
    if (!ranIn[suite]) {
      notes.push(`no test passed in test/${suite}: it did not run`);
      failed++;
    }
  }
  return { passed, failed, skipped, ranIn, notes };
}

function main(path) {
  if (!fs.existsSync(path)) {
    console.log("no test results were written (did the test command crash before running?)");
    console.log("0 passed, 1 failed, 0 skipped");
    return 1;
  }
  const s = summarize(JSON.parse(fs.readFileSync(path, "utf8")));
  for (const n of s.notes) console.log(n);
  console.log(`per suite passed: ${JSON.stringify(s.ranIn)}`);
  console.log(`${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
  return s.failed > 0 ? 1 : 0;
}

module.exports = { summarize };

if (require.main === module) process.exit(main(process.argv[2] ?? ".cache/test-results.json"));
