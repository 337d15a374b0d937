/**
 * What a read-write mount daemon starts for its regions (startMountRegionServices), on memory stores named A
 * and B (and C) in a config file: the replicas option is recorded in the regions record and replicated to, with
 * the lag in status() and in the metrics; stop({drain}) after the volume's close leaves the final commit in the
 * replica; a replica another replicator holds is waited for (then taken over); a replica recorded later is
 * picked up; a mount from a region that is not the recorded home does not replicate; an unknown region in the
 * option is an error before anything is written; a drain goes on through a replica region that is down for a
 * moment, and gives up at its deadline when it stays down.
 */

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, ConfigError, type Config } from '../../src/config/load.js';
import { openStore, resetMemoryStores } from '../../src/store/open.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { Volume } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { readJournalHead } from '../../src/region/journal.js';
import { readRegions } from '../../src/region/records.js';
import { addReplica } from '../../src/region/volume-regions.js';
import { Replicator } from '../../src/region/replicator.js';
import { recordReplicas, startMountRegionServices, startReplication, type RegionServices } from '../../src/region/replication.js';
import { FaultyStore } from '../../src/store/faulty-store.js';
import { replicationGauges } from '../../src/region/replication-metrics.js';
import { metricsText } from '../../src/metrics.js';
import { FAST, KiB, fsDigest, tempDir, withReadOnly } from './region-helpers.js';

interface World {
  config: Config;
  a: ObjectStore;
  b: ObjectStore;
  c: ObjectStore;
  volume: Volume;
}

async function world(): Promise<World> {
  resetMemoryStores();
  const dir = await tempDir();
  const file = join(dir, 'swiftfs.yaml');
  writeFileSync(file, 'stores:\n  A:\n    type: memory\n  B:\n    type: memory\n  C:\n    type: memory\n', { mode: 0o600 });
  const config = loadConfig({ env: {}, configFile: file });
  const a = await openStore(config, 'A');
  const b = await openStore(config, 'B');
  const c = await openStore(config, 'C');
  await Volume.format(a, 'pg', { createContainer: true, blockSize: 64 * KiB });
  const volume = await Volume.open(a, 'pg', { cacheDir: await tempDir(), ...FAST });
  return { config, a, b, c, volume };
}

