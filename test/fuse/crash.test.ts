/**
 * kill -9 of the mount daemon during a write load with fsyncs (fsync remote, the default), over the real Swift.
 *
 * The load (a python process on the mount) loops: write a file (up to 64 KiB) to NAME.tmp, fsync it, rename
 * it to NAME, fsync the directory, append a line to a log and fsync it, commit a row to SQLite (WAL mode,
 * synchronous=FULL); then it prints the loop number: that number is acknowledged. A dd without fsync runs
 * alongside so that unacknowledged data is in flight too. After a few seconds the daemon gets SIGKILL.
 *
 *  1. A new mount on the same cache directory: no stale mount is left (the dead FUSE mount is detached), every
 *     acknowledged file has its exact content, every acknowledged log line is there, SQLite's integrity_check
 *     passes and holds every acknowledged row.
 *  2. The same again, but the cache directory is deleted before mounting (a new host): everything that was
 *     fsync'd is in Swift, so the same checks pass.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { uniqueName } from '../helpers/saio.js';
import { readSwiftEnv } from '../helpers/swift-env.js';
import { forceUnmount, isMounted, probeDead, sh, skipFuse, skipWithoutSwift, startForegroundMount, swiftfsEnv, tempDir, waitFor } from '../helpers/mount.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const WRITER = `
import os, sys, hashlib, sqlite3
d = sys.argv[1]; i = int(sys.argv[2])
os.makedirs(d, exist_ok=True)
db = sqlite3.connect(os.path.join(d, 'db.sqlite'), isolation_level=None)
db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA synchronous=FULL')
db.execute('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)')
log = os.open(os.path.join(d, 'log.txt'), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
while True:
    data = hashlib.sha256(str(i).encode()).digest() * (1 + (i * 37) % 2000)
    p = os.path.join(d, 'f%d' % i)
    fd = os.open(p + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data); os.fsync(fd); os.close(fd)
    os.rename(p + '.tmp', p)
    dfd = os.open(d, os.O_RDONLY); os.fsync(dfd); os.close(dfd)
    os.write(log, b'%d\\n' % i); os.fsync(log)
    db.execute('BEGIN'); db.execute('INSERT INTO t(id, v) VALUES (?, ?)', (i, data[:100])); db.execute('COMMIT')
    print(i, flush=True)
    i += 1
`;

function expectedContent(i: number): Buffer {
  const unit = createHash('sha256').update(String(i)).digest();
  return Buffer.concat(Array.from({ length: 1 + ((i * 37) % 2000) }, () => unit));
}

interface Load {
  writer: ChildProcess;
  dd: ChildProcess;
  /** The last loop number the writer printed (acknowledged). */
  acked(): number;
}

function startLoad(dir: string, from: number): Load {
  let last = from - 1;
  const writer = spawn(PYTHON, ['-c', WRITER, dir, String(from)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  writer.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) if (/^\d+$/.test(l)) last = Number(l);
  });
  writer.stderr!.resume();
  const dd = spawn('dd', ['if=/dev/urandom', `of=${join(dir, 'unsynced.bin')}`, 'bs=1M', 'count=400'], { stdio: 'ignore' });
  return { writer, dd, acked: () => last };
}

async function stopLoad(load: Load): Promise<void> {
  for (const p of [load.writer, load.dd]) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    }
  }
}

