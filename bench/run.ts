/**
 * `npm run bench`: swiftfs against rclone mount (--vfs-cache-mode full), s3fs and the raw backend, side by side on
 * the same Swift in one run. Prints a table of figures with ratios, and writes bench/results/latest.{json,md,svg,png}
 * and machine.json (the machine, each gateway's settings, the sizes, the time caps and which figures hit them);
 * a full run into the default directory also rewrites the README's benchmark block.
 *
 * Usage: node dist/bench/run.js [--quick] [--systems swiftfs,rclone,s3fs,raw] [--files N] [--work DIR] [--out DIR]
 *                               [--port P] [--no-readme]
 * Uses the Swift given by ST_AUTH/ST_USER/ST_KEY (+ SWIFTFS_BENCH_S3_ENDPOINT), or starts its own with
 * scripts/swift-saio.sh (in WORK/swift, proxy on --port). Needs root (FUSE mounts, dropping the page cache), fio,
 * rclone, s3fs, sqlite3, curl; rsvg-convert (librsvg2-bin) for the PNG chart.
 *
 * Time: every workload has a time cap (CAPS): when it fires, the workload's processes are killed and its figure
 * is recorded as a bound (the time so far for a duration, the rate so far for a rate), marked "capped". fio and
 * SQLite are also bounded by their own run time (fio --runtime, SQLite stops starting transactions after
 * sqliteSeconds), so that one slow peer cannot stretch the run.
 */

import { Command } from 'commander';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropCaches, Killed, RssSampler, run, sh, timed } from './lib/proc.js';
import { figureKey, markdownTable, replaceReadmeBlock, svgChart, type Figure, type System } from './lib/report.js';
import { authenticate, createContainer, destroyContainer, type SwiftEndpoint } from './lib/swift.js';
import { gatewaySettings, mountSystem, type ExpectedObject, type MountedSystem, type SystemName } from './lib/systems.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Sizes {
  seqBytes: number;
  treeFiles: number;
  fioBytes: number;
  fioSeconds: number;
  sqliteTx: number;
  /** SQLite stops starting transactions after this long (a rate is a rate). */
  sqliteSeconds: number;
}

/** Time caps of the workloads, in seconds (fio and SQLite: beyond their own run time). */
interface Caps {
  seqWrite: number;
  read: number;
  untar: number;
  metadata: number;
  rm: number;
  fioExtra: number;
  sqliteExtra: number;
  unmount: number;
}

// 3000 files ("several thousand", as the issue asks) for every system: measured per file on a busy 2-core host,
// untar + rm -rf cost rclone 57 + 78 ms and s3fs 156 + 45 ms; with 5000 files the two peers alone took 37 min.
const FULL: Sizes = { seqBytes: 1 << 30, treeFiles: 3000, fioBytes: 1 << 30, fioSeconds: 30, sqliteTx: 1000, sqliteSeconds: 60 };
const QUICK: Sizes = { seqBytes: 64 << 20, treeFiles: 500, fioBytes: 64 << 20, fioSeconds: 8, sqliteTx: 200, sqliteSeconds: 15 };
const FULL_CAPS: Caps = { seqWrite: 300, read: 300, untar: 1200, metadata: 300, rm: 600, fioExtra: 240, sqliteExtra: 120, unmount: 180 };
const QUICK_CAPS: Caps = { seqWrite: 120, read: 120, untar: 420, metadata: 120, rm: 240, fioExtra: 90, sqliteExtra: 60, unmount: 60 };

const MiB = 1 << 20;
const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

/** Figures stopped at their time cap (figureKey). */
const capped = new Set<string>();

type Capped<T> = { done: true; value: T; seconds: number } | { done: false; seconds: number };

