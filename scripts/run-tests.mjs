#!/usr/bin/env node
// run-tests.mjs — the test runner behind `npm test` (after `npm run build`).
//
//   node scripts/run-tests.mjs [AREA...] [--list]
//   AREA: unit | conformance | integration | fuse | docker   (default: all, in that order), and any
//         other directory of dist/test holding *.test.js files (run after those, one file at a time)
//
// For each area it runs the compiled files dist/test/AREA/**/*.test.js with node's own test runner
// (node:test `run()`, one child process per file), two files at a time for unit/conformance and
// one at a time for integration/fuse/docker. All areas feed ONE reporter (tap when stdout is not
// a terminal, as `node --test` does; spec on a terminal; SWIFTFS_TEST_REPORTER=tap|spec overrides),
// so the output ends with node's test-runner summary ("tests/pass/fail/..." lines) for the whole run.
// The process exits non-zero when any test fails or is cancelled.
//
// Areas other than unit need a real Swift. Unless SWIFTFS_TEST_ST_AUTH is already set, the runner
// starts two independent instances with scripts/swift-saio.sh (regions A and B, in parallel, in a
// fresh directory under $SWIFTFS_TEST_TMPDIR or /var/tmp), exports SWIFTFS_TEST_* for the tests, and
// always stops them at the end — also on failure, SIGINT or SIGTERM. Their directory (with logs) is
// removed after a fully passing run and kept otherwise.
//
// Environment knobs: SWIFTFS_TEST_CONCURRENCY (files at once in parallel areas, default 2),
// SWIFTFS_TEST_FILE_TIMEOUT_S (per test file; defaults per area below), SWIFTFS_TEST_TMPDIR.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import { run } from 'node:test';
import { spec, tap } from 'node:test/reporters';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const saioScript = join(repoRoot, 'scripts', 'swift-saio.sh');
const distTest = join(repoRoot, 'dist', 'test');

/**
 * Areas in run order: whether they need Swift, whether several files may run at once, default
 * per-file timeout (s). Integration files run one at a time because some of them stop a region's
 * proxy to simulate an outage, which would break any other file running at that moment; FUSE and
 * Docker files share mounts, the Docker engine and the CPU. Conformance files must not stop proxies.
 */
const AREAS = {
  unit: { needsSwift: false, parallel: true, fileTimeoutS: 300 },
  conformance: { needsSwift: true, parallel: true, fileTimeoutS: 600 },
  integration: { needsSwift: true, parallel: false, fileTimeoutS: 600 },
  fuse: { needsSwift: true, parallel: false, fileTimeoutS: 900 },
  docker: { needsSwift: true, parallel: false, fileTimeoutS: 1200 },
};
const SUMMARY_KEYS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo', 'duration_ms'];
const SUMMARY_RE = new RegExp(`^(${SUMMARY_KEYS.join('|')}) ([0-9.]+)$`);
const SAIO_START_TIMEOUT_MS = 240_000;
const SAIO_STOP_TIMEOUT_MS = 60_000;
/** Proxy port bases tried for the two regions (each instance uses base..base+4). */
const PORT_BASES = [18080, 28080, 18180, 28180, 18280, 28280, 19080, 29080, 19180, 29180, 19280, 29280];

// ------------------------------------------------------------------------------------------------
// Arguments

/**
 * Test directories under dist/test that are not among AREAS (and not helpers): run after the known
 * areas, one file at a time, with the test Swift available, so that no test file is ever left out.
 */
function discoverExtraAreas() {
  let entries = [];
  try {
    entries = readdirSync(distTest, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries.sort((x, y) => x.name.localeCompare(y.name))) {
    if (!entry.isDirectory() || entry.name === 'helpers' || Object.hasOwn(AREAS, entry.name)) continue;
    if (findTestFiles(entry.name).length === 0) continue;
    AREAS[entry.name] = { needsSwift: true, parallel: false, fileTimeoutS: 900, extra: true };
  }
}

function parseArgs(argv) {
  discoverExtraAreas();
  const areas = [];
  let list = false;
  for (const arg of argv) {
    if (arg === '--list') list = true;
    else if (arg === '-h' || arg === '--help') {
      console.log(`usage: node scripts/run-tests.mjs [${Object.keys(AREAS).join('|')}]... [--list]`);
      process.exit(0);
    } else if (Object.hasOwn(AREAS, arg)) {
      if (!areas.includes(arg)) areas.push(arg);
    } else {
      console.error(`run-tests: unknown area '${arg}' (known: ${Object.keys(AREAS).join(', ')})`);
      process.exit(2);
    }
  }
  // keep the canonical order whatever order they were given in
  const selected = areas.length ? Object.keys(AREAS).filter((a) => areas.includes(a)) : Object.keys(AREAS);
  return { areas: selected, list };
}

/** dist/test/AREA/**\/*.test.js, sorted. */
function findTestFiles(area) {
  const root = join(distTest, area);
  const files = [];
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && entry.name.endsWith('.test.js')) files.push(path);
    }
  };
  walk(root);
  return files.sort();
}