/** Every acknowledged loop 0..acked left its file, log line and row. */
async function verify(dir: string, acked: number, what: string): Promise<void> {
  assert.ok(acked >= 5, `the load acknowledged ${acked + 1} loops before the kill (${what}); too few to mean anything`);
  for (let i = 0; i <= acked; i++) {
    const p = join(dir, `f${i}`);
    assert.ok(existsSync(p), `f${i} (acknowledged) exists (${what})`);
    assert.ok(readFileSync(p).equals(expectedContent(i)), `f${i} has its content (${what})`);
  }
  const logged = new Set(readFileSync(join(dir, 'log.txt'), 'utf8').split('\n').filter((l) => l !== '').map(Number));
  for (let i = 0; i <= acked; i++) assert.ok(logged.has(i), `log line ${i} (${what})`);
  const r = await sh('sqlite3', [join(dir, 'db.sqlite'), 'PRAGMA integrity_check; SELECT count(*) FROM t WHERE id <= ' + acked + ';'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  const [check, count] = r.stdout.trim().split('\n');
  assert.equal(check, 'ok', `SQLite integrity_check (${what})`);
  assert.equal(Number(count), acked + 1, `SQLite holds every acknowledged row (${what})`);
}

describe('kill -9 of the mount daemon during a write load with fsyncs', { skip: skipFuse() || skipWithoutSwift() }, () => {
  const swift = readSwiftEnv('A');
  const volume = `swift://${uniqueName('crash')}`;
  let mountpoint = '';
  let cacheDir = '';
  let runDir = '';
  let env: NodeJS.ProcessEnv = {};
  let daemon: ChildProcess | undefined;

  const mount = async (): Promise<void> => {
    daemon = await startForegroundMount(volume, mountpoint, ['--cache-dir', cacheDir, '--log-file', join(runDir, 'daemon.log')], env);
  };
  const kill9 = async (): Promise<void> => {
    const d = daemon!;
    d.kill('SIGKILL');
    await new Promise((r) => (d.exitCode !== null || d.signalCode !== null ? r(undefined) : d.once('exit', r)));
    daemon = undefined;
  };

  before(async () => {
    mountpoint = await tempDir('swiftfs-crash-mnt');
    cacheDir = await tempDir('swiftfs-crash-cache');
    runDir = await tempDir('swiftfs-crash-run');
    // UV_THREADPOOL_SIZE set: the process we start is the daemon itself (no wrapper), so SIGKILL hits it.
    env = swiftfsEnv(swift!, runDir, { UV_THREADPOOL_SIZE: '64' });
    await mount();
  });

  after(async () => {
    if (daemon) {
      daemon.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((r) => daemon!.once('exit', r)), new Promise((r) => (timer = setTimeout(r, 60_000)))]);
      clearTimeout(timer);
    }
    await forceUnmount(mountpoint);
    for (const d of [mountpoint, cacheDir, runDir]) await rm(d, { recursive: true, force: true });
  });

  test('same cache directory: no stale mount, nothing fsync\'d lost, SQLite intact', { timeout: 300_000 }, async () => {
    const dir = join(mountpoint, 'round1');
    const load = startLoad(dir, 0);
    await waitFor('the load to acknowledge 20 loops', () => load.acked() >= 20, 120_000, 100);
    await kill9();
    const acked = load.acked();
    await stopLoad(load);
    process.stderr.write(`# round 1: ${acked + 1} loops acknowledged before kill -9\n`);
    assert.ok(await isMounted(mountpoint), 'the dead mount is still listed');
    assert.equal(await probeDead(mountpoint), true, 'the dead mount answers ENOTCONN');

    await mount(); // cleans the stale mount up by itself
    await verify(dir, acked, 'same cache dir');
    // The volume is usable: write, fsync, read back.
    const r = await sh('bash', ['-c', `echo after > ${join(dir, 'after')} && sync ${join(dir, 'after')} && cat ${join(dir, 'after')}`]);
    assert.equal(r.stdout.trim(), 'after');
  });

  test('cache directory deleted (a new host): everything fsync\'d comes back from Swift', { timeout: 300_000 }, async () => {
    const dir = join(mountpoint, 'round2');
    const load = startLoad(dir, 0);
    await waitFor('the load to acknowledge 20 loops', () => load.acked() >= 20, 120_000, 100);
    await kill9();
    const acked = load.acked();
    await stopLoad(load);
    process.stderr.write(`# round 2: ${acked + 1} loops acknowledged before kill -9\n`);

    await rm(cacheDir, { recursive: true, force: true });
    cacheDir = await tempDir('swiftfs-crash-cache');
    await mount();
    await verify(dir, acked, 'new cache dir');
    await verify(join(mountpoint, 'round1'), 20, 'round 1 data, read back from Swift');
  });
});