/** Runs one workload under a time cap: when it fires, `fn`'s processes are killed (they take the signal). */
async function withCap<T>(what: string, capSeconds: number, fn: (signal: AbortSignal) => Promise<T>): Promise<Capped<T>> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), capSeconds * 1000);
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  try {
    const value = await fn(ac.signal);
    return { done: true, value, seconds: elapsed() };
  } catch (err) {
    if (ac.signal.aborted && err instanceof Killed) {
      log(`${what}: stopped at its time cap (${capSeconds} s)`);
      return { done: false, seconds: elapsed() };
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The configured Swift, or a local one started for the run (`stop` stops it again; a no-op for a configured one). */
async function startSwift(work: string, port: number): Promise<SwiftEndpoint & { stop(): Promise<void> }> {
  if (process.env.ST_AUTH && process.env.ST_USER && process.env.ST_KEY) {
    const s3 = process.env.SWIFTFS_BENCH_S3_ENDPOINT ?? new URL(process.env.ST_AUTH).origin;
    return { authUrl: process.env.ST_AUTH, user: process.env.ST_USER, key: process.env.ST_KEY, s3Endpoint: s3, stop: async () => undefined };
  }
  const dir = join(work, 'swift');
  const script = join(repoRoot, 'scripts/swift-saio.sh');
  log(`starting a local Swift in ${dir}`);
  await run('bash', [script, 'start', dir, '--port', String(port)], { timeoutMs: 300_000 });
  return {
    authUrl: `http://127.0.0.1:${port}/auth/v1.0`,
    user: 'test:tester',
    key: 'testing',
    s3Endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      await run('bash', [script, 'stop', dir], { allowFail: true, timeoutMs: 120_000 });
      log(`stopped the local Swift in ${dir}`);
    },
  };
}

/**
 * A deterministic tree of small files (1-32 KiB) under `dir`/tree, tarred to `tar`: about 14 files per directory
 * (files/100 top directories of 7 subdirectories each), as in a source tree.
 */
async function makeTree(dir: string, tar: string, files: number): Promise<ExpectedObject[]> {
  await rm(dir, { recursive: true, force: true });
  const top = Math.max(1, Math.round(files / 100));
  const expected: ExpectedObject[] = [];
  let seed = createHash('sha256').update('swiftfs-bench').digest();
  for (let i = 0; i < files; i++) {
    seed = createHash('sha256').update(seed).digest();
    const size = 1024 + (seed.readUInt32BE(0) % (31 * 1024));
    const sub = `d${String(i % top).padStart(2, '0')}/e${String(i % 7)}`;
    const path = `tree/${sub}/f${i}.dat`;
    await mkdir(join(dir, 'tree', sub), { recursive: true });
    await writeFile(join(dir, path), randomBytes(size));
    expected.push({ path, size });
  }
  await sh(`cd '${dir}' && tar cf '${tar}' tree`);
  return expected;
}

interface FioResult {
  iops: number;
  p50ms: number;
  p99ms: number;
}

interface FioJob {
  read: { iops: number; clat_ns: { percentile?: Record<string, number> } };
  write: { iops: number; clat_ns: { percentile?: Record<string, number> } };
}

/** The last complete JSON report in fio's output (with --status-interval it prints one per interval). */
function lastFioReport(stdout: string): FioJob | undefined {
  const starts: number[] = [];
  for (let i = stdout.indexOf('{'); i >= 0; i = stdout.indexOf('\n{', i + 1)) starts.push(stdout[i] === '{' ? i : i + 1);
  for (let k = starts.length - 1; k >= 0; k--) {
    const end = k + 1 < starts.length ? starts[k + 1] : stdout.length;
    try {
      const report = JSON.parse(stdout.slice(starts[k], end)) as { jobs?: FioJob[] };
      if (report.jobs?.[0]) return report.jobs[0];
    } catch {
      // cut short by the kill: try the one before
    }
  }
  return undefined;
}

/**
 * fio 4 KiB random I/O for sizes.fioSeconds (after laying out the file). Under a cap: when killed, the last
 * periodic report (every 5 s) gives the rate so far, marked capped by the caller.
 */
async function fio(file: string, rw: 'randwrite' | 'randread', sizes: Sizes, capSeconds: number, fsyncEvery?: number): Promise<{ result?: FioResult; capped?: boolean }> {
  const args = [`--name=bench`, `--filename=${file}`, `--size=${sizes.fioBytes}`, '--bs=4k', `--rw=${rw}`, '--ioengine=psync', '--iodepth=1', `--runtime=${sizes.fioSeconds}`, '--time_based', '--output-format=json', '--status-interval=5', '--randrepeat=1', '--norandommap'];
  if (fsyncEvery) args.push(`--fsync=${fsyncEvery}`);
  let stdout = '';
  const r = await withCap(`fio ${rw}`, capSeconds, async (signal) => {
    try {
      return await run('fio', args, { signal });
    } catch (err) {
      if (err instanceof Killed) stdout = err.result.stdout;
      throw err;
    }
  });
  if (r.done) stdout = r.value.stdout;
  const job = lastFioReport(stdout);
  if (!job) return { capped: !r.done };
  const side = rw === 'randwrite' ? job.write : job.read;
  const pct = side.clat_ns.percentile ?? {};
  return { result: { iops: side.iops, p50ms: (pct['50.000000'] ?? 0) / 1e6, p99ms: (pct['99.000000'] ?? 0) / 1e6 }, capped: !r.done };
}

/**
 * SQLite single-row insert transactions (each commit fsyncs: journal and database), fed one at a time to one
 * sqlite3 process, until `maxTx` are done or `maxSeconds` have passed; transactions per second. Killed (the
 * figure then marked capped) if one transaction keeps it past maxSeconds + capExtra.
 */
async function sqliteRate(dir: string, maxTx: number, maxSeconds: number, capExtra: number): Promise<{ rate: number; done: number; capped: boolean }> {
  const db = join(dir, 'bench.sqlite');
  await run('sqlite3', [db, 'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT);'], { timeoutMs: 120_000 });
  const child = spawn('sqlite3', [db], { stdio: ['pipe', 'pipe', 'pipe'] });
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  let done = 0;
  let lastDoneAt = 0;
  let killed = false;
  let stderr = '';
  const send = (i: number) => child.stdin.write(`BEGIN; INSERT INTO t(v) VALUES ('row ${i} ${'x'.repeat(100)}'); COMMIT; SELECT 'done';\n`);
  const finished = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 137));
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let pending = '';
  child.stdout.on('data', (d: Buffer) => {
    pending += d.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line !== 'done') continue;
      done++;
      lastDoneAt = elapsed();
      if (done < maxTx && lastDoneAt < maxSeconds) send(done);
      else child.stdin.end();
    }
  });
  child.stdin.on('error', () => undefined);
  const cap = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, (maxSeconds + capExtra) * 1000);
  send(0);
  const code = await finished;
  clearTimeout(cap);
  if (!killed && code !== 0) throw new Error(`sqlite3 exited ${code}: ${stderr.slice(-500)}`);
  const check = await run('sqlite3', [db, 'PRAGMA integrity_check; SELECT count(*) FROM t;'], { timeoutMs: 300_000 });
  if (!check.stdout.startsWith('ok')) throw new Error(`sqlite integrity_check failed: ${check.stdout}`);
  const seconds = killed ? elapsed() : lastDoneAt;
  return { rate: seconds > 0 ? done / seconds : 0, done, capped: killed };
}

