/**
 * A real FUSE mount replicating by itself, between the two test Swift servers (regions A and B):
 * `swiftfs mount swift://A/VOL DIR --replicas B` records B as a replica and ships every commit there;
 * `swiftfs status` (text and JSON) and the metrics show the replica caught up; files written right before
 * `swiftfs unmount` are in B when the unmount returns (the daemon drains its replicas before it exits), and B
 * holds exactly the files of the mount.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readJournalHead } from '../../src/region/journal.js';
import { readRegions } from '../../src/region/records.js';
import { uniqueName } from '../helpers/saio.js';
import { forceUnmount, skipFuse, startCliMount, swiftfs, waitFor } from '../helpers/mount.js';
import { fsFiles, withReadOnly } from '../unit/region-helpers.js';
import { dropContainer, regions } from './relocate-helpers.js';

interface StatusJson {
  mountpoint: string;
  volumeStatus: { journalSeq: number };
  regions: { region: string; replicating: boolean; replicas: { target: { region: string; container: string }; state: string; replicatedSeq: number; lagSeconds: number; lagBytes: number }[] } | null;
}

const METRICS_PORT = 24390;

test('a mount with --replicas B replicates every commit, shows the lag, and drains the replica on unmount', { timeout: 400_000 }, async (t) => {
  const fuse = skipFuse();
  if (fuse) {
    t.skip(fuse);
    return;
  }
  const r = await regions(t);
  if (!r) return;
  const container = uniqueName('mountrep');
  const mnt = join(r.dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  const env = { ...r.env, SWIFTFS_METRICS_LISTEN: `127.0.0.1:${METRICS_PORT}`, SWIFTFS_LOG_LEVEL: 'info' };
  try {
    const mount = await startCliMount(`swift://A/${container}`, mnt, ['--replicas', 'B', '--commit-interval', '200ms'], env);
    const written = new Map<string, string>();
    const put = async (name: string, size: number): Promise<void> => {
      const data = randomBytes(size);
      await writeFile(join(mnt, name), data);
      written.set(`/${name}`, createHash('sha256').update(data).digest('hex'));
    };
    await put('small.txt', 1000);
    await put('big.bin', 6 * 1024 * 1024);
    await mkdir(join(mnt, 'dir'));
    await put('dir/inner.bin', 300_000);

    // Status: the replica B, caught up with the mount's journal.
    let last: StatusJson | undefined;
    await waitFor('the replica in B to catch up', async () => {
      const st = await swiftfs(['status', mnt, '--json'], { env, timeoutMs: 30_000 });
      last = (JSON.parse(st.stdout) as StatusJson[])[0];
      const rep = last?.regions?.replicas[0];
      return rep !== undefined && rep.state === 'caught-up' && rep.replicatedSeq === last!.volumeStatus.journalSeq && last!.volumeStatus.journalSeq > 0;
    }, 120_000, 500);
    assert.equal(last?.regions?.region, 'A');
    assert.equal(last?.regions?.replicating, true);
    assert.deepEqual(last?.regions?.replicas[0]?.target, { region: 'B', container });
    assert.equal(last?.regions?.replicas[0]?.lagBytes, 0);
    const text = await swiftfs(['status', mnt], { env, timeoutMs: 30_000 });
    assert.match(text.stdout, new RegExp(`replica: B/${container} +caught-up, caught up, at #\\d+ of #\\d+`));
    assert.deepEqual((await readRegions(r.storeA, container))?.replicas.map((x) => x.region), ['B'], 'the option recorded the replica');

    // Metrics (published every 5 s).
    await waitFor('replica metrics', async () => {
      const body = await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`, { signal: AbortSignal.timeout(5000) }).then((res) => res.text()).catch(() => '');
      return new RegExp(`swiftfs_replica_up\\{volume="swift://A/${container}",replica="B/${container}"\\} 1`).test(body) && body.includes('swiftfs_replica_lag_seconds{');
    }, 30_000, 500);

    // Write right before the unmount: when it returns, B holds the final commit.
    for (let i = 0; i < 4; i++) await put(`late-${i}.bin`, 2 * 1024 * 1024);
    const un = await mount.unmount();
    assert.equal(un.code, 0, un.stderr);
    const headA = await readJournalHead(r.storeA, container);
    const headB = await readJournalHead(r.storeB, container);
    assert.equal(headB.seq, headA.seq, 'the replica holds the final commit when unmount returns');
    const files = await withReadOnly(r.storeB, container, (v) => fsFiles(v));
    const got = new Map([...files].map(([p, data]) => [p, createHash('sha256').update(data).digest('hex')]));
    assert.deepEqual(new Map([...got].filter(([p]) => written.has(p))), written, 'every file is in B, byte for byte');
    // The daemon said so in its log.
    const logs = (await swiftfs(['status', '--json'], { env, timeoutMs: 30_000 })).stdout;
    assert.equal(JSON.parse(logs).length, 0, 'the daemon exited');
    const { defaultLogFile } = await import('../../src/fuse/control.js');
    const log = await readFile(defaultLogFile(join(r.dir, 'run'), mnt), 'utf8').catch(() => '');
    assert.match(log, /the replicas hold the final commit/);
  } finally {
    await forceUnmount(mnt).catch(() => undefined);
    await dropContainer(r.storeA, container);
    await dropContainer(r.storeB, container);
    await r.close();
  }
});
