/**
 * The managed (v2) swiftfs plugin: built offline by plugin/build.sh, created, configured (`docker plugin set`
 * credentials and host directories) and enabled on a real Docker engine, then used by containers: the data a
 * container writes is in Swift when `docker run` returns, and a crash of the plugin server inside the plugin
 * (the supervisor restarts it; the mount process lives on) does not disturb a running container.
 */

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isCi, readSwiftEnv } from '../helpers/swift-env.js';
import { DockerEngine, TEST_IMAGE, dockerUnavailable, mountCommandBuilt, readVolumeFiles, repoRoot, run, testSwiftStore, uniquePluginName, uniqueVolume } from '../helpers/docker.js';
import type { ObjectStore } from '../../src/store/object-store.js';

const swift = readSwiftEnv('A');
const skipReason = swift === undefined ? 'no test Swift (SWIFTFS_TEST_ST_AUTH unset; run through scripts/run-tests.mjs)' : dockerUnavailable();

/** Host pids of the plugin server processes (not the supervisor, not tini) of a managed swiftfs plugin. */
function pluginServerPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv[1] === '/app/dist/src/cli/main.js' && argv[2] === 'plugin' && !argv.includes('--supervise')) pids.push(Number(entry));
  }
  return pids;
}

describe('swiftfs managed plugin', { skip: !isCi() && skipReason ? skipReason : false }, () => {
  let engine: DockerEngine;
  let store: ObjectStore;
  let root: string;
  let mountBuilt = false;
  const name = uniquePluginName('sfm');

  before(async () => {
    if (skipReason !== undefined) throw new Error(`Docker tests cannot run: ${skipReason}`);
    mountBuilt = await mountCommandBuilt();
    root = mkdtempSync('/var/tmp/swiftfs-managed-');
    store = testSwiftStore(swift!);
    engine = await DockerEngine.start();
    const built = await run(
      'bash',
      [
        join(repoRoot, 'plugin', 'build.sh'),
        '--name', name,
        '--no-build',
        '--set', `ST_AUTH=${swift!.authUrl}`,
        '--set', `ST_USER=${swift!.user}`,
        '--set', `ST_KEY=${swift!.key}`,
        '--set', `state.source=${join(root, 'state')}`,
        '--set', `cache.source=${join(root, 'cache')}`,
        '--set', 'SWIFTFS_LOG_LEVEL=debug',
        '--enable',
      ],
      { timeoutMs: 400_000, env: engine.env },
    );
    if (built.code !== 0) throw new Error(`plugin/build.sh failed:\n${built.stdout}${built.stderr}`);
  });

  after(async () => {
    if (engine !== undefined) {
      const ids = (await engine.docker(['ps', '-aq'])).stdout.split('\n').filter((x) => x !== '');
      if (ids.length > 0) await engine.docker(['rm', '-f', ...ids], 60_000);
      await engine.docker(['plugin', 'disable', '-f', name], 60_000);
      await engine.docker(['plugin', 'rm', '-f', name], 60_000);
      await engine.destroy();
    }
    await store?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('is enabled, serves volume create and inspect, and a container\'s data is in Swift when it exits', async (t) => {
    const ls = await engine.dockerOk(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}']);
    assert.match(ls, new RegExp(`^${name}:latest true$`, 'm'));
    const vol = uniqueVolume('mg');
    await engine.dockerOk(['volume', 'create', '-d', name, '-o', 'fsync=local', vol]);
    const [inspect] = JSON.parse(await engine.dockerOk(['volume', 'inspect', vol])) as { Scope: string; Status: Record<string, unknown> }[];
    assert.equal(inspect!.Scope, 'global');
    assert.equal(inspect!.Status['container'], vol);
    assert.equal(inspect!.Status['uuid'], (await store.getLabels(vol))['swiftfs-uuid']);
    // The plugin's state lives in the host directory given with state.source, not under the engine's root.
    const state = JSON.parse(readFileSync(join(root, 'state', 'plugin', 'state.json'), 'utf8')) as { volumes: Record<string, { mountpoint: string }> };
    assert.equal(state.volumes[vol]?.mountpoint, `/mnt/volumes/${vol}`, 'mounts go under the propagated mount');
    if (!mountBuilt) return t.skip('swiftfs mount is not built yet');

    await engine.dockerOk(['run', '--rm', '--network', 'none', '-v', `${vol}:/data`, TEST_IMAGE, 'sh', '-c', 'echo managed > /data/m.txt && mkdir /data/d && echo x > /data/d/y'], 180_000);
    const files = await readVolumeFiles(store, vol, ['/m.txt', '/d/y']);
    assert.equal(files.get('/m.txt')?.toString(), 'managed\n');
    assert.equal(files.get('/d/y')?.toString(), 'x\n');
  });

  test('a crash of the plugin server is survived: the supervisor restarts it and the mount lives on', async (t) => {
    if (!mountBuilt) return t.skip('swiftfs mount is not built yet');
    const vol = uniqueVolume('mgk');
    await engine.dockerOk(['volume', 'create', '-d', name, vol]);
    await engine.dockerOk(['run', '-d', '--name', 'mk1', '--network', 'none', '-v', `${vol}:/data`, TEST_IMAGE, 'sleep', '3600']);
    await engine.dockerOk(['exec', 'mk1', 'sh', '-c', 'echo before > /data/before.txt']);
    const [server] = pluginServerPids();
    assert.ok(server, 'the plugin server process is visible on the host');
    process.kill(server, 'SIGKILL');
    // The supervisor starts a new server; meanwhile the container's mount keeps working.
    assert.equal((await engine.dockerOk(['exec', 'mk1', 'cat', '/data/before.txt'])).trim(), 'before');
    const deadline = Date.now() + 30_000;
    let restarted: number[] = [];
    while (Date.now() < deadline) {
      restarted = pluginServerPids().filter((p) => p !== server);
      if (restarted.length > 0 && (await engine.docker(['volume', 'inspect', vol])).code === 0) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(restarted.length, 1, 'one new plugin server');
    await engine.dockerOk(['exec', 'mk1', 'sh', '-c', 'echo after > /data/after.txt']);
    const [inspect] = JSON.parse(await engine.dockerOk(['volume', 'inspect', vol])) as { Status: Record<string, unknown> }[];
    assert.equal(inspect!.Status['mounted'], true);
    assert.equal(inspect!.Status['mounts'], 1);
    await engine.dockerOk(['rm', '-f', 'mk1']);
    const files = await readVolumeFiles(store, vol, ['/before.txt', '/after.txt']);
    assert.equal(files.get('/before.txt')?.toString(), 'before\n');
    assert.equal(files.get('/after.txt')?.toString(), 'after\n');
  });

  test('the plugin stopped under a running container flushes its mounts first (nothing left only in the cache)', async (t) => {
    if (!mountBuilt) return t.skip('swiftfs mount is not built yet');
    const vol = uniqueVolume('mgs');
    // A long commit interval: a write stays in the local journal until something flushes it.
    await engine.dockerOk(['volume', 'create', '-d', name, '-o', 'commit-interval=10m', vol]);
    await engine.dockerOk(['run', '-d', '--name', 'ms1', '--network', 'none', '-v', `${vol}:/data`, TEST_IMAGE, 'sh', '-c', 'echo pending > /data/p.txt; sleep 3600']);
    const deadline = Date.now() + 30_000;
    while ((await engine.docker(['exec', 'ms1', 'cat', '/data/p.txt'])).stdout.trim() !== 'pending') {
      if (Date.now() > deadline) throw new Error('the container did not write its file');
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal((await readVolumeFiles(store, vol, ['/p.txt'])).get('/p.txt'), null, 'not in Swift yet');
    await engine.dockerOk(['plugin', 'disable', '-f', name], 60_000);
    const files = await readVolumeFiles(store, vol, ['/p.txt']);
    assert.equal(files.get('/p.txt')?.toString(), 'pending\n', 'flushed when the plugin stopped');
  });
});