// ------------------------------------------------------------------------------------------------
// Test Swift instances (regions A and B)

/** swift-saio.sh processes in flight (so that an interrupt can end a `start` that is still waiting). */
const scriptsInFlight = new Set();

function execScript(args, timeoutMs) {
  return new Promise((resolvePromise) => {
    const child = execFile('bash', [saioScript, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 8 << 20 },
      (error, stdout, stderr) => {
        scriptsInFlight.delete(child);
        resolvePromise({ ok: !error, error, output: `${stdout}${stderr}`.trimEnd(), stdout });
      });
    scriptsInFlight.add(child);
  });
}

function killScriptsInFlight() {
  for (const child of scriptsInFlight) child.kill('SIGTERM');
}

function portFree(port) {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once('error', () => resolvePromise(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePromise(true)));
  });
}

async function pickPortBases(count) {
  const chosen = [];
  for (const base of PORT_BASES) {
    let free = true;
    for (let p = base; p <= base + 4 && free; p++) free = await portFree(p);
    if (free) chosen.push(base);
    if (chosen.length === count) return chosen;
  }
  throw new Error(`no free port range for ${count} test Swift instances (tried ${PORT_BASES.join(', ')} .. +4)`);
}

/** Parses `export NAME='value'` lines printed by `swift-saio.sh env`. */
function parseEnvLines(text) {
  const vars = {};
  for (const line of text.split('\n')) {
    const m = /^export ([A-Z0-9_]+)='(.*)'$/.exec(line.trim());
    if (m) vars[m[1]] = m[2];
  }
  return vars;
}

class TestSwifts {
  constructor() {
    this.baseDir = undefined;
    this.instances = []; // { region, dir }
    this.stopped = false;
  }

  async start(log) {
    const tmpRoot = process.env.SWIFTFS_TEST_TMPDIR || (existsSync('/var/tmp') ? '/var/tmp' : undefined) || '/tmp';
    this.baseDir = mkdtempSync(join(tmpRoot, 'swiftfs-test-'));
    const [portA, portB] = await pickPortBases(2);
    const regions = [
      { region: 'A', dir: join(this.baseDir, 'region-a'), port: portA, suffix: '' },
      { region: 'B', dir: join(this.baseDir, 'region-b'), port: portB, suffix: 'B' },
    ];
    this.instances = regions;
    log(`starting two test Swift instances in ${this.baseDir}: region A on port ${portA}, region B on port ${portB}`);
    const t0 = Date.now();
    const results = await Promise.all(
      regions.map((r) => execScript(['start', r.dir, '--port', String(r.port)], SAIO_START_TIMEOUT_MS)),
    );
    results.forEach((res, i) => {
      for (const line of res.output.split('\n')) if (line) log(`[region ${regions[i].region}] ${line}`);
    });
    const failed = results.map((res, i) => (res.ok ? null : regions[i].region)).filter(Boolean);
    if (failed.length) throw new Error(`test Swift region(s) ${failed.join(', ')} did not start (see above)`);
    for (const r of regions) {
      const res = await execScript(r.suffix ? ['env', r.dir, r.suffix] : ['env', r.dir], 30_000);
      if (!res.ok) throw new Error(`swift-saio.sh env ${r.dir} failed: ${res.output}`);
      Object.assign(process.env, parseEnvLines(res.stdout));
    }
    log(`test Swift ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ` +
      `A ${process.env.SWIFTFS_TEST_ST_AUTH}, B ${process.env.SWIFTFS_TEST_ST_AUTH_B}`);
  }

