/**
 * `swiftfs mount / unmount / status` as a user runs them, over the real Swift: daemonising with a ready
 * handshake, refusing a second mount, status fields, busy refusal and --lazy, the fusermount fallback when the
 * daemon is gone, SIGTERM committing everything in --foreground, --read-only, --uid/--gid/--umask, and the
 * errors a user sees for a bad mount point or a missing volume with --no-create.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { uniqueName } from '../helpers/saio.js';
import { readSwiftEnv } from '../helpers/swift-env.js';
import { bash, cliFixture, cliMain, isMounted, ok, removeCliFixture, skipFuse, skipWithoutSwift, startCliMount, swiftfs, tempDir, waitFor } from '../helpers/mount.js';

describe('swiftfs mount, unmount and status', { skip: skipFuse() || skipWithoutSwift() }, () => {
  const swift = readSwiftEnv('A');
  let mountpoint = '';
  let cacheDir = '';
  let runDir = '';
  let env: NodeJS.ProcessEnv = {};

  before(async () => {
    ({ mountpoint, cacheDir, runDir, env } = await cliFixture('cli', swift!));
  });
  after(async () => removeCliFixture({ mountpoint, cacheDir, runDir, env }));

  test('mount daemonises, status reports it, a second mount is refused, a busy unmount is refused', { timeout: 300_000 }, async () => {
    const volume = `swift://${uniqueName('cli')}`;
    const m = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir, '--uid', '1234', '--gid', '2345', '--umask', '027'], env);
    writeFileSync(join(mountpoint, 'file'), 'hello');
    const st = statSync(join(mountpoint, 'file'));
    assert.equal(st.uid, 1234, 'new files belong to --uid');
    assert.equal(st.gid, 2345, 'new files belong to --gid');
    assert.equal(st.mode & 0o777, 0o640, '--umask 027 is cleared from 0666');
    assert.equal(statSync(mountpoint).uid, 1234, 'the root of a new volume belongs to --uid');

    const status = ok(await swiftfs(['status', '--json'], { env }), 'status');
    const [s] = JSON.parse(status.stdout) as { mountpoint: string; volume: string; state: string; pid: number; volumeStatus: { dirtyBytes: number; health: { state: string } }; fuse: { ops: Record<string, unknown> } }[];
    assert.equal(s!.mountpoint, mountpoint);
    assert.match(s!.volume, /^swift:\/\/default\/cli-/);
    assert.equal(s!.state, 'mounted');
    assert.equal(typeof s!.volumeStatus.dirtyBytes, 'number');
    assert.equal(s!.volumeStatus.health.state, 'ok');
    assert.ok('create' in s!.fuse.ops);
    const text = ok(await swiftfs(['status'], { env }), 'status (text)').stdout;
    assert.match(text, /dirty:/);
    assert.match(text, /uploads:/);
    assert.match(text, /last commit:/);

    const again = await swiftfs(['mount', volume, mountpoint, '--cache-dir', cacheDir], { env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already/);

    // Busy: a process has its working directory in the mount.
    const holder = spawn('sleep', ['30'], { cwd: mountpoint, stdio: 'ignore' });
    try {
      const busy = await m.unmount();
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /busy/);
      assert.ok(await isMounted(mountpoint));
    } finally {
      holder.kill('SIGKILL');
    }
    await new Promise((r) => holder.once('exit', r));
    const done = await m.unmount();
    assert.equal(done.code, 0, done.stderr);
    assert.equal(await isMounted(mountpoint), false);
    assert.equal(JSON.parse(ok(await swiftfs(['status', '--json'], { env })).stdout).length, 0);

    // What was written is in Swift: a new cache directory sees it.
    await rm(cacheDir, { recursive: true, force: true });
    cacheDir = await tempDir('swiftfs-cli-cache');
    const m2 = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir, '--read-only'], env);
    assert.equal(readFileSync(join(mountpoint, 'file'), 'utf8'), 'hello');
    const ro = await bash(`echo x > ${mountpoint}/new`);
    assert.notEqual(ro.code, 0);
    assert.match(ro.stderr, /Read-only file system/);
    assert.equal((await m2.unmount()).code, 0);
  });

  test('--foreground: SIGTERM commits everything, unmounts and exits 0', { timeout: 300_000 }, async () => {
    const volume = `swift://${uniqueName('clifg')}`;
    const child = spawn(process.execPath, [cliMain, 'mount', volume, mountpoint, '--foreground', '--cache-dir', cacheDir, '--commit-interval', '60s'], {
      env: { ...env, UV_THREADPOOL_SIZE: '16' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await waitFor('the foreground mount', () => isMounted(mountpoint), 120_000, 200);
    // Written without fsync, with a 60 s commit interval: only the SIGTERM path commits it in time.
    writeFileSync(join(mountpoint, 'unsynced'), 'committed by SIGTERM');
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr.slice(-2000));
    assert.equal(await isMounted(mountpoint), false);
    await rm(cacheDir, { recursive: true, force: true });
    cacheDir = await tempDir('swiftfs-cli-cache');
    const m = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir], env);
    assert.equal(readFileSync(join(mountpoint, 'unsynced'), 'utf8'), 'committed by SIGTERM');
    assert.equal((await m.unmount()).code, 0);
  });

  test('unmount falls back to fusermount when the daemon is gone', { timeout: 300_000 }, async () => {
    const m = await startCliMount(`swift://${uniqueName('clidead')}`, mountpoint, ['--cache-dir', cacheDir], env);
    const pid = await m.pid();
    assert.ok(pid);
    process.kill(pid!, 'SIGKILL');
    await waitFor('the daemon to die', () => {
      try {
        process.kill(pid!, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000);
    const r = await m.unmount();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no swiftfs daemon/);
    assert.equal(await isMounted(mountpoint), false);
  });

  test('errors a user sees: missing mount point, missing volume with --no-create, nothing mounted', async () => {
    const a = await swiftfs(['mount', 'swift://whatever', join(mountpoint, 'nope', 'deeper'), '--cache-dir', cacheDir], { env });
    assert.equal(a.code, 1);
    assert.match(a.stderr, /does not exist/);
    const b = await swiftfs(['mount', `swift://${uniqueName('missing')}`, mountpoint, '--no-create', '--cache-dir', cacheDir], { env });
    assert.equal(b.code, 1);
    assert.match(b.stderr, /does not exist; not creating it/);
    assert.equal(await isMounted(mountpoint), false);
    const c = await swiftfs(['unmount', mountpoint], { env });
    assert.equal(c.code, 1);
    assert.match(c.stderr, /not mounted/);
  });
});
