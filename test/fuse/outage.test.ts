/**
 * The Swift proxy stops for 60 s while the mount is in use (test/helpers/saio.ts stopProxy/startProxy).
 *
 * Documented behaviour (README "Semantics", native-notes/fuse-native.md):
 *  - metadata (ls, stat, find, df, mkdir, rename, unlink) is served from memory: it works, fast;
 *  - reads of cached data work; a read of data that is only in the store fails with an error (EIO) once the
 *    store's retries are spent, well within fuse-native's 120 s read bound: it never hangs the shell;
 *  - writes and close go to the local write-ahead log: they work (up to dirty-limit; beyond it writers wait);
 *  - fsync (mode remote) waits for the store: it returns once the proxy is back, with the data committed;
 *  - `swiftfs status` answers throughout and reports the backend as failing;
 *  - when the proxy is back, everything recovers by itself: pending commits go through, uncached reads work.
 *
 * Every command during the outage runs with a deadline; a command that outlives it fails the test.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startProxy, stopProxy, uniqueName } from '../helpers/saio.js';
import { readSwiftEnv } from '../helpers/swift-env.js';
import { bash, forceUnmount, ok, skipFuse, skipWithoutSwift, startCliMount, swiftfs, swiftfsEnv, tempDir, type CliMount, type ShResult } from '../helpers/mount.js';

const OUTAGE_MS = 60_000;
/** No metadata or cached operation may take longer than this during the outage. */
const QUICK_MS = 5_000;

function skipWithoutSaioDir(): string | false {
  if (process.env['SWIFTFS_TEST_SAIO_DIR']) return false;
  const why = 'needs SWIFTFS_TEST_SAIO_DIR (the test Swift\'s directory, to stop and start its proxy)';
  if (process.env.CI === 'true') throw new Error(`CI=true but ${why}`);
  return why;
}

