/**
 * relocate() on memory stores standing for two regions: a planned move leaves every byte in the target and
 * the source retired; a live writer elsewhere is refused unless forced (then fenced); a local mount is asked to
 * unmount first; a failover takes over what the replica holds, reports what is lost and leaves a pending
 * fence that stops the old writer once its region answers; a dry run changes nothing; unsafe targets are
 * refused with the reason.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FaultyStore } from '../../src/store/faulty-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import { Volume, VolumeBusyError } from '../../src/core/volume.js';
import { FsError } from '../../src/core/errors.js';
import { Ownership } from '../../src/core/ownership.js';
import { FORMAT_KEY, UUID_LABEL } from '../../src/core/layout.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { relocate, planRelocation, RelocateError, describeLoss } from '../../src/region/relocate.js';
import { Replicator } from '../../src/region/replicator.js';
import { applyPendingFences } from '../../src/region/fence.js';
import { isFenceOwner, readPendingFences, readRegions } from '../../src/region/records.js';
import { FAST, fsDigest, fsFiles, tempDir, withReadOnly, KiB } from './region-helpers.js';

interface World {
  config: Config;
  a: FaultyStore;
  b: FaultyStore;
  open: (region: string) => Promise<ObjectStore>;
  volume: Volume;
  cacheDir: string;
}

async function world(): Promise<World> {
  const dir = await tempDir();
  const file = join(dir, 'swiftfs.yaml');
  writeFileSync(file, 'stores:\n  A:\n    type: memory\n  B:\n    type: memory\n', { mode: 0o600 });
  const config = loadConfig({ env: {}, configFile: file });
  const a = new FaultyStore(new MemoryStore({ name: 'A' }));
  const b = new FaultyStore(new MemoryStore({ name: 'B' }));
  await Volume.format(a, 'pg', { createContainer: true, blockSize: 64 * KiB });
  const cacheDir = await tempDir();
  const volume = await Volume.open(a, 'pg', { cacheDir, ...FAST });
  return {
    config,
    a,
    b,
    open: async (region) => (region === 'A' ? a : region === 'B' ? b : Promise.reject(new Error(`no region ${region}`))),
    volume,
    cacheDir,
  };
}

async function writeSync(v: Volume, p: string, data: Buffer): Promise<void> {
  const fh = await v.create(p, 0o644, O_CREAT | O_RDWR);
  try {
    await v.write(fh, data, 0);
    await v.fsync(fh, false);
  } finally {
    await v.release(fh).catch(() => undefined);
  }
}

function data(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

test('planned move: every byte in the target, source retired, regions recorded, next mount in the target', async () => {
  const w = await world();
  for (let i = 0; i < 6; i++) await writeSync(w.volume, `/f${i}`, data(150 * KiB, i));
  // A replica that is behind (part of the data only).
  const rep = new Replicator({ source: { store: w.a, container: 'pg', region: 'A' }, target: { store: w.b, container: 'pg', region: 'B' } });
  await rep.syncOnce();
  await rep.stop();
  for (let i = 6; i < 9; i++) await writeSync(w.volume, `/f${i}`, data(150 * KiB, i));
  const digest = await fsDigest(w.volume);
  const epochA = w.volume.status().owner!.epoch;
  await w.volume.close();

  const dry = await relocate({ config: w.config, source: { region: 'A', container: 'pg' }, to: 'B', dryRun: true, openStore: w.open, fenceSettleMs: 10 });
  assert.equal(dry.done, false);
  assert.deepEqual(dry.plan.refusals, []);
  assert.ok(dry.plan.steps.some((s) => /fence A\/pg/.test(s)));
  assert.equal(await Ownership.read(w.a, 'pg').then((o) => isFenceOwner(o)), false, 'a dry run changes nothing');

  const progress: number[] = [];
  const res = await relocate({ config: w.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w.open, fenceSettleMs: 10, onProgress: (p) => progress.push(p.bytesDone) });
  assert.equal(res.done, true);
  assert.deepEqual(res.home, { region: 'B', container: 'pg' });
  assert.equal(res.loss?.segmentsLost, 0);
  assert.equal(await withReadOnly(w.b, 'pg', fsDigest), digest, 'every byte is in the target');
  const ownerA = await Ownership.read(w.a, 'pg');
  assert.ok(isFenceOwner(ownerA));
  assert.deepEqual(ownerA.fence.movedTo, { region: 'B', container: 'pg' });
  const ownerB = await Ownership.read(w.b, 'pg');
  assert.ok(ownerB?.released);
  assert.ok(ownerB.epoch > epochA);
  for (const store of [w.a, w.b]) {
    const regions = await readRegions(store, 'pg');
    assert.equal(regions?.home.region, 'B');
    assert.equal(regions?.moves.at(-1)?.kind, 'planned');
  }
  assert.equal((await w.b.getLabels('pg'))[UUID_LABEL], w.volume.uuid);

  // The next mount in B takes it without forcing; A refuses a read-write open.
  const vb = await Volume.open(w.b, 'pg', { cacheDir: await tempDir(), ...FAST });
  assert.equal(await fsDigest(vb), digest);
  await writeSync(vb, '/new-in-b', data(KiB, 99));
  await vb.close();
  await assert.rejects(Volume.open(w.a, 'pg', { cacheDir: w.cacheDir, ...FAST }), VolumeBusyError);
  // Going on from the old home is refused with the reason.
  await assert.rejects(relocate({ config: w.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w.open, fenceSettleMs: 10 }), /already|retired home|moved to B/);
  // ...and back again (the old home is re-seeded, its identical objects kept).
  const back = await relocate({ config: w.config, source: { region: 'B', container: 'pg' }, to: 'A', openStore: w.open, fenceSettleMs: 10 });
  assert.equal(back.done, true);
  const files = await withReadOnly(w.a, 'pg', fsFiles);
  assert.ok(files.has('/new-in-b'));
  assert.ok(back.catchUp!.copiedObjects < 10, `objects reused moving back (${back.catchUp!.copiedObjects} copied)`);
});

test('planned move refuses a live writer elsewhere unless forced; forced, the writer is fenced and loses nothing it committed', async () => {
  const w = await world();
  await writeSync(w.volume, '/a', data(100 * KiB, 1));
  await assert.rejects(relocate({ config: w.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w.open, fenceSettleMs: 10 }), (e: unknown) => e instanceof RelocateError && /in use read-write/.test(e.message));
  const res = await relocate({ config: w.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w.open, fenceSettleMs: 10, force: true });
  assert.ok(res.done);
  await assert.rejects(writeSync(w.volume, '/b', data(KiB, 2)), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
  const files = await withReadOnly(w.b, 'pg', fsFiles);
  assert.deepEqual(files.get('/a'), data(100 * KiB, 1));
  assert.ok(!files.has('/b'));
  await w.volume.close({ abandon: true });
});

test('planned move with a mount on this host: it is asked to unmount first', async () => {
  const w = await world();
  await writeSync(w.volume, '/a', data(10 * KiB, 1));
  // Written but only in the WAL: the unmount commits it.
  const fh = await w.volume.create('/late', 0o644, O_CREAT | O_RDWR);
  await w.volume.write(fh, data(20 * KiB, 5), 0);
  await w.volume.release(fh);
  let unmounted = false;
  const res = await relocate({
    config: w.config,
    source: { region: 'A', container: 'pg' },
    to: 'B',
    openStore: w.open, fenceSettleMs: 10,
    localMount: {
      mountpoint: '/mnt/pg',
      async unmount() {
        await w.volume.close();
        unmounted = true;
      },
    },
  });
  assert.ok(unmounted);
  assert.ok(res.plan.steps[0]!.includes('/mnt/pg'));
  const files = await withReadOnly(w.b, 'pg', fsFiles);
  assert.deepEqual(files.get('/late'), data(20 * KiB, 5));
});

test('failover: takes over what the replica holds, says what is lost, fences the old writer once its region answers', async () => {
  const w = await world();
  await writeSync(w.volume, '/replicated', data(100 * KiB, 1));
  const rep = new Replicator({ source: { store: w.a, container: 'pg', region: 'A' }, target: { store: w.b, container: 'pg', region: 'B' } });
  await rep.syncOnce();
  await writeSync(w.volume, '/late-1', data(10 * KiB, 2));
  await writeSync(w.volume, '/late-2', data(10 * KiB, 3));
  rep.noteSourceHead(w.volume.status().journalSeq);
  await rep.stop(); // writes the replica status: it saw the source ahead
  const sourceSeq = w.volume.status().journalSeq;

  w.a.goOffline();
  const req = { config: w.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w.open, fenceSettleMs: 10, probeTimeoutMs: 2000 };
  // Without --failover: refused, and the message says what a failover would do.
  await assert.rejects(relocate(req), (e: unknown) => e instanceof RelocateError && /does not answer/.test(e.message) && /--failover/.test(e.message));
  const plan = await planRelocation({ ...req, failover: true });
  assert.deepEqual(plan.refusals, []);
  assert.equal(plan.uuid, w.volume.uuid, 'the volume is found in the target without its source');

  const res = await relocate({ ...req, failover: true });
  assert.ok(res.done);
  assert.equal(res.pendingFence, true);
  assert.ok(res.loss);
  assert.equal(res.loss.sourceSeq, sourceSeq);
  assert.equal(res.loss.segmentsLost, sourceSeq - res.loss.takenSeq);
  assert.ok(res.loss.segmentsLost >= 2);
  assert.equal(res.loss.exact, false);
  assert.match(describeLoss(res.loss), /not in the target/);
  const files = await withReadOnly(w.b, 'pg', fsFiles);
  assert.ok(files.has('/replicated'));
  assert.ok(!files.has('/late-2'));
  assert.equal((await readPendingFences(w.b, 'pg'))?.fences.length, 1);
  const regions = await readRegions(w.b, 'pg');
  assert.equal(regions?.home.region, 'B');
  assert.equal(regions?.moves.at(-1)?.kind, 'failover');

  // The new home is usable.
  const vb = await Volume.open(w.b, 'pg', { cacheDir: await tempDir(), ...FAST });
  await writeSync(vb, '/after-failover', data(KiB, 9));
  const bDigest = await fsDigest(vb);
  await vb.close();

  // Region A answers again: the pending fence is applied; the old writer's next commit is refused.
  w.a.comeBack();
  const applied = await applyPendingFences({ store: w.b, container: 'pg' }, w.open);
  assert.equal(applied.length, 1);
  assert.ok(applied[0]!.applied);
  await assert.rejects(writeSync(w.volume, '/zombie', data(KiB, 7)), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
  assert.equal(await withReadOnly(w.b, 'pg', fsDigest), bDigest, 'the new home did not change');
  assert.equal(await readPendingFences(w.b, 'pg'), null);
  await w.volume.close({ abandon: true });
});

test('refusals: another volume under the name, a live owner in the target, another block size, the same region', async () => {
  const w = await world();
  await w.volume.close();
  // B has a container "pg" holding another volume.
  await Volume.format(w.b, 'pg', { createContainer: true });
  let plan = await planRelocation({ config: w.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w.open, fenceSettleMs: 10, targetContainer: 'pg' });
  assert.ok(plan.refusals.some((r) => /another volume/.test(r)), plan.refusals.join('; '));

  // A live owner of this volume in the target.
  const w2 = await world();
  const rep = new Replicator({ source: { store: w2.a, container: 'pg', region: 'A' }, target: { store: w2.b, container: 'pg', region: 'B' } });
  await rep.syncOnce();
  await rep.stop();
  await w2.volume.close();
  const squatter = await Volume.open(w2.b, 'pg', { cacheDir: await tempDir(), ...FAST });
  plan = await planRelocation({ config: w2.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w2.open, fenceSettleMs: 10 });
  assert.ok(plan.refusals.some((r) => /live owner/.test(r)), plan.refusals.join('; '));
  await squatter.close();

  // Same UUID, other block size: not the same layout.
  const w3 = await world();
  await w3.volume.close();
  await w3.b.createContainer('pg', { labels: { [UUID_LABEL]: w3.volume.uuid } });
  const format = JSON.parse((await w3.a.get('pg', FORMAT_KEY)).body.toString('utf8')) as Record<string, unknown>;
  await w3.b.put('pg', FORMAT_KEY, Buffer.from(JSON.stringify({ ...format, blockSize: 128 * KiB })));
  plan = await planRelocation({ config: w3.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w3.open, fenceSettleMs: 10 });
  assert.ok(plan.refusals.some((r) => /block size/.test(r)), plan.refusals.join('; '));

  await assert.rejects(planRelocation({ config: w3.config, source: { region: 'A', container: 'pg' }, to: 'A', openStore: w3.open, fenceSettleMs: 10 }), /already in region A/);
  // Failover with no replica at all.
  w3.a.goOffline();
  const w4 = await world();
  w4.a.goOffline();
  plan = await planRelocation({ config: w4.config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: w4.open, fenceSettleMs: 10, failover: true, probeTimeoutMs: 1000 });
  assert.ok(plan.refusals.some((r) => /no replica|no complete replica/.test(r)), plan.refusals.join('; '));
  w4.a.comeBack();
  await w4.volume.close();
});
