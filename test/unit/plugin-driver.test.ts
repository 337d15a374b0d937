/**
 * The volume driver's lifecycle rules with a fake backend and fake mount processes: persistence across plugin
 * restarts (reference counts, re-adoption of live mount processes, remount of dead ones at the same path),
 * Get answering from local state when the store is down, background upload after a slow unmount, refusal of a
 * volume held by another host, a volume created on one host seen by another (global scope), and the state
 * file's atomic replacement.
 */

import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SwiftfsDriver, type DriverConfig } from '../../src/plugin/driver.js';
import { StateFile } from '../../src/plugin/state.js';
import { FakeBackend, FakeRunner, MOUNT_ID_A, MOUNT_ID_B } from './plugin-fakes.js';

let dir: string;
let backend: FakeBackend;
let runner: FakeRunner;
const drivers: SwiftfsDriver[] = [];

function makeDriver(host = 'host-a', extra: Partial<DriverConfig> = {}, r: FakeRunner = runner): SwiftfsDriver {
  const root = join(dir, host);
  const driver = new SwiftfsDriver(backend, r, StateFile.load(join(root, 'state')), {
    hostId: host,
    mountRoot: join(root, 'mnt'),
    cacheRoot: join(root, 'cache'),
    logRoot: join(root, 'log'),
    healthIntervalMs: 0,
    ...extra,
  });
  drivers.push(driver);
  return driver;
}

/** Simulates a plugin crash and restart on the same host: a new driver over the same state directory. */
async function restart(old: SwiftfsDriver, host = 'host-a', extra: Partial<DriverConfig> = {}): Promise<SwiftfsDriver> {
  await old.close(100);
  const driver = makeDriver(host, extra);
  await driver.start();
  await driver.idle();
  return driver;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'swiftfs-plugin-driver-'));
  backend = new FakeBackend();
  runner = new FakeRunner();
});
afterEach(async () => {
  for (const d of drivers.splice(0)) await d.close(100);
  rmSync(dir, { recursive: true, force: true });
});

