/**
 * `npm run bench`: swiftfs against rclone mount (--vfs-cache-mode full), s3fs and the raw backend, side by side on
 * the same Swift in one run. Prints a table of figures with ratios, and writes bench/results/latest.{json,md,svg}.
 *
 * Usage: node dist/bench/run.js [--quick] [--systems swiftfs,rclone,s3fs,raw] [--work DIR] [--out DIR]
 * Uses the Swift given by ST_AUTH/ST_USER/ST_KEY (+ SWIFTFS_BENCH_S3_ENDPOINT), or starts its own with
 * scripts/swift-saio.sh. Needs root (FUSE mounts, dropping the page cache), fio, rclone, s3fs, sqlite3, curl.
 */

import { Command } from 'commander';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile, cp } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropCaches, RssSampler, run, sh, timed } from './lib/proc.js';
import { markdownTable, svgChart, type Figure, type System } from './lib/report.js';
import { authenticate, createContainer, destroyContainer, type SwiftEndpoint } from './lib/swift.js';
import { mountSystem, type ExpectedObject, type MountedSystem, type SystemName } from './lib/systems.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Sizes {
  seqBytes: number;
  treeFiles: number;
  fioBytes: number;
  fioSeconds: number;
  sqliteTx: number;
}

const FULL: Sizes = { seqBytes: 1 << 30, treeFiles: 5000, fioBytes: 1 << 30, fioSeconds: 30, sqliteTx: 1000 };
const QUICK: Sizes = { seqBytes: 64 << 20, treeFiles: 500, fioBytes: 64 << 20, fioSeconds: 8, sqliteTx: 200 };

const MiB = 1 << 20;
const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

async function startSwift(work: string): Promise<SwiftEndpoint> {
  if (process.env.ST_AUTH && process.env.ST_USER && process.env.ST_KEY) {
    const s3 = process.env.SWIFTFS_BENCH_S3_ENDPOINT ?? new URL(process.env.ST_AUTH).origin;
    return { authUrl: process.env.ST_AUTH, user: process.env.ST_USER, key: process.env.ST_KEY, s3Endpoint: s3 };
  }
  const dir = join(work, 'swift');
  log(`starting a local Swift in ${dir}`);
  await run('bash', [join(repoRoot, 'scripts/swift-saio.sh'), 'start', dir, '--port', '38080'], { timeoutMs: 300_000 });
  return { authUrl: 'http://127.0.0.1:38080/auth/v1.0', user: 'test:tester', key: 'testing', s3Endpoint: 'http://127.0.0.1:38080' };
}

/** A deterministic tree of small files (1-32 KiB) in `dir`, tarred to `tar`. */
async function makeTree(dir: string, tar: string, files: number): Promise<ExpectedObject[]> {
  await rm(dir, { recursive: true, force: true });
  const expected: ExpectedObject[] = [];
  let seed = createHash('sha256').update('swiftfs-bench').digest();
  for (let i = 0; i < files; i++) {
    seed = createHash('sha256').update(seed).digest();
    const size = 1024 + (seed.readUInt32BE(0) % (31 * 1024));
    const sub = `d${String(i % 50).padStart(2, '0')}/e${String(i % 7)}`;
    const path = `tree/${sub}/f${i}.dat`;
    await mkdir(join(dir, '..', 'tree', sub), { recursive: true });
    await writeFile(join(dir, '..', path), randomBytes(size));
    expected.push({ path, size });
  }
  await sh(`cd '${join(dir, '..')}' && tar cf '${tar}' tree`);
  return expected;
}

interface FioResult {
  iops: number;
  p50ms: number;
  p99ms: number;
}

