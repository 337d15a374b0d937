/**
 * The swiftfs volume plugin in legacy mode (a socket in /run/docker/plugins) driven by a REAL Docker engine
 * (scripts/docker-engine.sh) against the test Swift: volume create/ls/inspect/rm, containers writing to a
 * volume (and the data being in Swift when `docker run` returns), two containers sharing a mount, the plugin
 * killed and restarted under a running container, the engine restarted, and a second host (a second engine
 * with its own plugin, cache and mount root) mounting the volume after the first let it go.
 *
 * Tests that need real FUSE mounts skip (with a message) while `swiftfs mount` is not built.
 */

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isCi, readSwiftEnv } from '../helpers/swift-env.js';
import { startProxy, stopProxy } from '../helpers/saio.js';
import {
  DockerEngine,
  PluginHost,
  TEST_IMAGE,
  dockerUnavailable,
  mountCommandBuilt,
  readVolumeFiles,
  run,
  testS3Store,
  testSwiftStore,
  uniquePluginName,
  uniqueVolume,
} from '../helpers/docker.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { isStoreError } from '../../src/store/errors.js';

const swift = readSwiftEnv('A');
const skipReason = swift === undefined ? 'no test Swift (SWIFTFS_TEST_ST_AUTH unset; run through scripts/run-tests.mjs)' : dockerUnavailable();

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface PluginStateFile {
  volumes: Record<string, { mounts: Record<string, number>; process?: { pid: number }; draining?: unknown }>;
}