interface Pass {
  name: SystemName;
  /** swiftfs only: its second pass, with fsync local (random writes and SQLite only). */
  local?: boolean;
}

async function benchGateway(pass: Pass, endpoint: SwiftEndpoint, work: string, sizes: Sizes, caps: Caps, tree: { tar: string; expected: ExpectedObject[] }, source: string, figures: Figure[]): Promise<void> {
  const { name, local } = pass;
  const session = await authenticate(endpoint);
  const container = `bench-${name}${local ? '-local' : ''}-${Date.now()}`;
  await createContainer(session, container);
  const dir = join(work, 'mnt', name);
  const cacheDir = join(work, 'cache', name);
  const ctx = { endpoint, session, container, dir, cacheDir, cacheSize: '1G', repoRoot, log, ...(name === 'swiftfs' ? { fsync: local ? ('local' as const) : ('remote' as const) } : {}) };
  const add = (workload: string, value: number, unit: string, better: 'higher' | 'lower', isCapped = false) => {
    figures.push({ workload, system: name, value, unit, better });
    if (isCapped) capped.add(figureKey(name, workload));
    log(`${name}${local ? ' (local fsync)' : ''}: ${workload} = ${value.toFixed(2)} ${unit}${isCapped ? ' (capped: a bound)' : ''}`);
  };
  /**
   * Writes the fio file in full and waits until it is in the store, before the timed fio jobs: fio lays a file out
   * itself only where fallocate works (s3fs; not swiftfs or rclone, where a randwrite job leaves a sparse file
   * shorter than its size and the next job rewrites it all with O_TRUNC, in 4 KiB writes). Not timed.
   */
  const layOutFioFile = async (): Promise<boolean> => {
    const fioFile = join(dir, 'fio.dat');
    const laid = await withCap(`${name}: fio file layout`, caps.seqWrite, async (signal) => {
      await run('dd', [`if=${source}`, `of=${fioFile}`, 'bs=1M', `count=${sizes.fioBytes / MiB}`, 'conv=fsync', 'status=none'], { signal });
      await m.waitDurable([{ path: 'fio.dat', size: sizes.fioBytes }], signal);
    });
    if (!laid.done) log(`${name}: fio skipped (its file did not reach the store within the cap)`);
    return laid.done;
  };
  const sqlite = async (workload: string) => {
    const s = await sqliteRate(dir, sizes.sqliteTx, sizes.sqliteSeconds, caps.sqliteExtra);
    log(`${name}: SQLite: ${s.done} transactions`);
    add(workload, s.rate, 'tx/s', 'higher', s.capped);
  };
  let m: MountedSystem = await mountSystem(name, ctx);
  const sampler = new RssSampler(() => m.pids());
  try {
    if (local) {
      const w = (await layOutFioFile()) ? await fio(join(dir, 'fio.dat'), 'randwrite', sizes, sizes.fioSeconds + caps.fioExtra, 64) : {};
      if (w.result) add('4K randwrite, fsync every 64 (local fsync mode)', w.result.iops, 'IOPS', 'higher', w.capped);
      await sqlite('SQLite transactions (local fsync mode)');
      return;
    }
    // 1. Sequential write with fsync, then until durable.
    const mib = sizes.seqBytes / MiB;
    let fsynced = 0;
    const seq = await withCap(`${name}: seq write`, caps.seqWrite, async (signal) => {
      fsynced = (await run('dd', [`if=${source}`, `of=${join(dir, 'seq.bin')}`, 'bs=1M', 'conv=fsync'], { signal })).seconds;
      await m.waitDurable([{ path: 'seq.bin', size: sizes.seqBytes }], signal);
    });
    add(`seq write ${mib} MiB, until fsync returns`, mib / (fsynced || seq.seconds), 'MiB/s', 'higher', fsynced === 0);
    add(`seq write ${mib} MiB, until durable in the store`, mib / seq.seconds, 'MiB/s', 'higher', !seq.done);

    // 2. Sequential read, cold (fresh mount, empty cache, no page cache) then warm.
    if (seq.done) {
      await m.unmount(caps.unmount * 1000);
      await rm(cacheDir, { recursive: true, force: true });
      m = await mountSystem(name, ctx);
      await dropCaches();
      const cold = await withCap(`${name}: cold read`, caps.read, (signal) => run('dd', [`if=${join(dir, 'seq.bin')}`, 'of=/dev/null', 'bs=1M'], { signal }));
      add(`seq read ${mib} MiB, cold`, mib / cold.seconds, 'MiB/s', 'higher', !cold.done);
      await dropCaches(); // the gateway's own cache stays warm; the kernel's page cache does not
      const warm = await withCap(`${name}: warm read`, caps.read, (signal) => run('dd', [`if=${join(dir, 'seq.bin')}`, 'of=/dev/null', 'bs=1M'], { signal }));
      add(`seq read ${mib} MiB, warm`, mib / warm.seconds, 'MiB/s', 'higher', !warm.done);
    } else log(`${name}: reads skipped (the file did not reach the store within the cap)`);

    // 3. Untar of many small files, sync, until uploaded.
    const untar = await withCap(`${name}: untar`, caps.untar, async (signal) => {
      await run('tar', ['xf', tree.tar, '-C', dir], { signal });
      await run('sync', ['-f', dir], { allowFail: true, signal });
      await m.waitDurable(tree.expected, signal);
    });
    add(`untar ${tree.expected.length} files, until durable`, untar.seconds, 's', 'lower', !untar.done);

    // 4. Metadata: ls -lR, stat of every file, rm -rf (on a partial tree after a capped untar: not recorded).
    const treeDir = join(dir, 'tree');
    if (untar.done) {
      await dropCaches();
      const ls = await withCap(`${name}: ls -lR`, caps.metadata, (signal) => sh(`ls -lR '${treeDir}' > /dev/null`, { signal }));
      add('ls -lR of the tree', ls.seconds, 's', 'lower', !ls.done);
      const stat = await withCap(`${name}: stat`, caps.metadata, (signal) => sh(`find '${treeDir}' -type f -print0 | xargs -0 stat > /dev/null`, { signal }));
      add('stat of every file', stat.seconds, 's', 'lower', !stat.done);
    }
    const rmTree = await withCap(`${name}: rm -rf`, caps.rm, (signal) => run('rm', ['-rf', treeDir], { signal }));
    if (untar.done) add('rm -rf of the tree', rmTree.seconds, 's', 'lower', !rmTree.done);

    // 5. fio 4 KiB random writes (fsync every 64) and reads, in a file written in full beforehand.
    const laidOut = await layOutFioFile();
    const w = laidOut ? await fio(join(dir, 'fio.dat'), 'randwrite', sizes, sizes.fioSeconds + caps.fioExtra, 64) : {};
    if (w.result) {
      add('4K randwrite, fsync every 64', w.result.iops, 'IOPS', 'higher', w.capped);
      add('4K randwrite p99 latency', w.result.p99ms, 'ms', 'lower', w.capped);
    }
    const r = laidOut ? await fio(join(dir, 'fio.dat'), 'randread', sizes, sizes.fioSeconds + caps.fioExtra) : {};
    if (r.result) {
      add('4K randread', r.result.iops, 'IOPS', 'higher', r.capped);
      add('4K randread p99 latency', r.result.p99ms, 'ms', 'lower', r.capped);
    }

    // 6. SQLite transactions (each commit fsyncs).
    await sqlite('SQLite transactions (single-row insert, fsync each)');
  } finally {
    const peak = await sampler.stop();
    if (!local) add('peak memory (RSS) of the gateway', peak / MiB, 'MiB', 'lower');
    await m.unmount(caps.unmount * 1000).catch((e: unknown) => log(`${name}: unmount failed: ${String(e)}`));
    await destroyContainer(session, container).catch(() => undefined);
  }
}