async function fio(file: string, rw: 'randwrite' | 'randread', sizes: Sizes, fsyncEvery?: number): Promise<FioResult> {
  const args = [`--name=bench`, `--filename=${file}`, `--size=${sizes.fioBytes}`, '--bs=4k', `--rw=${rw}`, '--ioengine=psync', '--iodepth=1', `--runtime=${sizes.fioSeconds}`, '--time_based', '--output-format=json', '--randrepeat=1', '--norandommap'];
  if (fsyncEvery) args.push(`--fsync=${fsyncEvery}`);
  const r = await run('fio', args, { timeoutMs: 3_600_000 });
  const job = (JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: Record<string, { iops: number; clat_ns: { percentile?: Record<string, number> } }>[] }).jobs[0]!;
  const side = rw === 'randwrite' ? job.write! : job.read!;
  const pct = side.clat_ns.percentile ?? {};
  return { iops: side.iops, p50ms: (pct['50.000000'] ?? 0) / 1e6, p99ms: (pct['99.000000'] ?? 0) / 1e6 };
}

async function sqliteRate(dir: string, tx: number): Promise<number> {
  const db = join(dir, 'bench.sqlite');
  await run('sqlite3', [db, 'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT);']);
  const script = Array.from({ length: tx }, (_, i) => `BEGIN; INSERT INTO t(v) VALUES ('row ${i} ${'x'.repeat(100)}'); COMMIT;`).join('\n');
  const r = await run('sqlite3', [db], { input: script, timeoutMs: 3_600_000 });
  const check = await run('sqlite3', [db, 'PRAGMA integrity_check; SELECT count(*) FROM t;']);
  if (!check.stdout.startsWith('ok')) throw new Error(`sqlite integrity_check failed: ${check.stdout}`);
  return tx / r.seconds;
}

