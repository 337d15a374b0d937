/**
 * ProcessMountRunner with a stand-in mount command (a shell script that mounts a tmpfs at DIR and, on SIGTERM,
 * "flushes" (sleeps), unmounts and exits): the process is detached in its own session, readiness is seen in
 * mountinfo, a failing mount's own error message comes back, a deadline kills it, stop flushes or goes
 * pending past its budget, re-adoption by pid + start time, and the arguments the real command gets (options
 * as flags, never credentials). Needs root (mount); skipped otherwise.
 */

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessMountRunner, explainExit, mountArgs, statsFromVolumeStatus, volumeUrl } from '../../src/plugin/mount-process.js';
import { mountAt, processAlive } from '../../src/plugin/mount-runner.js';
import type { VolumeRecord } from '../../src/plugin/state.js';

const STAND_IN = `#!/bin/sh
# stand-in for "swiftfs mount URL DIR --foreground ...": $1=mount $2=URL $3=DIR
dir="$3"
case "$2" in *fail*) echo '{"level":50,"msg":"cannot mount","err":{"message":"volume in use by host other (pid 9)"}}'; exit 3;; esac
flush=0
case "$2" in *slow*) flush=3;; esac
case "$2" in *hang*) sleep 60; exit 0;; esac
trap 'sleep $flush; umount "$dir"; exit 0' TERM
mount -t tmpfs -o size=1m standin "$dir" || exit 4
echo "mounted $dir args: $*"
while :; do sleep 1 & wait $!; done
`;

function record(name: string, container = name, options: Record<string, string> = {}): VolumeRecord {
  return {
    name,
    uuid: `uuid-${name}`,
    createdAt: new Date().toISOString(),
    location: { backend: 'swift', store: 'default', container },
    options,
    mountpoint: '',
    mounts: {},
    recordedAt: new Date().toISOString(),
  };
}

const isRoot = process.getuid?.() === 0;

describe('ProcessMountRunner', { skip: isRoot ? false : 'needs root to mount' }, () => {
  let dir: string;
  let runner: ProcessMountRunner;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'swiftfs-mount-process-'));
    const script = join(dir, 'standin.sh');
    writeFileSync(script, STAND_IN);
    chmodSync(script, 0o755);
    runner = new ProcessMountRunner({ command: [script], anyFsType: true, pollMs: 20, readiness: 'mountinfo' });
  });
  after(() => {
    for (const sub of ['ok', 'slow', 'hang']) {
      try {
        execFileSync('umount', ['-l', join(dir, sub)], { stdio: 'ignore' });
      } catch {
        // not mounted
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  function request(name: string, options: Record<string, string> = {}) {
    const mp = join(dir, name);
    mkdirSync(mp, { recursive: true });
    return { record: record(name, name, options), dir: mp, cacheDir: join(dir, 'cache', name), logFile: join(dir, `${name}.log`) };
  }

  test('starts a detached mount process, sees the mount, stops it cleanly', async () => {
    const req = request('ok', { fsync: 'local', 'read-only': 'true' });
    const proc = await runner.start(req, new AbortController().signal);
    assert.equal(mountAt(req.dir)?.fsType, 'tmpfs');
    assert.ok(runner.isAlive(proc));
    assert.equal(await runner.isMounted(req.dir), true);
    // Its own session: a signal to the plugin's process group does not reach it.
    const stat = readFileSync(`/proc/${proc.pid}/stat`, 'utf8');
    const sid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
    assert.equal(sid, proc.pid, 'session leader of its own session');
    const log = readFileSync(req.logFile, 'utf8');
    assert.match(log, /--foreground --cache-dir .*--no-create --allow-other .*--fsync local --read-only/);
    // Re-adoption: another runner instance (a restarted plugin) recognises the process.
    const other = new ProcessMountRunner({ command: ['/bin/false'], anyFsType: true });
    assert.ok(other.isAlive(proc));
    assert.equal(other.isAlive({ ...proc, startTime: '1' }), false, 'a reused pid is not the same process');
    assert.equal(await runner.stop(proc, 5000), 'done');
    assert.equal(mountAt(req.dir), undefined);
    assert.equal(processAlive(proc), false);
  });

  test('a mount process that fails explains why', async () => {
    const req = request('fail');
    await assert.rejects(runner.start(req, new AbortController().signal), /cannot mount: volume in use by host other \(pid 9\)/);
  });

  test('a mount that never appears is killed at the deadline', async () => {
    const req = request('hang');
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('mount deadline')), 300);
    const t0 = Date.now();
    await assert.rejects(runner.start(req, controller.signal), /mount deadline/);
    assert.ok(Date.now() - t0 < 5000);
    const left = execFileSync('ps', ['-eo', 'args']).toString();
    assert.ok(!left.includes(`${req.dir} --foreground`), 'no mount process left behind');
  });

  test('a slow flush goes past the stop budget as pending, then finishes', async () => {
    const req = request('slow');
    const proc = await runner.start(req, new AbortController().signal);
    assert.equal(await runner.stop(proc, 500), 'pending');
    assert.ok(runner.isAlive(proc), 'still flushing');
    await runner.waitExit(proc);
    assert.equal(runner.isAlive(proc), false);
    assert.equal(mountAt(req.dir), undefined);
  });

  test('refuses to mount over an existing mount point', async () => {
    const req = request('ok');
    const proc = await runner.start(req, new AbortController().signal);
    await assert.rejects(runner.start(req, new AbortController().signal), /already a mount point/);
    assert.equal(await runner.stop(proc, 5000), 'done');
  });
});