  /** Stops every instance this runner started (idempotent). Removes their directory when asked. */
  async stop(log, { removeDir }) {
    if (this.stopped || !this.baseDir) return;
    this.stopped = true;
    const results = await Promise.all(this.instances.map((r) => execScript(['stop', r.dir], SAIO_STOP_TIMEOUT_MS)));
    results.forEach((res, i) => {
      if (!res.ok) log(`[region ${this.instances[i].region}] stop failed: ${res.output}`);
    });
    if (removeDir && results.every((r) => r.ok)) {
      rmSync(this.baseDir, { recursive: true, force: true });
      log('stopped the test Swift instances and removed their directory');
    } else {
      log(`stopped the test Swift instances; their data and logs are kept in ${this.baseDir}`);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Running the areas through one reporter

function chooseReporter() {
  const wanted = process.env.SWIFTFS_TEST_REPORTER || (process.stdout.isTTY ? 'spec' : 'tap');
  return wanted === 'spec' ? spec : tap;
}

async function main() {
  const { areas, list } = parseArgs(process.argv.slice(2));
  if (!existsSync(distTest) || !statSync(distTest).isDirectory()) {
    console.error(`run-tests: ${relative(process.cwd(), distTest) || distTest} does not exist: run "npm run build" first`);
    process.exit(2);
  }
  const plan = areas.map((area) => ({ area, files: findTestFiles(area), ...AREAS[area] }));
  if (list) {
    for (const p of plan) for (const f of p.files) console.log(`${p.area}\t${relative(repoRoot, f)}`);
    return 0;
  }

  // One object stream of test events -> node's reporter -> stdout.
  const events = new PassThrough({ objectMode: true });
  const reporterOutput = events.compose(chooseReporter());
  reporterOutput.pipe(process.stdout);
  const note = (message) => events.write({ type: 'test:diagnostic', data: { nesting: 0, message } });

  const swifts = new TestSwifts();
  const abort = new AbortController();
  let interrupted = false;
  const onSignal = (signal) => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\nrun-tests: ${signal}: cancelling the tests and stopping the test Swift instances`);
    abort.abort();
    killScriptsInFlight(); // a `start` still waiting for readiness; its servers are stopped below by pid file
    // Whatever state the tests are in, the servers we started must not outlive us.
    const hardExit = setTimeout(() => process.exit(130), 90_000);
    hardExit.unref();
    swifts.stop((m) => console.error(`run-tests: ${m}`), { removeDir: false }).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const totals = Object.fromEntries(SUMMARY_KEYS.map((k) => [k, 0]));
  let topLevelCount = 0; // renumbers top-level tests across areas so the TAP stream stays consistent
  let setupFailed = false;
  const t0 = performance.now();
  try {
    const needSwift = plan.some((p) => p.needsSwift && p.files.length > 0);
    if (needSwift) {
      if (process.env.SWIFTFS_TEST_ST_AUTH) {
        note(`using the test Swift given in the environment: ${process.env.SWIFTFS_TEST_ST_AUTH}` +
          (process.env.SWIFTFS_TEST_ST_AUTH_B ? ` and ${process.env.SWIFTFS_TEST_ST_AUTH_B}` : ' (no region B)'));
      } else {
        try {
          await swifts.start(note);
        } catch (error) {
          setupFailed = true;
          note(`ERROR: ${error.message}`);
        }
      }
    }

    for (const p of plan) {
      if (abort.signal.aborted) break;
      if (p.files.length === 0) {
        note(`area ${p.area}: no test files yet (dist/test/${p.area}/**/*.test.js), skipped`);
        continue;
      }
      if (setupFailed && p.needsSwift) {
        // a visible failing test, so that the summary and the exit status both say so
        const error = new Error(`area ${p.area} not run: the test Swift did not start`);
        topLevelCount += 1;
        totals.tests += 1;
        totals.fail += 1;
        events.write({
          type: 'test:fail',
          data: { nesting: 0, name: `area ${p.area}`, testNumber: topLevelCount, details: { duration_ms: 0, error } },
        });
        continue;
      }
      const concurrency = p.parallel ? Math.max(1, Number(process.env.SWIFTFS_TEST_CONCURRENCY) || 2) : 1;
      const fileTimeoutS = Number(process.env.SWIFTFS_TEST_FILE_TIMEOUT_S) || p.fileTimeoutS;
      note(`area ${p.area}: ${p.files.length} file(s), ${concurrency} at a time, ${fileTimeoutS} s per file` +
        (p.extra ? ' (not a standard area: run one file at a time, with the test Swift)' : ''));
      const offset = topLevelCount;
      const stream = run({ files: p.files, concurrency, timeout: fileTimeoutS * 1000, signal: abort.signal });
      for await (const event of stream) {
        const data = event.data ?? {};
        if (data.nesting === 0) {
          if (event.type === 'test:plan') continue; // one plan for the whole run, at the end
          if (event.type === 'test:diagnostic') {
            const m = SUMMARY_RE.exec(data.message ?? '');
            if (m) {
              if (m[1] !== 'duration_ms') totals[m[1]] += Number(m[2]);
              continue; // one summary for the whole run, at the end
            }
          }
          if (event.type === 'test:pass' || event.type === 'test:fail') {
            topLevelCount += 1;
            events.write({ ...event, data: { ...data, testNumber: offset + (data.testNumber ?? 0) } });
            continue;
          }
        }
        events.write(event);
      }
    }
  } finally {
    const passed = !setupFailed && !interrupted && totals.fail === 0 && totals.cancelled === 0;
    if (!interrupted) await swifts.stop(note, { removeDir: passed });
  }
  if (interrupted) return 130;

  totals.duration_ms = performance.now() - t0;
  events.write({ type: 'test:plan', data: { nesting: 0, count: topLevelCount } });
  for (const key of SUMMARY_KEYS) {
    events.write({ type: 'test:diagnostic', data: { nesting: 0, message: `${key} ${totals[key]}` } });
  }
  events.end();
  await finished(reporterOutput);
  return setupFailed || totals.fail > 0 || totals.cancelled > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error('run-tests: internal error:', error);
    process.exitCode = 1;
  },
);