async function benchGateway(name: SystemName, endpoint: SwiftEndpoint, work: string, sizes: Sizes, tree: { tar: string; expected: ExpectedObject[] }, source: string, figures: Figure[], fsync?: 'remote' | 'local'): Promise<void> {
  const session = await authenticate(endpoint);
  const container = `bench-${name}${fsync === 'local' ? '-local' : ''}-${Date.now()}`;
  await createContainer(session, container);
  const dir = join(work, 'mnt', name);
  const cacheDir = join(work, 'cache', name);
  const ctx = { endpoint, session, container, dir, cacheDir, cacheSize: '1G', repoRoot, log, ...(fsync ? { fsync } : {}) };
  const add = (workload: string, value: number, unit: string, better: 'higher' | 'lower') => {
    figures.push({ workload, system: name, value, unit, better });
    log(`${name}${fsync === 'local' ? ' (local fsync)' : ''}: ${workload} = ${value.toFixed(2)} ${unit}`);
  };
  let m: MountedSystem = await mountSystem(name, ctx);
  const sampler = new RssSampler(() => m.pids());
  try {
    if (fsync === 'local') {
      const w = await fio(join(dir, 'fio.dat'), 'randwrite', sizes, 64);
      add('4K randwrite, fsync every 64 (local fsync mode)', w.iops, 'IOPS', 'higher');
      return;
    }
    // 1. Sequential write with fsync, then until durable.
    const mib = sizes.seqBytes / MiB;
    let fsynced = 0;
    const durable = await timed(async () => {
      fsynced = (await run('dd', [`if=${source}`, `of=${join(dir, 'seq.bin')}`, 'bs=1M', 'conv=fsync'])).seconds;
      await m.waitDurable([{ path: 'seq.bin', size: sizes.seqBytes }]);
    });
    add(`seq write ${mib} MiB, until fsync returns`, mib / fsynced, 'MiB/s', 'higher');
    add(`seq write ${mib} MiB, until durable in the store`, mib / durable, 'MiB/s', 'higher');

    // 2. Sequential read, cold (fresh mount, empty cache, no page cache) then warm.
    await m.unmount();
    await rm(cacheDir, { recursive: true, force: true });
    m = await mountSystem(name, ctx);
    await dropCaches();
    const cold = await run('dd', [`if=${join(dir, 'seq.bin')}`, 'of=/dev/null', 'bs=1M']);
    add(`seq read ${mib} MiB, cold`, mib / cold.seconds, 'MiB/s', 'higher');
    await dropCaches(); // the gateway's own cache stays warm; the kernel's page cache does not
    const warm = await run('dd', [`if=${join(dir, 'seq.bin')}`, 'of=/dev/null', 'bs=1M']);
    add(`seq read ${mib} MiB, warm`, mib / warm.seconds, 'MiB/s', 'higher');

    // 3. Untar of many small files, sync, until uploaded.
    const untar = await timed(async () => {
      await run('tar', ['xf', tree.tar, '-C', dir]);
      await run('sync', ['-f', dir], { allowFail: true });
      await m.waitDurable(tree.expected);
    });
    add(`untar ${tree.expected.length} files, until durable`, untar, 's', 'lower');

    // 4. Metadata: ls -lR, stat of every file, rm -rf.
    await dropCaches();
    add('ls -lR of the tree', (await sh(`ls -lR '${join(dir, 'tree')}' > /dev/null`)).seconds, 's', 'lower');
    add('stat of every file', (await sh(`find '${join(dir, 'tree')}' -type f -print0 | xargs -0 stat > /dev/null`)).seconds, 's', 'lower');
    add('rm -rf of the tree', (await run('rm', ['-rf', join(dir, 'tree')])).seconds, 's', 'lower');

    // 5. fio 4 KiB random writes (fsync every 64) and reads.
    const w = await fio(join(dir, 'fio.dat'), 'randwrite', sizes, 64);
    add('4K randwrite, fsync every 64', w.iops, 'IOPS', 'higher');
    add('4K randwrite p99 latency', w.p99ms, 'ms', 'lower');
    const r = await fio(join(dir, 'fio.dat'), 'randread', sizes);
    add('4K randread', r.iops, 'IOPS', 'higher');
    add('4K randread p99 latency', r.p99ms, 'ms', 'lower');

    // 6. SQLite transactions (each commit fsyncs).
    add(`SQLite ${sizes.sqliteTx} single-row transactions`, await sqliteRate(dir, sizes.sqliteTx), 'tx/s', 'higher');
  } finally {
    const peak = await sampler.stop();
    if (fsync !== 'local') add('peak memory (RSS) of the gateway', peak / MiB, 'MiB', 'lower');
    await m.unmount().catch((e: unknown) => log(`${name}: unmount failed: ${String(e)}`));
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
  const auth = `-H 'X-Auth-Token: ${s.token}'`;
  try {
    const chunks = join(work, 'chunks');
    await rm(chunks, { recursive: true, force: true });
    await mkdir(chunks);
    await run('split', ['-b', '4M', '-a', '4', source, `${chunks}/c`]);
    const mib = sizes.seqBytes / MiB;
    const put = await sh(`cd '${chunks}' && ls | xargs -P 8 -I{} curl -sf -o /dev/null ${auth} -T {} '${base}/chunks/{}'`);
    add(`seq write ${mib} MiB, until durable in the store`, mib / put.seconds, 'MiB/s', 'higher');
    add(`seq write ${mib} MiB, until fsync returns`, mib / put.seconds, 'MiB/s', 'higher');
    await sh(`curl -sf -o /dev/null ${auth} -T '${source}' '${base}/seq.bin'`);
    const get = await sh(`curl -sf -o /dev/null ${auth} '${base}/seq.bin'`);
    add(`seq read ${mib} MiB, cold`, mib / get.seconds, 'MiB/s', 'higher');
    const pget = await sh(`cd '${chunks}' && ls | xargs -P 8 -I{} curl -sf -o /dev/null ${auth} '${base}/chunks/{}'`);
    add(`seq read ${mib} MiB, warm`, mib / pget.seconds, 'MiB/s', 'higher');
    const files = tree.expected.map((e) => e.path).join('\n') + '\n';
    const small = await sh(`cd '${tree.dir}/..' && xargs -P 8 -I{} curl -sf -o /dev/null ${auth} -T {} '${base}/{}'`, { input: files });
    add(`untar ${tree.expected.length} files, until durable`, small.seconds, 's', 'lower');
  } finally {
    await destroyContainer(s, container).catch(() => undefined);
  }
}

async function machine(): Promise<Record<string, string> & { date: string }> {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const kernel = (await run('uname', ['-r'])).stdout.trim();
  const versions = async (cmd: string, args: string[]) => (await run(cmd, args, { allowFail: true })).stdout.split('\n')[0]!.trim();
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
    date: new Date().toISOString(),
  };
}