const IPC_STAND_IN = `
import { execFileSync } from 'node:child_process';
const [url, dir] = process.argv.slice(3);
if (url.includes('fail')) {
  process.send({ type: 'error', message: 'volume in use by host z (pid 1)' });
  setInterval(() => {}, 1000); // a daemon that reported an error and lingers: the runner must kill it
} else {
  process.on('SIGTERM', () => { execFileSync('umount', [dir]); process.exit(0); });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'standin', dir]);
  setTimeout(() => { process.send({ type: 'ready', pid: process.pid }); process.disconnect(); }, 400);
  setInterval(() => {}, 1000);
}
`;

describe('ProcessMountRunner with IPC readiness (as the real mount command)', { skip: isRoot ? false : 'needs root to mount' }, () => {
  let dir: string;
  let runner: ProcessMountRunner;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'swiftfs-mount-ipc-'));
    writeFileSync(join(dir, 'standin.mjs'), IPC_STAND_IN);
    runner = new ProcessMountRunner({ command: [process.execPath, join(dir, 'standin.mjs')], anyFsType: true, pollMs: 20 });
  });
  after(() => {
    try {
      execFileSync('umount', ['-l', join(dir, 'ipc')], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('waits for the ready message, not just for the mount to appear', async () => {
    const mp = join(dir, 'ipc');
    mkdirSync(mp);
    const t0 = Date.now();
    const proc = await runner.start({ record: record('ipc'), dir: mp, cacheDir: join(dir, 'c'), logFile: join(dir, 'ipc.log') }, new AbortController().signal);
    assert.ok(Date.now() - t0 >= 350, 'resolved only after the ready message');
    assert.ok(runner.isAlive(proc));
    assert.equal(await runner.stop(proc, 5000), 'done');
    assert.equal(mountAt(mp), undefined);
  });

  test('an error message fails the start, and the process is not left running', async () => {
    const mp = join(dir, 'fail');
    mkdirSync(mp);
    await assert.rejects(
      runner.start({ record: record('fail'), dir: mp, cacheDir: join(dir, 'c'), logFile: join(dir, 'fail.log') }, new AbortController().signal),
      /volume in use by host z \(pid 1\)/,
    );
    const left = execFileSync('ps', ['-eo', 'args']).toString();
    assert.ok(!left.includes(`standin.mjs mount swift://default/fail`), 'no process left');
  });
});

describe('mount command arguments', () => {
  test('volume URL names the store and container, percent-encoded', () => {
    const r = record('v', 'my container');
    assert.equal(volumeUrl(r), 'swift://default/my%20container');
    assert.equal(volumeUrl({ ...r, location: { backend: 's3', store: 'aws', container: 'bkt' } }), 's3://aws/bkt');
  });

  test('options become flags; creation-time options and unknown ones are not passed', () => {
    const args = mountArgs({ record: record('v', 'v', { 'cache-size': '1G', 'block-size': '1M', 'close-sync': 'false', store: 'x', 'read-only': '' }), dir: '/m/v', cacheDir: '/c/u' });
    assert.deepEqual(args, ['mount', 'swift://default/v', '/m/v', '--foreground', '--cache-dir', '/c/u', '--no-create', '--allow-other', '--cache-size', '1G', '--no-close-sync', '--read-only']);
    assert.deepEqual(mountArgs({ record: record('v'), dir: '/m/v', cacheDir: '/c' }, ['--config', '/f'], true).slice(0, 8), ['mount', 'swift://default/v', '/m/v', '--foreground', '--notify-ipc', '--cache-dir', '/c', '--no-create']);
  });

  test('mount status from the control socket becomes Status fields', () => {
    assert.deepEqual(statsFromVolumeStatus({ dirtyBytes: 10, uploadsQueued: 2, cache: { diskBytes: 100, walBytes: 20 }, health: { state: 'ok' } }), {
      dirtyBytes: 10,
      cacheBytes: 120,
      health: 'ok',
      uploadsQueued: 2,
    });
    const failing = statsFromVolumeStatus({ dirtyBytes: 5, health: { state: 'retrying', lastError: 'Unavailable: connection refused', failingSince: 0 } });
    assert.equal(failing.health, 'retrying: Unavailable: connection refused');
    assert.equal(statsFromVolumeStatus({ dirtyBytes: 0, readOnlyReason: 'fenced by host b' }).health, 'read-only: fenced by host b');
  });

  test('explainExit picks the last error line of a pino log, else the last line', () => {
    assert.equal(explainExit('{"level":30,"msg":"starting"}\n{"level":50,"msg":"mount failed","err":{"message":"EBUSY"}}\n'), 'mount failed: EBUSY');
    assert.equal(explainExit('starting\nError: no store is configured\n'), 'Error: no store is configured');
    assert.equal(explainExit(''), undefined);
    assert.equal(
      explainExit('file:///x.js:1\n    at foo (x.js:1:1)\nTypeError: cannot read x\n    at bar (y.js:2:2)\n\nNode.js v20.20.2\n'),
      'TypeError: cannot read x',
    );
  });
});