async function writeFile(v: Volume, p: string, size: number, seed: number): Promise<void> {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 13 + seed) & 0xff;
  const fh = await v.create(p, 0o644, O_CREAT | O_RDWR);
  try {
    await v.write(fh, data, 0);
    await v.fsync(fh, false);
  } finally {
    await v.release(fh);
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const FASTREP = { pollMs: 50, watchMs: 20, busyRetryMs: 100, recordPollMs: 100 };

beforeEach(() => resetMemoryStores());

test('the replicas option is recorded and replicated; status and metrics show the lag; drain leaves the final commit in the replica', async () => {
  const w = await world();
  const services = startMountRegionServices(w.config, { volume: w.volume, store: w.a, region: 'A' }, { ...FASTREP, replicas: ['B'] });
  try {
    assert.equal(services.status().region, 'A');
    await writeFile(w.volume, '/one', 100 * KiB, 1);
    await until('a recorded replica B caught up', () => {
      const st = services.status();
      return st.replicating && st.replicas.length === 1 && st.replicas[0]!.state === 'caught-up' && st.replicas[0]!.replicatedSeq === w.volume.status().journalSeq;
    });
    const rec = await readRegions(w.a, 'pg');
    assert.deepEqual(rec?.home, { region: 'A', container: 'pg' });
    assert.deepEqual(rec?.replicas.map((r) => [r.region, r.container, r.mode]), [['B', 'pg', 'swiftfs']]);
    const st = services.status();
    assert.deepEqual(st.home, { region: 'A', container: 'pg' });
    assert.equal(st.replicas[0]!.lagSeconds, 0);
    assert.equal(st.replicas[0]!.lagBytes, 0);
    assert.deepEqual(st.replicas[0]!.target, { region: 'B', container: 'pg' });

    // Metrics: one series per replica, removed with the mount.
    const gauges = replicationGauges('mem://A/pg');
    gauges.publish(st.replicas);
    const text = await metricsText();
    assert.match(text, /swiftfs_replica_lag_seconds\{volume="mem:\/\/A\/pg",replica="B\/pg"\} 0/);
    assert.match(text, /swiftfs_replica_up\{volume="mem:\/\/A\/pg",replica="B\/pg"\} 1/);
    assert.match(text, new RegExp(`swiftfs_replica_replicated_seq\\{volume="mem://A/pg",replica="B/pg"\\} ${st.replicas[0]!.replicatedSeq}`));
    gauges.remove();
    assert.doesNotMatch(await metricsText(), /replica="B\/pg"/);

    // More changes, then the end as the daemon does it: close the volume (final commit), drain, stop.
    for (let i = 0; i < 5; i++) await writeFile(w.volume, `/more-${i}`, 200 * KiB, i);
    const digest = await fsDigest(w.volume);
    await w.volume.close();
    const finalSeq = (await readJournalHead(w.a, 'pg')).seq;
    await services.stop({ drain: true, timeoutMs: 20_000 });
    assert.equal((await readJournalHead(w.b, 'pg')).seq, finalSeq, 'the replica holds the final commit');
    assert.equal(await withReadOnly(w.b, 'pg', (v) => fsDigest(v)), digest, 'and the same files');
  } finally {
    await services.stop().catch(() => undefined);
    await w.volume.close().catch(() => undefined);
  }
});

test('recordReplicas: an unknown region is an error before anything is written; the home region and recorded replicas are skipped', async () => {
  const w = await world();
  try {
    const mounted = { volume: w.volume, store: w.a, region: 'A' };
    await assert.rejects(recordReplicas(w.config, mounted, ['B', 'mars']), (err: unknown) => err instanceof ConfigError && /mars/.test(err.message));
    assert.equal(await readRegions(w.a, 'pg'), null, 'nothing recorded');
    assert.deepEqual(await recordReplicas(w.config, mounted, ['A', 'B']), ['B']);
    assert.deepEqual(await recordReplicas(w.config, mounted, ['B', 'C']), ['C']);
    assert.deepEqual((await readRegions(w.a, 'pg'))?.replicas.map((r) => r.region), ['B', 'C']);
  } finally {
    await w.volume.close();
  }
});

test('a replica another replicator holds is waited for, then replicated once that one lets go', async () => {
  const w = await world();
  await writeFile(w.volume, '/x', 64 * KiB, 3);
  // A standalone replicator (as `swiftfs replicate` would be) holds B.
  const other = new Replicator({ source: { store: w.a, container: 'pg', region: 'A' }, target: { store: w.b, container: 'pg', region: 'B' } });
  other.start(50);
  await until('the standalone replicator caught up', () => other.status().state === 'caught-up');
  let services: RegionServices | null = null;
  try {
    await addReplica(w.a, { region: 'A', container: 'pg' }, w.volume.uuid, { region: 'B', container: 'pg' }, 'swiftfs');
    services = startMountRegionServices(w.config, { volume: w.volume, store: w.a, region: 'A' }, FASTREP);
    await until('the mount reports it waits for the other replicator', () => /waiting: .*another replicator/.test(services!.status().replicas[0]?.lastError ?? ''));
    assert.equal(services.status().replicas[0]!.state, 'error');
    await other.stop(); // releases its lease
    await writeFile(w.volume, '/y', 64 * KiB, 4);
    await until('the mount replicates to B itself', () => {
      const r = services!.status().replicas[0];
      return r?.state === 'caught-up' && r.replicatedSeq === w.volume.status().journalSeq && r.lastError === undefined;
    });
  } finally {
    await other.stop();
    await services?.stop();
    await w.volume.close();
  }
});

test('a replica recorded while mounted is picked up; one removed from the record is stopped', async () => {
  const w = await world();
  const services = startMountRegionServices(w.config, { volume: w.volume, store: w.a, region: 'A' }, FASTREP);
  try {
    await until('services started', () => services.status().note !== 'starting');
    assert.equal(services.status().replicas.length, 0);
    await addReplica(w.a, { region: 'A', container: 'pg' }, w.volume.uuid, { region: 'C', container: 'pg-copy' }, 'swiftfs');
    await writeFile(w.volume, '/z', 64 * KiB, 5);
    await until('C caught up', () => services.status().replicas[0]?.state === 'caught-up' && services.status().replicas[0]?.replicatedSeq === w.volume.status().journalSeq);
    assert.deepEqual(services.status().replicas[0]!.target, { region: 'C', container: 'pg-copy' });
    assert.equal((await readJournalHead(w.c, 'pg-copy')).seq, w.volume.status().journalSeq);
    const rec = (await readRegions(w.a, 'pg'))!;
    const { writeRegions } = await import('../../src/region/records.js');
    await writeRegions(w.a, 'pg', { ...rec, replicas: [] });
    await until('C no longer replicated', () => services.status().replicas.length === 0);
  } finally {
    await services.stop();
    await w.volume.close();
  }
});

test('a mount from a region that is not the recorded home does not replicate, and says why', async () => {
  const w = await world();
  try {
    await addReplica(w.a, { region: 'C', container: 'pg' }, w.volume.uuid, { region: 'B', container: 'pg' }, 'swiftfs');
    const services = startMountRegionServices(w.config, { volume: w.volume, store: w.a, region: 'A' }, { ...FASTREP, replicas: ['B'] });
    await until('services started', () => services.status().note !== 'starting');
    const st = services.status();
    assert.equal(st.replicating, false);
    assert.match(st.note ?? '', /recorded home is C\/pg: not replicating/);
    assert.equal(st.replicas.length, 0);
    await services.stop({ drain: true, timeoutMs: 1000 });
    assert.equal((await readJournalHead(w.b, 'pg').catch(() => ({ seq: -1 }))).seq, -1, 'nothing was written to B');
  } finally {
    await w.volume.close();
  }
});

test('a drain goes on through a replica region down for a moment, and gives up at its deadline when it stays down', async () => {
  const w = await world();
  const b = new FaultyStore(w.b);
  const handle = startReplication({ volume: w.volume, store: w.a, region: 'A' }, [{ region: 'B', store: b, container: 'pg' }], { pollMs: 50, watchMs: 20 });
  try {
    await writeFile(w.volume, '/a', 64 * KiB, 1);
    await until('B caught up', () => handle.status()[0]?.state === 'caught-up' && handle.status()[0]?.replicatedSeq === w.volume.status().journalSeq);
    b.goOffline();
    await writeFile(w.volume, '/b', 64 * KiB, 2);
    await w.volume.close();
    const finalSeq = (await readJournalHead(w.a, 'pg')).seq;
    setTimeout(() => b.comeBack(), 700);
    const t0 = Date.now();
    const [st] = await handle.drain(10_000);
    assert.ok(Date.now() - t0 >= 600, 'it waited for B to come back');
    assert.equal(st!.replicatedSeq, finalSeq);
    assert.equal((await readJournalHead(w.b, 'pg')).seq, finalSeq);

    // Down for good: the drain ends at its deadline with the store's error.
    b.goOffline();
    const t1 = Date.now();
    await assert.rejects(handle.drain(1500), /Unavailable|offline|unavailable/i);
    const took = Date.now() - t1;
    assert.ok(took >= 1000 && took < 6000, `gave up near the deadline (${took} ms)`);
  } finally {
    b.comeBack();
    await handle.stop();
    await w.volume.close().catch(() => undefined);
  }
});