async function main(): Promise<void> {
  const program = new Command('bench')
    .option('--quick', 'a small version that runs in a couple of minutes')
    .option('--systems <list>', 'systems to run', 'swiftfs,rclone,s3fs,raw')
    .option('--work <dir>', 'scratch directory (local disk)', '/var/tmp/swiftfs-bench')
    .option('--out <dir>', 'where to write latest.{json,md,svg}', join(repoRoot, 'bench/results'))
    .parse();
  const opts = program.opts<{ quick?: boolean; systems: string; work: string; out: string }>();
  const sizes = opts.quick ? QUICK : FULL;
  const systems = opts.systems.split(',').map((s) => s.trim()) as System[];
  const work = resolve(opts.work);
  await mkdir(work, { recursive: true });
  const endpoint = await startSwift(work);

  log(`preparing data (${sizes.seqBytes / MiB} MiB source, ${sizes.treeFiles} small files)`);
  const source = join(work, 'source.bin');
  await run('dd', ['if=/dev/urandom', `of=${source}`, 'bs=1M', `count=${sizes.seqBytes / MiB}`, 'status=none']);
  const treeDir = join(work, 'tree');
  const tar = join(work, 'tree.tar');
  const expected = await makeTree(treeDir, tar, sizes.treeFiles);

  const figures: Figure[] = [];
  for (const system of systems) {
    try {
      if (system === 'raw') await benchRaw(endpoint, work, sizes, { dir: treeDir, expected }, source, figures);
      else {
        await benchGateway(system, endpoint, work, sizes, { tar, expected }, source, figures);
        if (system === 'swiftfs') await benchGateway(system, endpoint, work, sizes, { tar, expected }, source, figures, 'local');
      }
    } catch (err) {
      log(`${system}: FAILED: ${err instanceof Error ? err.stack : String(err)}`);
    }
  }
  // The local-fsync row is compared with the peers' own randwrite figures (they have no such mode).
  for (const peer of ['rclone', 's3fs'] as const) {
    const f = figures.find((x) => x.system === peer && x.workload === '4K randwrite, fsync every 64');
    if (f) figures.push({ ...f, workload: '4K randwrite, fsync every 64 (local fsync mode)' });
  }

  const info = await machine();
  const title = `swiftfs bench${opts.quick ? ' (quick)' : ''}: ${info.cpu}, ${info.date.slice(0, 10)}`;
  const table = markdownTable(figures);
  console.log(`\n${table}\n`);
  await mkdir(opts.out, { recursive: true });
  const md = [`# ${title}`, '', '## Machine', '', ...Object.entries(info).map(([k, v]) => `- ${k}: ${v}`), '', '## Results', '', table, '', '![chart](latest.svg)', ''].join('\n');
  await writeFile(join(opts.out, 'latest.json'), JSON.stringify(figures, null, 2) + '\n');
  await writeFile(join(opts.out, 'latest.md'), md);
  await writeFile(join(opts.out, 'latest.svg'), svgChart(figures, title));
  await writeFile(join(opts.out, 'machine.json'), JSON.stringify(info, null, 2) + '\n');
  if (!opts.quick) await cp(join(opts.out, 'latest.json'), join(opts.out, `run-${info.date.slice(0, 10)}.json`));
  log(`wrote ${opts.out}/latest.{json,md,svg}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
