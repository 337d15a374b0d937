/**
 * A real FUSE mount replicating by itself, between the two test Swift servers (regions A and B):
 * `swiftfs mount swift://A/VOL DIR --replicas B` records B as a replica and ships every commit there;
 * `swiftfs status` (text and JSON) and the metrics show the replica caught up; files written right before
 * `swiftfs unmount` are in B when the unmount returns (the daemon drains its replicas before it exits), and B
 * holds exactly the files of the mount. And with region B down at unmount: the unmount waits (bounded) for
 * the replica, the mount point can be mounted again meanwhile, and the new mount catches B up once it is back.
 */

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readJournalHead } from '../../src/region/journal.js';
import { readRegions } from '../../src/region/records.js';
import { startProxy, stopProxy, uniqueName } from '../helpers/saio.js';
import { forceUnmount, isMounted, skipFuse, startCliMount, swiftfs, waitFor } from '../helpers/mount.js';
import { fsFiles, withReadOnly } from '../unit/region-helpers.js';
import { dropContainer, regions, type Regions } from './relocate-helpers.js';

interface StatusJson {
  mountpoint: string;
  volumeStatus: { journalSeq: number };
  regions: { region: string; replicating: boolean; replicas: { target: { region: string; container: string }; state: string; replicatedSeq: number; lagSeconds: number; lagBytes: number }[] } | null;
}

const METRICS_PORT = 24390;

interface MountTest {
  r: Regions;
  /** A fresh container name (the volume, in A and in B). */
  container: string;
  /** An empty mount point. */
  mnt: string;
  /** Runs `fn` first when the test ends (before the mount point is freed and the containers dropped). */
  onCleanup(fn: () => Promise<void>): void;
}

/**
 * Runs `body` with both test regions, a fresh container name and a mount point; skips without FUSE or the
 * servers (or without region B's SAIO directory, when `needsSaioB`); then unmounts, drops the container in both
 * regions and closes them.
 */
async function withMountTest(t: TestContext, prefix: string, opts: { needsSaioB?: boolean }, body: (m: MountTest) => Promise<void>): Promise<void> {
  const fuse = skipFuse();
  if (fuse) {
    t.skip(fuse);
    return;
  }
  const r = await regions(t);
  if (!r) return;
  if (opts.needsSaioB && !r.b.saioDir) {
    t.skip('needs SWIFTFS_TEST_SAIO_DIR_B to stop and start region B');
    await r.close();
    return;
  }
  const container = uniqueName(prefix);
  const mnt = join(r.dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  const cleanups: (() => Promise<void>)[] = [];
  try {
    await body({ r, container, mnt, onCleanup: (fn) => cleanups.push(fn) });
  } finally {
    for (const fn of cleanups) await fn().catch(() => undefined);
    await forceUnmount(mnt).catch(() => undefined);
    await dropContainer(r.storeA, container);
    await dropContainer(r.storeB, container);
    await r.close();
  }
}

test('a mount with --replicas B replicates every commit, shows the lag, and drains the replica on unmount', { timeout: 400_000 }, (t) =>
  withMountTest(t, 'mountrep', {}, async ({ r, container, mnt }) => {
    const env = { ...r.env, SWIFTFS_METRICS_LISTEN: `127.0.0.1:${METRICS_PORT}`, SWIFTFS_LOG_LEVEL: 'info' };
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
  }),
);

test('region B down at unmount: the unmount waits for it (bounded), the mount point can be used again meanwhile, the next mount catches B up', { timeout: 400_000 }, (t) =>
  withMountTest(t, 'mountrepdown', { needsSaioB: true }, async ({ r, container, mnt, onCleanup }) => {
    const saioB = r.b.saioDir!;
    const env = { ...r.env, SWIFTFS_LOG_LEVEL: 'info' };
    const args = ['--replicas', 'B', '--commit-interval', '200ms', '--replica-drain-timeout', '25s'];
    const status = async (): Promise<(StatusJson & { pid: number; state: string })[]> => JSON.parse((await swiftfs(['status', '--json'], { env, timeoutMs: 30_000 })).stdout) as (StatusJson & { pid: number; state: string })[];
    let bDown = false;
    onCleanup(async () => {
      if (bDown) await startProxy(saioB);
    });
    const first = await startCliMount(`swift://A/${container}`, mnt, args, env);
    await writeFile(join(mnt, 'one.txt'), 'one');
    await waitFor('B caught up', async () => (await status())[0]?.regions?.replicas[0]?.state === 'caught-up', 60_000, 500);
    await stopProxy(saioB);
    bDown = true;
    await writeFile(join(mnt, 'two.txt'), 'two');
    const firstPid = await first.pid();
    const started = Date.now();
    const unmounting = first.unmount(120_000);
    await waitFor('the first daemon to wait for its replica', async () => (await status()).some((m) => m.pid === firstPid && m.state === 'replicating'), 60_000, 200);
    assert.equal(await isMounted(mnt), false, 'the mount point is already free');

    // Mounted again while the first daemon still waits for B.
    const second = await startCliMount(`swift://A/${container}`, mnt, args, env);
    assert.equal(await readFile(join(mnt, 'two.txt'), 'utf8'), 'two');
    const now = await status();
    assert.equal(now.length, 1, 'status lists the new daemon');
    assert.notEqual(now[0]!.pid, firstPid);

    const un = await unmounting;
    assert.equal(un.code, 0, un.stderr);
    const waited = Date.now() - started;
    assert.ok(waited >= 20_000 && waited < 60_000, `the first unmount waited for B about replica-drain-timeout (${waited} ms)`);
    assert.match(un.stderr, /waiting for the replicas to hold it: B\//);

    // B back: the new mount catches it up.
    await startProxy(saioB);
    bDown = false;
    await writeFile(join(mnt, 'three.txt'), 'three');
    await waitFor('the new mount to catch B up', async () => {
      const st = (await status())[0];
      const rep = st?.regions?.replicas[0];
      return rep?.state === 'caught-up' && rep.replicatedSeq === st!.volumeStatus.journalSeq;
    }, 150_000, 1000);
    assert.equal((await second.unmount()).code, 0);
    assert.equal((await readJournalHead(r.storeB, container)).seq, (await readJournalHead(r.storeA, container)).seq);
    const files = await withReadOnly(r.storeB, container, (v) => fsFiles(v));
    assert.deepEqual([...files.keys()].sort(), ['/one.txt', '/three.txt', '/two.txt']);
  }),
);
