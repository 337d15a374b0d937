/**
 * A replica kept by Swift itself (container sync between the two test Swift servers): swiftfs only checks and
 * reports ("store" mode). `swiftfs replicate --mode store` records it; a mount's region services report it
 * caught up, then lagging (with the segments and seconds behind) while the sync is broken, then caught up
 * again; the replica then holds exactly the source's files.
 *
 * Opt-in: both servers need container sync (scripts/swift-saio.sh sync-on DIR REALMS, the same realms file
 * naming both proxies); without it the test skips and says how to turn it on.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Volume } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { loadConfig } from '../../src/config/load.js';
import { readRegions } from '../../src/region/records.js';
import { startMountRegionServices } from '../../src/region/replication.js';
import { uniqueName } from '../helpers/saio.js';
import { swiftfs, waitFor, tempDir } from '../helpers/mount.js';
import type { SwiftTestEnv } from '../helpers/swift-env.js';
import { fsDigest, withReadOnly, FAST } from '../unit/region-helpers.js';
import { dropContainer, regions } from './relocate-helpers.js';

interface Realm {
  name: string;
  key: string;
  clusters: Map<string, string>;
}

/** The container-sync realm of an instance (its DIR/container-sync-realms.conf), if sync-on was run. */
function readRealm(saioDir: string | undefined): Realm | undefined {
  if (!saioDir) return undefined;
  let text: string;
  try {
    text = readFileSync(`${saioDir}/container-sync-realms.conf`, 'utf8');
  } catch {
    return undefined;
  }
  let realm: Realm | undefined;
  for (const line of text.split('\n')) {
    const section = /^\[(.+)\]\s*$/.exec(line.trim());
    if (section) {
      if (realm) break;
      realm = { name: section[1]!, key: '', clusters: new Map() };
      continue;
    }
    const kv = /^([a-z0-9_]+)\s*=\s*(\S+)/i.exec(line.trim());
    if (!realm || !kv) continue;
    if (kv[1] === 'key') realm.key = kv[2]!;
    else if (kv[1]!.startsWith('cluster_')) realm.clusters.set(kv[1]!.slice('cluster_'.length), kv[2]!);
  }
  return realm;
}

async function session(env: SwiftTestEnv): Promise<{ token: string; url: string }> {
  const res = await fetch(env.authUrl, { headers: { 'X-Auth-User': env.user, 'X-Auth-Key': env.key }, signal: AbortSignal.timeout(10_000) });
  const token = res.headers.get('x-auth-token');
  const url = res.headers.get('x-storage-url');
  if (!res.ok || !token || !url) throw new Error(`auth failed: ${res.status}`);
  return { token, url };
}

async function containerSync(env: SwiftTestEnv, container: string, headers: Record<string, string>): Promise<void> {
  const s = await session(env);
  const res = await fetch(`${s.url}/${encodeURIComponent(container)}`, { method: 'PUT', headers: { 'X-Auth-Token': s.token, ...headers }, signal: AbortSignal.timeout(10_000) });
  if (res.status >= 300) throw new Error(`container sync headers on ${container}: HTTP ${res.status}`);
}

async function put(v: Volume, p: string, size: number, seed: number): Promise<void> {
  const data = Buffer.alloc(size, seed & 0xff);
  const fh = await v.create(p, 0o644, O_CREAT | O_RDWR);
  try {
    await v.write(fh, data, 0);
    await v.fsync(fh, false);
  } finally {
    await v.release(fh);
  }
}