describe('a 60 s outage of the Swift proxy while the mount is in use', { skip: skipFuse() || skipWithoutSwift() || skipWithoutSaioDir() }, () => {
  const swift = readSwiftEnv('A');
  const saioDir = process.env['SWIFTFS_TEST_SAIO_DIR'] ?? '';
  const volume = `swift://${uniqueName('outage')}`;
  let mountpoint = '';
  let cacheDir = '';
  let runDir = '';
  let env: NodeJS.ProcessEnv = {};
  let mount: CliMount | undefined;
  let proxyDown = false;
  const cached = randomBytes(3 * 1024 * 1024);
  const uncached = randomBytes(2 * 1024 * 1024);

  before(async () => {
    mountpoint = await tempDir('swiftfs-outage-mnt');
    cacheDir = await tempDir('swiftfs-outage-cache');
    runDir = await tempDir('swiftfs-outage-run');
    env = swiftfsEnv(swift!, runDir);
    // A file that will only be in Swift: written by a first mount whose cache is then thrown away.
    mount = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir], env);
    writeFileSync(join(mountpoint, 'uncached.bin'), uncached);
    ok(await mount.unmount(), 'first unmount');
    await rm(cacheDir, { recursive: true, force: true });
    cacheDir = await tempDir('swiftfs-outage-cache');
    mount = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir], env);
    // A tree and a file that are in the cache (written here, committed, read back once).
    await mkdir(join(mountpoint, 'tree'));
    for (let i = 0; i < 200; i++) writeFileSync(join(mountpoint, 'tree', `f${i}`), `file ${i}\n`);
    writeFileSync(join(mountpoint, 'cached.bin'), cached);
    ok(await bash(`sync ${mountpoint}/cached.bin && cat ${mountpoint}/cached.bin > /dev/null`), 'commit and read back');
  });

  after(async () => {
    if (proxyDown) await startProxy(saioDir).catch(() => undefined);
    if (mount) await mount.unmount().catch(() => undefined);
    await forceUnmount(mountpoint);
    for (const d of [mountpoint, cacheDir, runDir]) await rm(d, { recursive: true, force: true });
  });

  test('metadata and cached reads stay fast, writes are taken, fsync waits, uncached reads fail cleanly; all recovers', { timeout: 600_000 }, async () => {
    await stopProxy(saioDir);
    proxyDown = true;
    const downAt = Date.now();

    // fsync (remote) of new data: must wait for the store, not fail.
    const fsyncProc = spawn('bash', ['-c', `head -c 1048576 /dev/urandom > ${mountpoint}/during.bin && sync ${mountpoint}/during.bin && echo synced`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let fsyncOut = '';
    fsyncProc.stdout!.on('data', (c: Buffer) => (fsyncOut += c.toString()));
    const fsyncDone = new Promise<number | null>((r) => fsyncProc.once('exit', (code) => r(code)));
    let fsyncFinishedAt = 0;
    void fsyncDone.then(() => (fsyncFinishedAt = Date.now()));

    // An uncached read: an error within a bound, never a hang.
    const uncachedRead = bash(`cat ${mountpoint}/uncached.bin > /dev/null`, { timeoutMs: 180_000 });

    const quick = async (what: string, script: string): Promise<ShResult> => {
      const r = await bash(script, { timeoutMs: QUICK_MS * 4 });
      assert.equal(r.code, 0, `${what} failed during the outage: ${r.stderr}`);
      assert.ok(r.ms < QUICK_MS, `${what} took ${r.ms} ms during the outage`);
      return r;
    };
    let rounds = 0;
    while (Date.now() - downAt < OUTAGE_MS) {
      rounds++;
      await quick('ls -la', `ls -la ${mountpoint} ${mountpoint}/tree > /dev/null`);
      await quick('stat + find', `stat ${mountpoint}/cached.bin > /dev/null && test "$(find ${mountpoint}/tree -type f | wc -l)" -ge 200`);
      const c = await quick('cat cached', `cat ${mountpoint}/tree/f${rounds % 200}`);
      assert.equal(c.stdout, `file ${rounds % 200}\n`);
      await quick('cmp cached.bin', `head -c ${cached.length} ${mountpoint}/cached.bin | md5sum`);
      await quick('df', `df ${mountpoint} > /dev/null`);
      await quick('write without fsync', `echo round ${rounds} > ${mountpoint}/tree/w${rounds} && mkdir -p ${mountpoint}/dirs/d${rounds} && mv ${mountpoint}/tree/w${rounds} ${mountpoint}/dirs/d${rounds}/moved`);
      const st = await swiftfs(['status', '--json'], { env, timeoutMs: QUICK_MS * 4 });
      assert.equal(st.code, 0, `status: ${st.stderr}`);
      if (rounds === 3) {
        const health = (JSON.parse(st.stdout) as { volumeStatus: { health: { state: string } } }[])[0]?.volumeStatus.health.state;
        process.stderr.write(`# backend health during the outage: ${health}\n`);
      }
      assert.equal(fsyncFinishedAt, 0, 'fsync (remote) returned while the store was unreachable');
      await new Promise((r) => setTimeout(r, 2000));
    }
    const cmp = readFileSync(join(mountpoint, 'cached.bin'));
    assert.ok(cmp.equals(cached), 'cached.bin read in full during the outage');

    const u = await uncachedRead;
    process.stderr.write(`# uncached read during the outage: exit ${u.code} after ${u.ms} ms (${u.stderr.trim()})\n`);
    assert.ok(u.ms < 130_000, 'an uncached read answers within fuse-native\'s read bound');

    await startProxy(saioDir);
    proxyDown = false;
    const upAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([fsyncDone, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 180_000)))]);
    clearTimeout(timer);
    assert.equal(code, 0, `the waiting fsync completes once Swift is back (${fsyncOut})`);
    process.stderr.write(`# fsync waited ${Math.round((fsyncFinishedAt - downAt) / 1000)} s (returned ${Math.round((fsyncFinishedAt - upAt) / 1000)} s after the proxy was back)\n`);
    assert.match(fsyncOut, /synced/);

    // Everything works again: an uncached read, a new write with fsync, a clean unmount that commits all.
    ok(await bash(`cmp ${mountpoint}/uncached.bin - `, { input: uncached, timeoutMs: 120_000 }), 'uncached read after the outage');
    ok(await bash(`echo after > ${mountpoint}/after && sync ${mountpoint}/after`, { timeoutMs: 120_000 }), 'write + fsync after');
    const un = await mount!.unmount();
    assert.equal(un.code, 0, un.stderr);
    mount = undefined;
    // All the outage's writes are in Swift: a fresh cache sees them.
    await rm(cacheDir, { recursive: true, force: true });
    cacheDir = await tempDir('swiftfs-outage-cache');
    mount = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir], env);
    const moved = ok(await bash(`cat ${mountpoint}/dirs/d1/moved ${mountpoint}/dirs/d${rounds}/moved && ls ${mountpoint}/during.bin`)).stdout;
    assert.equal(moved.split('\n')[0], 'round 1');
  });
});