async function benchRaw(endpoint: SwiftEndpoint, work: string, sizes: Sizes, tree: { dir: string; expected: ExpectedObject[] }, source: string, figures: Figure[]): Promise<void> {
  const s = await authenticate(endpoint);
  const container = `bench-raw-${Date.now()}`;
  await createContainer(s, container);
  const add = (workload: string, value: number, unit: string, better: 'higher' | 'lower') => {
    figures.push({ workload, system: 'raw', value, unit, better });
    log(`raw: ${workload} = ${value.toFixed(2)} ${unit}`);
  };
  const base = `${s.storageUrl}/${container}`;
  // The token goes to curl through a header file (not argv, where ps shows it).
  const headerFile = join(work, 'raw-auth-header');
  await writeFile(headerFile, `X-Auth-Token: ${s.token}\n`, { mode: 0o600 });
  const auth = `-H @'${headerFile}'`;
  const timeoutMs = 1_800_000;
  try {
    const chunks = join(work, 'chunks');
    await rm(chunks, { recursive: true, force: true });
    await mkdir(chunks);
    await run('split', ['-b', '4M', '-a', '4', source, `${chunks}/c`]);
    const mib = sizes.seqBytes / MiB;
    const put = await sh(`cd '${chunks}' && ls | xargs -P 8 -I{} curl -sf -o /dev/null ${auth} -T {} '${base}/chunks/{}'`, { timeoutMs });
    add(`seq write ${mib} MiB, until durable in the store`, mib / put.seconds, 'MiB/s', 'higher');
    add(`seq write ${mib} MiB, until fsync returns`, mib / put.seconds, 'MiB/s', 'higher');
    await sh(`curl -sf -o /dev/null ${auth} -T '${source}' '${base}/seq.bin'`, { timeoutMs });
    const get = await sh(`curl -sf -o /dev/null ${auth} '${base}/seq.bin'`, { timeoutMs });
    add(`seq read ${mib} MiB, cold`, mib / get.seconds, 'MiB/s', 'higher');
    const pget = await sh(`cd '${chunks}' && ls | xargs -P 8 -I{} curl -sf -o /dev/null ${auth} '${base}/chunks/{}'`, { timeoutMs });
    add(`seq read ${mib} MiB, warm`, mib / pget.seconds, 'MiB/s', 'higher');
    const files = tree.expected.map((e) => e.path).join('\n') + '\n';
    const small = await sh(`cd '${tree.dir}' && xargs -P 8 -I{} curl -sf -o /dev/null ${auth} -T {} '${base}/{}'`, { input: files, timeoutMs });
    add(`untar ${tree.expected.length} files, until durable`, small.seconds, 's', 'lower');
  } finally {
    await rm(headerFile, { force: true });
    await destroyContainer(s, container).catch(() => undefined);
  }
}