describe('plugin driver', () => {
  test('reference counts and the mount process survive a plugin restart (re-adopted, not restarted)', async () => {
    let d = makeDriver();
    await d.start();
    await d.create('pg', {});
    const mp = await d.mount('pg', MOUNT_ID_A);
    await d.mount('pg', MOUNT_ID_B);
    d = await restart(d);
    assert.deepEqual(runner.starts, ['pg'], 'no second mount process');
    assert.equal(await d.path('pg'), mp);
    await d.unmount('pg', MOUNT_ID_A);
    assert.equal(runner.alive('pg').length, 1, 'one reference left after the restart');
    await d.unmount('pg', MOUNT_ID_B);
    assert.equal(runner.alive('pg').length, 0);
    assert.equal(await d.path('pg'), '');
  });

  test('a mount process that died while in use is restarted at the same path on plugin start', async () => {
    let d = makeDriver();
    await d.start();
    await d.create('db', {});
    const mp = await d.mount('db', MOUNT_ID_A);
    runner.kill('db');
    d = await restart(d);
    assert.deepEqual(runner.starts, ['db', 'db'], 'remounted');
    const live = runner.alive('db');
    assert.equal(live.length, 1);
    assert.equal(live[0]!.proc.dir, mp, 'at the same path');
    assert.equal(await d.path('db'), mp);
  });

  test('the health check remounts a mount process that died without a plugin restart', async () => {
    const d = makeDriver('host-a', { healthIntervalMs: 20 });
    await d.start();
    await d.create('h', {});
    await d.mount('h', MOUNT_ID_A);
    runner.kill('h');
    const deadline = Date.now() + 3000;
    while (runner.alive('h').length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(runner.alive('h').length, 1);
    assert.equal(runner.starts.length, 2);
  });

  test('a mount process that lost its mount is stopped and replaced at the next Mount', async () => {
    const d = makeDriver();
    await d.start();
    await d.create('lost', {});
    await d.mount('lost', MOUNT_ID_A);
    const [first] = runner.alive('lost');
    runner.unmountBehindBack('lost');
    await d.mount('lost', MOUNT_ID_B);
    assert.equal(first!.alive, false, 'the mountless process was stopped');
    assert.equal(runner.starts.length, 2);
    assert.equal(runner.alive('lost').length, 1);
    assert.equal((await d.get('lost')).Status?.['mounts'], 2, 'both references kept');
  });

  test('an unused mount process found at start is flushed and stopped', async () => {
    let d = makeDriver();
    await d.start();
    await d.create('u', {});
    await d.mount('u', MOUNT_ID_A);
    // Simulate a crash right after the reference was dropped but before the process was stopped.
    const state = JSON.parse(readFileSync(join(dir, 'host-a', 'state', 'state.json'), 'utf8'));
    state.volumes.u.mounts = {};
    await d.close(100);
    writeFileSync(join(dir, 'host-a', 'state', 'state.json'), JSON.stringify(state));
    d = await restart(d);
    assert.equal(runner.alive('u').length, 0);
    assert.deepEqual(runner.stops, ['u']);
  });

  test('Get answers from local state when the store is unreachable, with the problem in Status', async () => {
    let d = makeDriver();
    await d.start();
    await d.create('off', {});
    backend.unreachable = true;
    d = await restart(d);
    const v = await d.get('off');
    assert.equal(v.Name, 'off');
    assert.match(String(v.Status?.['health']), /store unreachable/);
    const list = await d.list();
    assert.deepEqual(list.map((x) => x.Name), ['off']);
    // An unknown volume is still "no such volume"... but we cannot know: an unreachable store is an error.
    await assert.rejects(d.get('other'), /cannot look up volume other/);
    await assert.rejects(d.remove('off'), /not reachable/);
    backend.unreachable = false;
  });

  test('while the store does not answer, Get and List answer at once from local state', async () => {
    const d = makeDriver('host-a', { storeCheckCacheMs: 0, storeCheckMs: 500 });
    await d.start();
    await d.create('x1', {});
    await d.create('x2', {});
    backend.delayMs = 2_000; // a store that hangs...
    const t0 = Date.now();
    const v1 = await d.get('x1'); // ...costs one bounded wait
    assert.match(String(v1.Status?.['health']), /store unreachable: reading volume x1 did not finish within/);
    const t1 = Date.now();
    assert.ok(t1 - t0 < 1_500);
    const v2 = await d.get('x2'); // then nothing while it stays down
    assert.match(String(v2.Status?.['health']), /store unreachable/);
    assert.ok(Date.now() - t1 < 200, 'answered without waiting for the store again');
    backend.delayMs = 0;
  });

  test('a volume created on host A is seen, mounted and removed from host B (global scope)', async () => {
    const a = makeDriver('host-a');
    const runnerB = new FakeRunner();
    const b = makeDriver('host-b', {}, runnerB);
    await a.start();
    await b.start();
    await a.create('shared', { fsync: 'local' });
    assert.deepEqual((await b.list()).map((v) => v.Name), ['shared']);
    const vb = await b.get('shared');
    assert.deepEqual(vb.Status?.['options'], { fsync: 'local' });
    assert.equal(vb.Status?.['uuid'], backend.containers.get('shared')?.uuid);
    // A holds it: B must refuse, naming A.
    await a.mount('shared', MOUNT_ID_A);
    backend.setHolder('shared', { host: 'host-a', pid: 4242, since: '2025-01-01T00:00:00Z', live: true });
    await assert.rejects(b.mount('shared', MOUNT_ID_B), /in use by host host-a \(pid 4242\)/);
    assert.equal(runnerB.starts.length, 0);
    await assert.rejects(b.remove('shared'), /in use by host host-a/);
    await a.unmount('shared', MOUNT_ID_A);
    backend.setHolder('shared', undefined);
    assert.equal(await b.mount('shared', MOUNT_ID_B), join(dir, 'host-b', 'mnt', 'shared'));
    await b.unmount('shared', MOUNT_ID_B);
    await b.remove('shared');
    await b.idle();
    assert.equal(backend.containers.size, 0);
  });

  test('a volume deleted from the store by another host disappears from Get (after the grace period)', async () => {
    const d = makeDriver('host-a', { newVolumeGraceMs: 0, storeCheckCacheMs: 0 });
    await d.start();
    await d.create('gone', {});
    backend.containers.delete('gone');
    await assert.rejects(d.get('gone'), /no such volume: gone/);
    assert.deepEqual(await d.list(), []);
  });

  test('a volume another host is deleting cannot be mounted and disappears from Get', async () => {
    const d = makeDriver('host-a', { newVolumeGraceMs: 0, storeCheckCacheMs: 0 });
    await d.start();
    await d.create('dying', {});
    backend.containers.get('dying')!.deleting = true;
    await assert.rejects(d.mount('dying', MOUNT_ID_A), /being deleted/);
    await assert.rejects(d.get('dying'), /no such volume: dying .*being deleted/);
  });

  test('a young volume is not dropped when its container seems missing', async () => {
    const d = makeDriver('host-a', { storeCheckCacheMs: 0 });
    await d.start();
    await d.create('young', {});
    backend.containers.delete('young');
    const v = await d.get('young');
    assert.equal(v.Name, 'young');
  });

  test('an unmount that cannot flush in time answers, keeps uploading, and a new Mount waits for it', async () => {
    const d = makeDriver('host-a', { callBudgetMs: 3_000 });
    await d.start();
    await d.create('slow', {});
    await d.mount('slow', MOUNT_ID_A);
    runner.stopDelayMs = 2_000; // longer than the unmount's share of the call budget (3 s - 1.5 s)
    const t0 = Date.now();
    await d.unmount('slow', MOUNT_ID_A);
    assert.ok(Date.now() - t0 < 1_900, 'Unmount answered within its budget');
    const during = await d.get('slow');
    assert.equal(during.Status?.['uploading'], true);
    assert.equal(runner.alive('slow').length, 1, 'the old process is still uploading');
    runner.stopDelayMs = 0;
    await d.mount('slow', MOUNT_ID_B); // waits for the drain, then mounts anew
    assert.equal(runner.alive('slow').length, 1);
    assert.equal(runner.starts.length, 2);
    const after = await d.get('slow');
    assert.equal(after.Status?.['uploading'], undefined);
  });

  test('Create is bounded by the call budget when the store hangs', async () => {
    const d = makeDriver('host-a', { callBudgetMs: 300 });
    await d.start();
    backend.delayMs = 5_000;
    const t0 = Date.now();
    await assert.rejects(d.create('hang', {}), /did not finish within/);
    assert.ok(Date.now() - t0 < 2_000);
    backend.delayMs = 0;
    await assert.rejects(d.get('hang'), /no such volume/);
  });

  test('a mount that cannot start within the call budget fails cleanly, with no reference kept', async () => {
    const d = makeDriver('host-a', { callBudgetMs: 1_500 });
    await d.start();
    await d.create('late', {});
    runner.startDelayMs = 5_000;
    const t0 = Date.now();
    await assert.rejects(d.mount('late', MOUNT_ID_A), /cannot mount volume late: mounting volume late did not finish within/);
    assert.ok(Date.now() - t0 < 1_600, 'answered within the budget');
    runner.startDelayMs = 0;
    assert.equal(runner.alive('late').length, 0);
    assert.equal(await d.path('late'), '');
    const v = await d.get('late');
    assert.equal(v.Status?.['mounts'], 0);
  });

  test('stopAllMounts flushes every mount process and keeps the references for the next start', async () => {
    let d = makeDriver();
    await d.start();
    await d.create('s1', {});
    await d.create('s2', {});
    await d.mount('s1', MOUNT_ID_A);
    await d.mount('s2', MOUNT_ID_B);
    await d.stopAllMounts(1_000);
    assert.deepEqual([...runner.stops].sort(), ['s1', 's2']);
    assert.equal(runner.alive('s1').length + runner.alive('s2').length, 0);
    d = await restart(d);
    assert.equal(runner.alive('s1').length, 1, 'remounted for the container that still uses it');
    assert.equal(runner.alive('s2').length, 1);
  });

  test('concurrent Mounts of one volume start one process', async () => {
    const d = makeDriver();
    await d.start();
    await d.create('c', {});
    const ids = Array.from({ length: 8 }, (_, i) => String(i).repeat(64));
    const mps = await Promise.all(ids.map((id) => d.mount('c', id)));
    assert.equal(new Set(mps).size, 1);
    assert.equal(runner.starts.length, 1);
    await Promise.all(ids.map((id) => d.unmount('c', id)));
    assert.equal(runner.alive('c').length, 0);
  });

  test('the state file is replaced atomically and holds no temporary files afterwards', async () => {
    const d = makeDriver();
    await d.start();
    await Promise.all(Array.from({ length: 20 }, (_, i) => d.create(`v${i}`, {})));
    const files = readdirSync(join(dir, 'host-a', 'state'));
    assert.deepEqual(files, ['state.json']);
    const state = JSON.parse(readFileSync(join(dir, 'host-a', 'state', 'state.json'), 'utf8'));
    assert.equal(Object.keys(state.volumes).length, 20);
    assert.equal(state.volumes.v3.location.container, 'v3');
  });

  test('a corrupt state file is reported, not silently discarded', () => {
    const stateDir = join(dir, 'corrupt');
    StateFile.load(stateDir);
    writeFileSync(join(stateDir, 'state.json'), '{"version":1,"volu');
    assert.throws(() => StateFile.load(stateDir), /not valid JSON/);
  });
});
