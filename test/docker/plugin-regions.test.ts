/**
 * The legacy plugin with two regions (the two test Swift servers, stores A and B of a config file) under a real
 * Docker engine: `docker volume create -o replicas=B` replicates every commit of the mount process to B and
 * `docker volume inspect` shows the replica and its lag while a container uses the volume; a replica region is
 * refused as the volume's own; `swiftfs relocate` refuses the volume while a container uses it, moves it once
 * the container is gone, and the next `docker run` gets the volume from B with every byte.
 */

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCi, readSwiftEnv } from '../helpers/swift-env.js';
import { DockerEngine, PluginHost, TEST_IMAGE, cliMain, dockerUnavailable, readVolumeFiles, run, testSwiftStore, uniquePluginName, uniqueVolume } from '../helpers/docker.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { readJournalHead } from '../../src/region/journal.js';

const swiftA = readSwiftEnv('A');
const swiftB = readSwiftEnv('B');
const skipReason = swiftA === undefined || swiftB === undefined ? 'needs both test Swift servers (SWIFTFS_TEST_ST_AUTH and SWIFTFS_TEST_ST_AUTH_B)' : dockerUnavailable();

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('swiftfs plugin with two regions and a real Docker engine', { skip: !isCi() && skipReason ? skipReason : false }, () => {
  let engine: DockerEngine;
  let host: PluginHost;
  let storeA: ObjectStore;
  let storeB: ObjectStore;
  let root: string;
  let configFile: string;
  const vol = uniqueVolume('dk-regions');

  const swiftfs = (args: string[]) => run(process.execPath, [cliMain, '--config', configFile, '--log-level', 'error', ...args], { timeoutMs: 180_000, env: { ...host.env(), SWIFTFS_STATE_DIR: host.stateDir, SWIFTFS_MOUNT_ROOT: host.mountRoot } });
  const inspect = async (): Promise<Record<string, unknown>> => (JSON.parse(await engine.dockerOk(['volume', 'inspect', vol])) as { Status: Record<string, unknown> }[])[0]!.Status;

  before(async () => {
    if (skipReason !== undefined) throw new Error(`Docker tests cannot run: ${skipReason}`);
    root = mkdtempSync('/var/tmp/swiftfs-docker-regions-');
    configFile = join(root, 'swiftfs.yaml');
    const store = (name: string, e: NonNullable<typeof swiftA>) => [`  ${name}:`, '    type: swift', '    auth: tempauth', `    auth-url: ${e.authUrl}`, `    user: ${e.user}`, `    key: ${e.key}`].join('\n');
    writeFileSync(configFile, ['stores:', store('A', swiftA!), store('B', swiftB!), 'default-store: A', ''].join('\n'), { mode: 0o600 });
    storeA = testSwiftStore(swiftA!);
    storeB = testSwiftStore(swiftB!);
    engine = await DockerEngine.start();
    host = new PluginHost({ name: uniquePluginName('sfr'), root: join(root, 'host'), swift: swiftA!, extraArgs: ['--config', configFile, '--health-interval', '1000'] });
    await host.start();
  });

  after(async () => {
    if (engine) {
      const ids = (await engine.docker(['ps', '-aq'])).stdout.split('\n').filter((x) => x !== '');
      if (ids.length) await engine.docker(['rm', '-f', ...ids]);
      await engine.docker(['volume', 'rm', '-f', vol]);
    }
    await host?.stop();
    await engine?.destroy();
    for (const [s, c] of [[storeA, vol], [storeB, vol]] as const) {
      if (!s) continue;
      const { dropContainer } = await import('../integration/relocate-helpers.js');
      await dropContainer(s, c);
      await s.close();
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('-o replicas: checked at create, replicated while mounted, lag in inspect; relocation through the CLI, followed by the next Mount', async () => {
    const bad = await engine.docker(['volume', 'create', '-d', host.name, '-o', 'replicas=A', uniqueVolume('dk-bad')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /region A is where volume .* lives/);
    const unknown = await engine.docker(['volume', 'create', '-d', host.name, '-o', 'replicas=mars', uniqueVolume('dk-bad')]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no store or region named "mars"/);

    await engine.dockerOk(['volume', 'create', '-d', host.name, '-o', 'replicas=B', vol]);
    // A container that keeps the volume mounted while writing.
    await engine.dockerOk(['run', '-d', '--name', `${vol}-w`, '--network', 'none', '-v', `${vol}:/data`, TEST_IMAGE, 'sh', '-c', 'echo hello > /data/a.txt && dd if=/dev/urandom of=/data/b.bin bs=1M count=4 2>/dev/null && md5sum /data/b.bin > /data/b.md5 && sleep 600'], 180_000);
    let status: Record<string, unknown> = {};
    await waitFor('inspect to show the replica B caught up', async () => {
      status = await inspect();
      const replicas = status['replicas'] as { replica: string; state: string; lagSeconds: number; replicatedSeq: number }[] | undefined;
      return replicas?.[0]?.state === 'caught-up' && replicas[0].replicatedSeq > 0;
    }, 120_000);
    assert.equal(status['mountedFromRegion'], 'A');
    assert.equal(status['home'], `A/${vol}`);
    assert.equal((status['replicas'] as { replica: string }[])[0]!.replica, `B/${vol}`);
    assert.equal((status['replicas'] as { lagBytes: number }[])[0]!.lagBytes, 0);
    assert.equal(status['url'], `swift://A/${vol}`);

    // Relocation is refused while the container uses the volume...
    const refused = await swiftfs(['relocate', `swift://A/${vol}`, '--to', 'B', '--yes']);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /used by 1 container mount\(s\) through the Docker plugin on this host: stop those containers first/);
    // ... and done once it is gone; the plugin is left to remount.
    await engine.dockerOk(['rm', '-f', `${vol}-w`]);
    await waitFor('the mount process to stop', async () => (await inspect())['mounted'] === false);
    const moved = await swiftfs(['relocate', `swift://A/${vol}`, '--to', 'B', '--yes']);
    assert.equal(moved.code, 0, moved.stdout + moved.stderr);
    assert.match(moved.stdout, /the Docker plugin mounts volume .* from swift:\/\/B\/.* at its next use/);
    const before = await inspect();
    assert.equal(before['role'], 'retired');
    assert.equal(before['relocatedTo'], `B/${vol}`);

    // The next container gets the volume from B, every byte.
    const out = await engine.dockerOk(['run', '--rm', '--network', 'none', '-v', `${vol}:/data`, TEST_IMAGE, 'sh', '-c', 'cat /data/a.txt && md5sum -c /data/b.md5 >/dev/null && echo md5-ok && echo after-move > /data/c.txt'], 180_000);
    assert.deepEqual(out.trim().split('\n'), ['hello', 'md5-ok']);
    const after = await inspect();
    assert.equal(after['store'], 'B');
    assert.equal(after['url'], `swift://B/${vol}`);
    assert.equal(after['role'], undefined);
    const files = await readVolumeFiles(storeB, vol, ['/c.txt']);
    assert.equal(files.get('/c.txt')?.toString(), 'after-move\n', 'written in B');
    assert.ok((await readJournalHead(storeB, vol)).seq > 0);
  });
});