async function machine(): Promise<Record<string, string> & { date: string }> {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const kernel = (await run('uname', ['-r'])).stdout.trim();
  const versions = async (cmd: string, args: string[]) => (await run(cmd, args, { allowFail: true }).catch(() => ({ stdout: 'not installed' }))).stdout.split('\n')[0]!.trim();
  return {
    cpu: `${os.cpus().length} × ${cpu}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel,
    os: existsSync('/etc/debian_version') ? `Debian ${(await readFile('/etc/debian_version', 'utf8')).trim()}` : os.type(),
    node: process.version,
    rclone: await versions('rclone', ['version']),
    s3fs: await versions('s3fs', ['--version']),
    swift: await versions('dpkg-query', ['-W', '-f=${Version}', 'swift']),
    fio: await versions('fio', ['--version']),
    sqlite: await versions('sqlite3', ['--version']),
    loadBefore: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    date: new Date().toISOString(),
  };
}

/** Renders the SVG chart to PNG with rsvg-convert when it is installed (librsvg2-bin); false otherwise. */
async function renderPng(svg: string, png: string): Promise<boolean> {
  const r = await run('rsvg-convert', ['-b', 'white', '-o', png, svg], { allowFail: true, timeoutMs: 60_000 }).catch(() => undefined);
  return r !== undefined && r.code === 0;
}

async function main(): Promise<void> {
  const program = new Command('bench')
    .option('--quick', 'a small version that runs in a few minutes')
    .option('--systems <list>', 'systems to run', 'swiftfs,rclone,s3fs,raw')
    .option('--files <n>', 'files in the untar tree (default 3000, quick 500)')
    .option('--work <dir>', 'scratch directory (local disk)', '/var/tmp/swiftfs-bench')
    .option('--out <dir>', 'where to write latest.{json,md,svg,png} (default bench/results, quick: bench/results/quick)')
    .option('--port <n>', 'proxy port of the Swift it starts when none is configured', '38080')
    .option('--no-readme', 'do not rewrite the README block (only full runs into bench/results do)')
    .parse();
  const opts = program.opts<{ quick?: boolean; systems: string; files?: string; work: string; out?: string; port: string; readme: boolean }>();
  const sizes = { ...(opts.quick ? QUICK : FULL) };
  if (opts.files) sizes.treeFiles = Number(opts.files);
  const caps = opts.quick ? QUICK_CAPS : FULL_CAPS;
  const systems = opts.systems.split(',').map((s) => s.trim()) as System[];
  const defaultOut = join(repoRoot, 'bench/results');
  const out = resolve(opts.out ?? (opts.quick ? join(defaultOut, 'quick') : defaultOut));
  const work = resolve(opts.work);
  await mkdir(work, { recursive: true });
  const started = Date.now();
  const info = await machine();
  const endpoint = await startSwift(work, Number(opts.port));
  const figures: Figure[] = [];
  const durations: Record<string, number> = {};
  try {
    log(`preparing data (${sizes.seqBytes / MiB} MiB source, ${sizes.treeFiles} small files)`);
    const source = join(work, 'source.bin');
    await run('dd', ['if=/dev/urandom', `of=${source}`, 'bs=1M', `count=${sizes.seqBytes / MiB}`, 'status=none']);
    const treeDir = join(work, 'tree');
    const tar = join(work, 'tree.tar');
    const expected = await makeTree(treeDir, tar, sizes.treeFiles);

    for (const system of systems) {
      const t0 = Date.now();
      try {
        if (system === 'raw') await benchRaw(endpoint, work, sizes, { dir: treeDir, expected }, source, figures);
        else {
          await benchGateway({ name: system }, endpoint, work, sizes, caps, { tar, expected }, source, figures);
          if (system === 'swiftfs') await benchGateway({ name: system, local: true }, endpoint, work, sizes, caps, { tar, expected }, source, figures);
        }
      } catch (err) {
        log(`${system}: FAILED: ${err instanceof Error ? err.stack : String(err)}`);
      }
      durations[system] = Math.round((Date.now() - t0) / 1000);
      log(`${system}: done in ${durations[system]} s`);
    }
  } finally {
    await endpoint.stop();
  }
  // The local-fsync rows are compared with the peers' only figures (they have no such mode; rclone's fsync does
  // nothing, s3fs's uploads the file).
  const localRows: [string, string][] = [
    ['4K randwrite, fsync every 64', '4K randwrite, fsync every 64 (local fsync mode)'],
    ['SQLite transactions (single-row insert, fsync each)', 'SQLite transactions (local fsync mode)'],
  ];
  for (const peer of ['rclone', 's3fs'] as const) {
    for (const [from, to] of localRows) {
      const f = figures.find((x) => x.system === peer && x.workload === from);
      if (!f) continue;
      figures.push({ ...f, workload: to });
      if (capped.has(figureKey(peer, from))) capped.add(figureKey(peer, to));
    }
  }

  const totalSeconds = Math.round((Date.now() - started) / 1000);
  const kind = opts.quick ? 'quick run' : 'full run';
  const title = `swiftfs bench (${kind}), ${info.date.slice(0, 10)}`;
  const subtitle = `${info.cpu}, ${info.memory}; one local Swift ${info.swift} shared by every system; ${sizes.seqBytes / MiB} MiB sequential, ${sizes.treeFiles} small files`;
  const table = markdownTable(figures, capped);
  console.log(`\n${table}\n`);
  await mkdir(out, { recursive: true });
  const settings = gatewaySettings();
  const cappedList = [...capped].map((k) => {
    const [system, workload] = k.split('\t');
    return { system, workload };
  });
  const run_ = { kind, sizes, caps, gateways: settings, capped: cappedList, durationsSeconds: { ...durations, total: totalSeconds }, loadAfter: os.loadavg().map((l) => l.toFixed(2)).join(' ') };
  await writeFile(join(out, 'latest.json'), JSON.stringify(figures, null, 2) + '\n');
  await writeFile(join(out, 'latest.svg'), svgChart(figures, title, capped, subtitle));
  const png = await renderPng(join(out, 'latest.svg'), join(out, 'latest.png'));
  if (!png) log('rsvg-convert not found (apt-get install librsvg2-bin): no PNG, the README links the SVG');
  const chart = png ? 'latest.png' : 'latest.svg';
  const settingsMd = Object.entries(settings).map(([k, v]) => `- ${k}: \`${v.args}\` (${v.why})`);
  const md = [
    `# ${title}`,
    '',
    '## Machine',
    '',
    ...Object.entries(info).map(([k, v]) => `- ${k}: ${v}`),
    `- load after: ${run_.loadAfter}`,
    '',
    '## Settings',
    '',
    ...settingsMd,
    `- sizes: ${sizes.seqBytes / MiB} MiB sequential file; ${sizes.treeFiles} files of 1-32 KiB (about 14 per directory); fio on a ${sizes.fioBytes / MiB} MiB file for ${sizes.fioSeconds} s; SQLite up to ${sizes.sqliteTx} transactions or ${sizes.sqliteSeconds} s`,
    `- time caps (s): ${Object.entries(caps).map(([k, v]) => `${k} ${v}`).join(', ')}; figures that hit one: ${cappedList.length ? cappedList.map((c) => `${c.system} "${c.workload}"`).join('; ') : 'none'}`,
    `- wall time (s): ${Object.entries(run_.durationsSeconds).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    '',
    '## Results',
    '',
    table,
    '',
    `![chart](${chart})`,
    '',
  ].join('\n');
  await writeFile(join(out, 'latest.md'), md);
  await writeFile(join(out, 'machine.json'), JSON.stringify({ ...info, run: run_ }, null, 2) + '\n');
  if (!opts.quick) await cp(join(out, 'latest.json'), join(out, `run-${info.date.slice(0, 10)}.json`));
  log(`wrote ${out}/latest.{json,md,svg${png ? ',png' : ''}} and machine.json in ${totalSeconds} s`);

  if (opts.readme && !opts.quick && out === defaultOut) {
    const readmePath = join(repoRoot, 'README.md');
    const rel = relative(repoRoot, out);
    const block = [
      `Measured by \`npm run bench\` (bench/run.ts) on ${info.date.slice(0, 10)}: ${info.cpu}, ${info.memory}, one local Swift ${info.swift}`,
      `(both APIs) shared by every system, rclone ${(info.rclone ?? "").replace(/^rclone\s*/, '')}, ${(info.s3fs ?? "").replace(/ \(commit.*$/, '')}. Settings, sizes, time caps and`,
      `wall times: [${rel}/latest.md](${rel}/latest.md); raw figures: [${rel}/latest.json](${rel}/latest.json).`,
      '',
      table,
      '',
      `![benchmark chart](${rel}/${chart})`,
    ].join('\n');
    const updated = replaceReadmeBlock(await readFile(readmePath, 'utf8'), block);
    if (updated === undefined) log('README.md has no bench markers: not updated');
    else {
      await writeFile(readmePath, updated);
      log('README.md: benchmark block rewritten');
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