describe('swiftfs legacy plugin with a real Docker engine', { skip: !isCi() && skipReason ? skipReason : false }, () => {
  let engine: DockerEngine;
  let engineB: DockerEngine | undefined;
  let hostA: PluginHost;
  let hostB: PluginHost | undefined;
  let store: ObjectStore;
  let root: string;
  let mountBuilt = false;
  const noMount = 'swiftfs mount (the FUSE door) is not built yet';
  const shared = uniqueVolume('dk-shared');

  function state(host: PluginHost): PluginStateFile {
    return JSON.parse(readFileSync(join(host.stateDir, 'plugin', 'state.json'), 'utf8')) as PluginStateFile;
  }

  before(async () => {
    if (skipReason !== undefined) throw new Error(`Docker tests cannot run: ${skipReason}`);
    mountBuilt = await mountCommandBuilt();
    root = mkdtempSync('/var/tmp/swiftfs-docker-');
    store = testSwiftStore(swift!);
    engine = await DockerEngine.start();
    hostA = new PluginHost({ name: uniquePluginName('sfa'), root: join(root, 'host-a'), swift: swift!, extraArgs: ['--health-interval', '1000'] });
    await hostA.start();
  });

  after(async () => {
    for (const e of [engine, engineB]) {
      if (e === undefined) continue;
      const ids = (await e.docker(['ps', '-aq'])).stdout.split('\n').filter((x) => x !== '');
      if (ids.length > 0) await e.docker(['rm', '-f', ...ids], 60_000);
    }
    await hostA?.stop();
    await hostB?.stop();
    await engine?.destroy();
    await engineB?.destroy();
    // Mount processes left behind by a failed test: stop them (they flush on SIGTERM).
    await run('sh', ['-c', `for m in $(grep -o " ${root}[^ ]*" /proc/self/mountinfo); do fusermount -u -z "$m" 2>/dev/null || umount -l "$m"; done`], { timeoutMs: 30_000 });
    await store?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('volume create, ls, inspect and rm go through the plugin to Swift; bad options change nothing', async () => {
    const vol = uniqueVolume('dk-basic');
    await engine.dockerOk(['volume', 'create', '-d', hostA.name, '-o', 'fsync=local', '-o', 'cache-size=256M', vol]);
    const labels = await store.getLabels(vol);
    assert.equal(labels['swiftfs-volume'], vol, 'the Swift container is named as the volume and labelled');
    const ls = await engine.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    assert.ok(ls.split('\n').includes(`${hostA.name} ${vol}`), ls);
    const inspectText = await engine.dockerOk(['volume', 'inspect', vol]);
    const [inspect] = JSON.parse(inspectText) as { Scope: string; Status: Record<string, unknown>; Mountpoint: string }[];
    assert.equal(inspect!.Scope, 'global');
    assert.equal(inspect!.Status['uuid'], labels['swiftfs-uuid']);
    assert.equal(inspect!.Status['container'], vol);
    assert.equal(inspect!.Status['backend'], 'swift');
    assert.equal(inspect!.Status['health'], 'ok');
    assert.deepEqual(inspect!.Status['options'], { fsync: 'local', 'cache-size': '256M' });
    assert.equal(inspect!.Mountpoint, join(hostA.mountRoot, vol));
    assert.ok(!inspectText.includes(swift!.key), 'no credential in docker volume inspect');
    assert.ok(!readFileSync(hostA.logFile, 'utf8').includes(`"${swift!.key}"`), 'no credential in the plugin log');

    const bad = uniqueVolume('dk-bad');
    const r = await engine.docker(['volume', 'create', '-d', hostA.name, '-o', 'nosuchoption=1', bad]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown option/);
    assert.ok(!(await engine.dockerOk(['volume', 'ls', '-q'])).includes(bad));
    await assert.rejects(store.headContainer(bad), (err: unknown) => isStoreError(err, 'NotFound'));

    await engine.dockerOk(['volume', 'rm', vol]);
    assert.ok(!(await engine.dockerOk(['volume', 'ls', '-q'])).split('\n').includes(vol));
    await waitFor('the container to be deleted from Swift', async () => {
      try {
        await store.headContainer(vol);
        return false;
      } catch (err) {
        return isStoreError(err, 'NotFound');
      }
    });
  });

  test('a container that writes and exits at once: the data is in Swift when docker run returns', async (t) => {
    if (!mountBuilt) return t.skip(noMount);
    await engine.dockerOk(['volume', 'create', '-d', hostA.name, shared]);
    const out = await engine.dockerOk(
      ['run', '--rm', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'sh', '-c', 'echo hello > /data/a.txt && dd if=/dev/urandom of=/data/b.bin bs=1M count=3 2>/dev/null && md5sum /data/b.bin'],
      180_000,
    );
    const sum = out.trim().split(/\s+/)[0];
    // Straight from the store, right away: no waiting for a background upload.
    const files = await readVolumeFiles(store, shared, ['/a.txt', '/b.bin']);
    assert.equal(files.get('/a.txt')?.toString(), 'hello\n');
    assert.equal(md5(files.get('/b.bin') ?? Buffer.alloc(0)), sum);
    const s = state(hostA).volumes[shared];
    assert.deepEqual(s?.mounts, {}, 'no references left');
    assert.equal(s?.process, undefined, 'the mount process was stopped');
  });

  test('a container running as another user writes to a volume owned by that user, and not elsewhere', async (t) => {
    if (!mountBuilt) return t.skip(noMount);
    const vol = uniqueVolume('dk-user');
    await engine.dockerOk(['volume', 'create', '-d', hostA.name, '-o', 'uid=999', '-o', 'gid=999', vol]);
    // Mounted at a path the image does not have: at /data the engine would copy the image's /data (owned by
    // root) into the empty volume, ownership included, as it does for any volume.
    const out = await engine.dockerOk([
      'run', '--rm', '--network', 'none', '--user', '999:999', '-v', `${vol}:/vol`, TEST_IMAGE,
      'sh', '-c', 'echo mine > /vol/u.txt && stat -c "%u:%g" /vol/u.txt && (mkdir /vol/x && chmod 700 /vol/x && echo ok)',
    ]);
    assert.deepEqual(out.trim().split('\n'), ['999:999', 'ok']);
    const denied = await engine.docker(['run', '--rm', '--network', 'none', '--user', '1000:1000', '-v', `${vol}:/vol`, TEST_IMAGE, 'sh', '-c', 'ls /vol/x']);
    assert.notEqual(denied.code, 0, 'permissions are enforced for other users');
    assert.match(denied.stderr + denied.stdout, /Permission denied/);
    await engine.dockerOk(['volume', 'rm', vol]);
  });

  test('two containers share one mount; the plugin killed and restarted under them changes nothing', async (t) => {
    if (!mountBuilt) return t.skip(noMount);
    await engine.dockerOk(['run', '-d', '--name', 'c1', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'sleep', '3600']);
    await engine.dockerOk(['run', '-d', '--name', 'c2', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'sleep', '3600']);
    await engine.dockerOk(['exec', 'c1', 'sh', '-c', 'echo from-c1 > /data/c1.txt']);
    assert.equal((await engine.dockerOk(['exec', 'c2', 'cat', '/data/c1.txt'])).trim(), 'from-c1');
    const [live] = JSON.parse(await engine.dockerOk(['volume', 'inspect', shared])) as { Status: Record<string, unknown> }[];
    assert.equal(live!.Status['mounted'], true);
    assert.equal(live!.Status['mounts'], 2);
    assert.equal(typeof live!.Status['dirtyBytes'], 'number', 'dirty bytes come from the mount process');
    assert.equal(live!.Status['health'], 'ok');
    const before = state(hostA).volumes[shared];
    assert.equal(Object.values(before?.mounts ?? {}).reduce((a, b) => a + b, 0), 2);
    const mountPid = before?.process?.pid;
    assert.ok(mountPid);

    await hostA.kill('SIGKILL');
    await hostA.start();
    // The containers keep working: same mount process, no ENOTCONN.
    await engine.dockerOk(['exec', 'c1', 'sh', '-c', 'cat /data/a.txt && echo after-restart > /data/after.txt']);
    assert.equal((await engine.dockerOk(['exec', 'c2', 'cat', '/data/after.txt'])).trim(), 'after-restart');
    assert.equal(state(hostA).volumes[shared]?.process?.pid, mountPid, 're-adopted, not remounted');

    await engine.dockerOk(['rm', '-f', 'c2']);
    assert.equal(state(hostA).volumes[shared]?.process?.pid, mountPid, 'still mounted for c1');
    await engine.dockerOk(['stop', '-t', '1', 'c1']);
    await engine.dockerOk(['rm', 'c1']);
    assert.equal(state(hostA).volumes[shared]?.process, undefined);
    const files = await readVolumeFiles(store, shared, ['/after.txt', '/c1.txt']);
    assert.equal(files.get('/after.txt')?.toString(), 'after-restart\n');
    assert.equal(files.get('/c1.txt')?.toString(), 'from-c1\n');
  });

  test('a mount process that dies is restarted at the same path, and new containers use it', async (t) => {
    if (!mountBuilt) return t.skip(noMount);
    await engine.dockerOk(['run', '-d', '--name', 'c3', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'sleep', '3600']);
    await engine.dockerOk(['exec', 'c3', 'sh', '-c', 'echo from-c3 > /data/c3.txt']);
    const first = state(hostA).volumes[shared]?.process?.pid;
    assert.ok(first);
    process.kill(first, 'SIGKILL');
    await waitFor('the health check to remount the volume', async () => {
      const pid = state(hostA).volumes[shared]?.process?.pid;
      return pid !== undefined && pid !== first;
    });
    // The same path: a new container gets the remounted volume, with what c3 wrote (replayed from the local
    // write-ahead log, since the process died before committing it).
    const out = await engine.dockerOk(['run', '--rm', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'sh', '-c', 'cat /data/c3.txt && echo new > /data/new.txt']);
    assert.equal(out.trim(), 'from-c3');
    await engine.dockerOk(['rm', '-f', 'c3']);
    assert.equal(state(hostA).volumes[shared]?.process, undefined, 'stopped with its last user');
    const files = await readVolumeFiles(store, shared, ['/c3.txt', '/new.txt']);
    assert.equal(files.get('/c3.txt')?.toString(), 'from-c3\n');
    assert.equal(files.get('/new.txt')?.toString(), 'new\n');
  });

  test('a plugin on the S3 API: bucket per volume, bucket naming rules, data readable through S3', async (t) => {
    if (!mountBuilt) return t.skip(noMount);
    const hostS3 = new PluginHost({ name: uniquePluginName('sfs3'), root: join(root, 'host-s3'), swift: swift!, s3: true });
    const s3 = testS3Store(swift!);
    try {
      await hostS3.start();
      const bad = await engine.docker(['volume', 'create', '-d', hostS3.name, 'Not_A_Bucket']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /bucket name "Not_A_Bucket".*container=/);
      const vol = uniqueVolume('dk-s3');
      await engine.dockerOk(['volume', 'create', '-d', hostS3.name, vol]);
      const [inspect] = JSON.parse(await engine.dockerOk(['volume', 'inspect', vol])) as { Status: Record<string, unknown> }[];
      assert.equal(inspect!.Status['backend'], 's3');
      await engine.dockerOk(['run', '--rm', '--network', 'none', '-v', `${vol}:/data`, TEST_IMAGE, 'sh', '-c', 'echo over-s3 > /data/s3.txt'], 180_000);
      const files = await readVolumeFiles(s3, vol, ['/s3.txt']);
      assert.equal(files.get('/s3.txt')?.toString(), 'over-s3\n');
      await engine.dockerOk(['volume', 'rm', vol]);
    } finally {
      await hostS3.stop();
      await s3.close();
    }
  });

  test('the engine restarted while the store is down: volumes are kept (Get answers from local state)', async (t) => {
    const vol = uniqueVolume('dk-restart');
    await engine.dockerOk(['volume', 'create', '-d', hostA.name, vol]);
    const saioDir = swift!.saioDir;
    if (saioDir === '') return t.skip('SWIFTFS_TEST_SAIO_DIR unset: cannot stop the store');
    await stopProxy(saioDir);
    try {
      // inspect answers (quickly) all along; once its last look at the store is stale, it reports the outage.
      await waitFor('inspect to report the outage', async () => {
        const t0 = Date.now();
        const [inspect] = JSON.parse(await engine.dockerOk(['volume', 'inspect', vol])) as { Status: Record<string, unknown> }[];
        assert.ok(Date.now() - t0 < 8_000, `inspect answered in ${Date.now() - t0} ms with the store down`);
        return /store unreachable/.test(String(inspect!.Status['health']));
      });
      const t1 = Date.now();
      assert.ok((await engine.dockerOk(['volume', 'ls', '-q'])).split('\n').includes(vol));
      assert.ok(Date.now() - t1 < 20_000, `ls answered in ${Date.now() - t1} ms with the store down`);
      // The engine asks the plugin (Get) about every volume it restores; an error would make it drop them.
      await engine.stop();
      await engine.startAgain();
      const ls = await engine.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
      assert.ok(ls.split('\n').includes(`${hostA.name} ${vol}`), ls);
      assert.ok(ls.split('\n').includes(`${hostA.name} ${shared}`) || !mountBuilt, ls);
    } finally {
      await startProxy(saioDir);
    }
    if (!mountBuilt) return t.skip('listing checked; swiftfs mount is not built yet');
    // The store is back: volumes are usable again.
    const deadline = Date.now() + 60_000;
    let out = await engine.docker(['run', '--rm', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'cat', '/data/a.txt'], 120_000);
    while (out.code !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2000));
      out = await engine.docker(['run', '--rm', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'cat', '/data/a.txt'], 120_000);
    }
    assert.equal(out.stdout.trim(), 'hello', out.stderr);
  });

  test('a second host mounts the volume after the first let go, and is refused while the first holds it', async (t) => {
    if (!mountBuilt) return t.skip(noMount);
    engineB = await DockerEngine.start();
    hostB = new PluginHost({ name: uniquePluginName('sfb'), root: join(root, 'host-b'), swift: swift! });
    await hostB.start();
    // Global scope: host B finds the volume in Swift.
    await engineB.dockerOk(['volume', 'create', '-d', hostB.name, shared]);
    const [inspect] = JSON.parse(await engineB.dockerOk(['volume', 'inspect', shared])) as { Status: Record<string, unknown> }[];
    assert.equal(inspect!.Status['uuid'], (await store.getLabels(shared))['swiftfs-uuid']);

    await engine.dockerOk(['run', '-d', '--name', 'holder', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'sleep', '3600']);
    const refused = await engineB.docker(['run', '--rm', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'true'], 120_000);
    assert.notEqual(refused.code, 0, 'refused while host A holds the volume');
    assert.match(refused.stderr, /in use/);
    await engine.dockerOk(['exec', 'holder', 'sh', '-c', 'echo from-a > /data/handover.txt']);
    await engine.dockerOk(['rm', '-f', 'holder']);

    const out = await engineB.dockerOk(['run', '--rm', '--network', 'none', '-v', `${shared}:/data`, TEST_IMAGE, 'sh', '-c', 'cat /data/handover.txt && echo from-b > /data/b.txt'], 180_000);
    assert.equal(out.trim(), 'from-a');
    const files = await readVolumeFiles(store, shared, ['/b.txt']);
    assert.equal(files.get('/b.txt')?.toString(), 'from-b\n');
    assert.notEqual(hostB.cacheDir, hostA.cacheDir);
  });
});
