/**
 * Planned relocation between two real Swift servers (regions A and B):
 *  - a volume written through the core in A while replicating to B from the writer's process, then
 *    `swiftfs relocate --to B`: every byte is in B, A is a retired home, B mounts without forcing, and the
 *    move can be made back (re-seeding A, keeping its identical objects);
 *  - the same through real FUSE mounts: `swiftfs mount` in A, files written through the mount point,
 *    `swiftfs relocate` unmounts, moves and mounts again from B at the same place.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume, VolumeBusyError } from '../../src/core/volume.js';
import { Ownership } from '../../src/core/ownership.js';
import { UUID_LABEL } from '../../src/core/layout.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { startReplication } from '../../src/region/replication.js';
import { isFenceOwner, readRegions, ROLE_LABEL } from '../../src/region/records.js';
import { uniqueName } from '../helpers/saio.js';
import { forceUnmount, isMounted, skipFuse, startCliMount, swiftfs } from '../helpers/mount.js';
import { checkContainerConsistent, fsDigest } from '../unit/region-helpers.js';
import { dropContainer, regions } from './relocate-helpers.js';

async function put(v: Volume, p: string, data: Buffer, at = 0): Promise<void> {
  const fh = await v.create(p, 0o644, O_CREAT | O_RDWR);
  try {
    await v.write(fh, data, at);
  } finally {
    await v.release(fh);
  }
}

test('planned relocation of a volume written in A with replication to B: every byte in B; and back again', { timeout: 500_000 }, async (t) => {
  const r = await regions(t);
  if (!r) return;
  const container = uniqueName('planned');
  try {
    await Volume.format(r.storeA, container, { createContainer: true, blockSize: 1024 * 1024 });
    await r.storeA.setLabels(container, { 'swiftfs-volume': container });
    const v = await Volume.open(r.storeA, container, { cacheDir: join(r.dir, 'cache-a'), commitIntervalMs: 100, checkpointEvery: 20 });
    const replication = startReplication({ volume: v, store: r.storeA, region: 'A' }, [{ region: 'B', store: r.storeB, container }], { pollMs: 300 });
    await v.mkdir('/db', 0o755);
    for (let i = 0; i < 30; i++) {
      await put(v, `/db/big${i % 6}`, randomBytes(1024 * 1024 + i * 1000));
      await put(v, `/db/small${i}`, randomBytes(3000 + i));
      if (i % 7 === 0) await v.rename(`/db/small${i}`, `/db/renamed${i}`);
      if (i % 5 === 4) await v.unlink(`/db/small${i - 1}`).catch(() => undefined);
      await v.syncAll();
    }
    await v.symlink('/db/big0', '/link');
    await v.syncAll();
    const st = replication.status()[0]!;
    t.diagnostic(`replication while writing: state ${st.state}, at ${st.replicatedSeq} of ${st.sourceSeq}, lag ${st.lagSeconds.toFixed(2)} s, copied ${st.copiedObjects} objects`);
    // Some changes are not replicated when the writer stops: the relocation catches up.
    await replication.stop();
    await put(v, '/db/last-minute', randomBytes(2 * 1024 * 1024));
    const digest = await fsDigest(v);
    await v.close();

    const res = await swiftfs(['relocate', `swift://A/${container}`, '--to', 'B', '--yes', '--json'], { env: r.env, timeoutMs: 300_000 });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const out = JSON.parse(res.stdout) as { durationMs: number; loss: { segmentsLost: number }; catchUp: { copiedBytes: number; shippedSegments: number } };
    assert.equal(out.loss.segmentsLost, 0);
    assert.ok(out.catchUp.copiedBytes >= 2 * 1024 * 1024, 'the relocation copied what replication had not');
    t.diagnostic(`planned relocate took ${res.ms} ms (library ${out.durationMs} ms), caught up ${out.catchUp.shippedSegments} segments / ${out.catchUp.copiedBytes} bytes`);

    assert.ok((await checkContainerConsistent(r.storeB, container)) !== null);
    const vb = await Volume.open(r.storeB, container, { cacheDir: join(r.dir, 'cache-b') });
    assert.equal(await fsDigest(vb), digest, 'every byte is in B');
    await put(vb, '/written-in-b', Buffer.from('b'));
    const digestB = await fsDigest(vb);
    await vb.close();
    const labels = await r.storeB.getLabels(container);
    assert.equal(labels[UUID_LABEL], vb.uuid);
    assert.equal(labels[ROLE_LABEL], 'home');
    assert.equal(labels['swiftfs-volume'], container, 'the plugin\'s labels came along');
    assert.ok(isFenceOwner(await Ownership.read(r.storeA, container)));
    assert.equal((await readRegions(r.storeB, container))?.home.region, 'B');
    await assert.rejects(Volume.open(r.storeA, container, { cacheDir: join(r.dir, 'cache-a') }), VolumeBusyError);

    // And back: A is re-seeded from B, keeping the objects it already has.
    const back = await swiftfs(['relocate', `swift://B/${container}`, '--to', 'A', '--yes', '--json'], { env: r.env, timeoutMs: 300_000 });
    assert.equal(back.code, 0, back.stdout + back.stderr);
    const backOut = JSON.parse(back.stdout) as { catchUp: { copiedBytes: number } };
    assert.ok(backOut.catchUp.copiedBytes < 1024 * 1024, `moving back copied only what changed (${backOut.catchUp.copiedBytes} bytes)`);
    const va = await Volume.open(r.storeA, container, { cacheDir: join(r.dir, 'cache-a2'), readOnly: true });
    assert.equal(await fsDigest(va), digestB);
    await va.close();
  } finally {
    await dropContainer(r.storeA, container);
    await dropContainer(r.storeB, container);
    await r.close();
  }
});

test('planned relocation through FUSE mounts: unmounted in A, moved, mounted again from B at the same place', { timeout: 500_000, skip: skipFuse() }, async (t) => {
  const r = await regions(t);
  if (!r) return;
  const container = uniqueName('mounted');
  const mountpoint = join(r.dir, 'mnt');
  await mkdir(mountpoint, { recursive: true });
  try {
    const mount = await startCliMount(`swift://A/${container}`, mountpoint, [], r.env);
    const sums = new Map<string, string>();
    await mkdir(join(mountpoint, 'data'));
    for (let i = 0; i < 12; i++) {
      const buf = randomBytes(300_000 + i * 77_777);
      await writeFile(join(mountpoint, 'data', `f${i}`), buf);
      sums.set(`f${i}`, createHash('sha256').update(buf).digest('hex'));
    }
    void mount;
    const res = await swiftfs(['relocate', `swift://A/${container}`, '--to', 'B', '--yes'], { env: r.env, timeoutMs: 300_000 });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /mounted again on/);
    t.diagnostic(res.stdout.split('\n').find((l) => l.startsWith('relocated')) ?? '');
    assert.ok(await isMounted(mountpoint));
    const status = await swiftfs(['status', '--json'], { env: r.env, timeoutMs: 30_000 });
    const list = JSON.parse(status.stdout) as { mountpoint: string; volume: string }[];
    assert.equal(list.find((m) => m.mountpoint === mountpoint)?.volume, `swift://B/${container}`);
    const names = (await readdir(join(mountpoint, 'data'))).sort();
    assert.equal(names.length, 12);
    for (const [name, sum] of sums) {
      const got = await readFile(join(mountpoint, 'data', name));
      assert.equal(createHash('sha256').update(got).digest('hex'), sum, name);
    }
    await writeFile(join(mountpoint, 'data', 'after-move'), 'written in B');
    const un = await swiftfs(['unmount', mountpoint], { env: r.env, timeoutMs: 120_000 });
    assert.equal(un.code, 0, un.stdout + un.stderr);
    const vb = await Volume.open(r.storeB, container, { cacheDir: join(r.dir, 'check'), readOnly: true });
    assert.equal((await vb.getattr('/data/after-move')).size, 'written in B'.length);
    await vb.close();
  } finally {
    await forceUnmount(mountpoint);
    await dropContainer(r.storeA, container);
    await dropContainer(r.storeB, container);
    await r.close();
  }
});