test('a replica kept by Swift container sync: swiftfs records it, reports its lag, and it holds the same files', { timeout: 300_000 }, async (t) => {
  const r = await regions(t);
  if (!r) return;
  const realmA = readRealm(r.a.saioDir);
  const realmB = readRealm(r.b.saioDir);
  const portB = new URL(r.b.authUrl).port;
  const clusterB = realmA ? [...realmA.clusters].find(([, url]) => new URL(url).port === portB)?.[0] : undefined;
  if (!realmA || !realmB || realmA.name !== realmB.name || realmA.key !== realmB.key || !clusterB) {
    await r.close();
    t.skip('needs container sync between the test servers: scripts/swift-saio.sh sync-on DIR REALMS on both, with one realms file naming both proxies (cluster_NAME = http://127.0.0.1:PORT/v1/)');
    return;
  }
  const container = uniqueName('csync');
  const syncKey = `k-${container}`;
  let volume: Volume | undefined;
  let services: ReturnType<typeof startMountRegionServices> | undefined;
  try {
    // B accepts syncs signed with the key; A sends its objects there.
    await containerSync(r.b, container, { 'X-Container-Sync-Key': syncKey });
    await Volume.format(r.storeA, container, { createContainer: true, blockSize: 256 * 1024 });
    const account = new URL((await session(r.b)).url).pathname.split('/')[2]!;
    await containerSync(r.a, container, { 'X-Container-Sync-Key': syncKey, 'X-Container-Sync-To': `//${realmA.name}/${clusterB}/${account}/${container}` });

    volume = await Volume.open(r.storeA, container, { cacheDir: await tempDir('swiftfs-csync-'), ...FAST });
    for (let i = 0; i < 5; i++) await put(volume, `/f${i}`, 300_000, i);

    // `swiftfs replicate --mode store` records the replica and reports (it never writes B).
    const rep = await swiftfs(['replicate', `swift://A/${container}`, '--to', 'B', '--mode', 'store', '--once'], { env: r.env, timeoutMs: 60_000 });
    assert.equal(rep.code, 0, rep.stderr);
    assert.match(rep.stdout, new RegExp(`B/${container}: (caught-up|syncing)`));
    assert.deepEqual((await readRegions(r.storeA, container))?.replicas.map((x) => [x.region, x.mode]), [['B', 'store']]);

    // The mount's region services monitor it.
    const config = loadConfig({ env: {}, configFile: r.configFile });
    services = startMountRegionServices(config, { volume, store: r.storeA, region: 'A' }, { monitorMs: 500 });
    await waitFor('the store replica to be caught up', () => {
      const st = services!.status().replicas[0];
      return st?.mode === 'store' && st.state === 'caught-up' && st.replicatedSeq === volume!.status().journalSeq;
    }, 90_000, 250);

    // Break the sync (B no longer accepts the key): the replica falls behind, and swiftfs says by how much.
    await containerSync(r.b, container, { 'X-Container-Sync-Key': `${syncKey}-wrong` });
    for (let i = 5; i < 8; i++) await put(volume, `/f${i}`, 200_000, i);
    await new Promise((res) => setTimeout(res, 4000)); // two sync passes fail
    await waitFor('the lag to show', () => {
      const st = services!.status().replicas[0];
      return st?.state === 'syncing' && st.pendingSegments > 0 && st.lagSeconds > 0 && st.lagBytes > 0;
    }, 30_000, 250);
    const lagging = services.status().replicas[0]!;
    assert.ok(lagging.replicatedSeq < lagging.sourceSeq, `B behind: at ${lagging.replicatedSeq} of ${lagging.sourceSeq}`);

    // Mend it: caught up again, and B holds the same files as A.
    await containerSync(r.b, container, { 'X-Container-Sync-Key': syncKey });
    await waitFor('the store replica to catch up again', () => {
      const st = services!.status().replicas[0];
      return st?.state === 'caught-up' && st.replicatedSeq === volume!.status().journalSeq;
    }, 90_000, 250);
    const digestA = await fsDigest(volume);
    assert.equal(await withReadOnly(r.storeB, container, (v) => fsDigest(v)), digestA);
  } finally {
    await services?.stop().catch(() => undefined);
    await volume?.close().catch(() => undefined);
    await containerSync(r.a, container, { 'X-Container-Sync-To': '' }).catch(() => undefined);
    await dropContainer(r.storeA, container);
    await dropContainer(r.storeB, container);
    await r.close();
  }
});
