/**
 * Failover between two real Swift servers (regions A and B):
 *  - a writer process replicating to B is killed hard during a write load, region A is stopped, and
 *    `swiftfs relocate --failover` takes the volume over in B: the volume opens there, it is consistent, every
 *    file whose fsync returned before the reported point is there with its bytes; when A comes back the new
 *    owner fences it, the old writer (its own cache) is refused, and B does not change;
 *  - a writer that is still running in A when B takes over: once A answers again and the pending fence is
 *    applied, its writes are refused and B does not change; its own replicator stops by itself.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Volume, VolumeBusyError } from '../../src/core/volume.js';
import { FsError } from '../../src/core/errors.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { loadConfig } from '../../src/config/load.js';
import { relocate } from '../../src/region/relocate.js';
import { startReplication } from '../../src/region/replication.js';
import { applyPendingFences, watchPendingFences } from '../../src/region/fence.js';
import { readPendingFences } from '../../src/region/records.js';
import { stopProxy, startProxy, uniqueName } from '../helpers/saio.js';
import { swiftfs, waitFor } from '../helpers/mount.js';
import { checkContainerConsistent, fsDigest, fsFiles } from '../unit/region-helpers.js';
import { dropContainer, readLog, regions } from './relocate-helpers.js';
import { fileContent, type WriterAck } from './relocate-writer.js';

const WRITER = join(dirname(fileURLToPath(import.meta.url)), 'relocate-writer.js');

interface LogLine {
  ack?: WriterAck;
  status?: { replicatedSeq: number; lagSeconds: number; lagBytes: number; state: string };
  opened?: boolean;
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

test('writer killed hard, region A stopped, failover to B: consistent, nothing older than the reported point missing; the old writer is refused when A returns', { timeout: 540_000 }, async (t) => {
  const r = await regions(t);
  if (!r) return;
  const container = uniqueName('failover');
  const cacheDir = join(r.dir, 'writer-cache');
  const logFile = join(r.dir, 'writer.log');
  let aStopped = false;
  try {
    await Volume.format(r.storeA, container, { createContainer: true });
    const child = spawn(process.execPath, [WRITER, container, cacheDir, logFile, '256'], { env: process.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await waitFor(
        'the writer to have acknowledged 40 files with the replica following',
        () => {
          if (child.exitCode !== null) throw new Error(`writer exited ${child.exitCode}: ${stderr}`);
          const lines = readLog<LogLine>(logFile);
          const acks = lines.filter((l) => l.ack).length;
          const replicated = lines.some((l) => l.status && l.status.replicatedSeq > 5);
          return acks >= 40 && replicated;
        },
        180_000,
        200,
      );
      await new Promise((res) => setTimeout(res, 500 + Math.floor(Math.random() * 2500)));
    } finally {
      child.kill('SIGKILL');
    }
    await once(child, 'exit').catch(() => undefined);
    const killedAt = Date.now();
    const lines = readLog<LogLine>(logFile);
    const acks = lines.flatMap((l) => (l.ack ? [l.ack] : []));
    const lags = lines.flatMap((l) => (l.status ? [l.status.lagSeconds] : []));

    await stopProxy(r.a.saioDir);
    aStopped = true;

    // Without --failover: refused, saying why.
    const refused = await swiftfs(['relocate', `swift://A/${container}`, '--to', 'B', '--yes'], { env: r.env, timeoutMs: 180_000 });
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stdout, /does not answer/);
    assert.match(refused.stdout, /--failover/);

    const res = await swiftfs(['relocate', `swift://A/${container}`, '--to', 'B', '--failover', '--yes', '--json'], { env: r.env, timeoutMs: 180_000 });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const out = JSON.parse(res.stdout) as { loss: { takenSeq: number; takenTime: number; sourceSeq: number; segmentsLost: number; lagSeconds: number; recentMaxLagSeconds: number | null; exact: boolean }; pendingFence: boolean; durationMs: number; home: { region: string; container: string } };
    assert.equal(out.pendingFence, true);
    assert.deepEqual(out.home, { region: 'B', container });
    assert.equal(out.loss.exact, false);

    // The volume in B: consistent, and every file acknowledged before the reported point is there, intact.
    const head = await checkContainerConsistent(r.storeB, container);
    assert.ok(head !== null && head >= out.loss.takenSeq);
    const newOwnerCache = join(r.dir, 'new-owner-cache');
    const vb = await Volume.open(r.storeB, container, { cacheDir: newOwnerCache, commitIntervalMs: 200 });
    const files = await fsFiles(vb);
    let mustHave = 0;
    let missingAfterPoint = 0;
    for (const ack of acks) {
      const got = files.get(ack.path);
      if (ack.at <= out.loss.takenTime) {
        mustHave++;
        assert.ok(got, `${ack.path} was acknowledged at ${new Date(ack.at).toISOString()}, before the reported point ${new Date(out.loss.takenTime).toISOString()}, but is missing`);
        assert.equal(createHash('sha256').update(got).digest('hex'), ack.sha, `${ack.path} content`);
      } else if (!got) missingAfterPoint++;
    }
    for (const [path, data] of files) {
      const n = Number(/\/load\/f(\d+)$/.exec(path)?.[1]);
      assert.ok(Number.isInteger(n), `unexpected file ${path}`);
      assert.ok(data.equals(fileContent(n, data.length)), `${path} holds bytes the writer never wrote`);
    }
    assert.ok(mustHave >= 30, `most acknowledged files predate the failover point (${mustHave} of ${acks.length})`);
    // Under a continuous write load the replica is always a little behind: the report says by how much.
    assert.ok(out.loss.lagSeconds > 0, 'a non-zero replication lag is reported');
    const olderThanLag = acks.filter((a) => a.at <= killedAt - out.loss.lagSeconds * 1000);
    const olderMissing = olderThanLag.filter((a) => !files.has(a.path)).length;
    t.diagnostic(
      `failover: ${acks.length} files acknowledged, ${mustHave} before the point (all present), ${missingAfterPoint} after it missing; ` +
        `reported lag ${out.loss.lagSeconds.toFixed(2)} s (${out.loss.segmentsLost} segments known lost), point ${((killedAt - out.loss.takenTime) / 1000).toFixed(2)} s before the kill; ` +
        `${olderThanLag.length - olderMissing}/${olderThanLag.length} files acknowledged more than the reported lag before the kill are there; ` +
        `replication lag while writing p50 ${median(lags).toFixed(2)} s max ${Math.max(0, ...lags).toFixed(2)} s; relocate --failover took ${res.ms} ms (library ${out.durationMs} ms)`,
    );
    await writeSync(vb, '/written-in-b', Buffer.from('new home'));
    const digest = await fsDigest(vb);

    // Region A comes back: the new owner applies the pending fence; the old writer (with its cache) is refused.
    const watcher = watchPendingFences({ store: r.storeB, container }, async () => r.storeA, { intervalMs: 500 });
    await startProxy(r.a.saioDir);
    aStopped = false;
    const keepAlive = setInterval(() => undefined, 1000);
    await Promise.race([watcher.done, new Promise((_, rej) => setTimeout(() => rej(new Error('pending fence not applied within 90 s')), 90_000))]).finally(() => {
      clearInterval(keepAlive);
      watcher.stop();
    });
    assert.equal(await readPendingFences(r.storeB, container), null);
    await assert.rejects(Volume.open(r.storeA, container, { cacheDir }), (e: unknown) => e instanceof VolumeBusyError && /relocated to region B/.test(e.message));
    assert.equal(await fsDigest(vb), digest, 'the volume in B did not change');
    await vb.close();
  } finally {
    if (aStopped) await startProxy(r.a.saioDir).catch(() => undefined);
    await dropContainer(r.storeA, container);
    await dropContainer(r.storeB, container);
    await r.close();
  }
});

test('a writer still running in A when B takes over: refused once A answers and is fenced; B unchanged; its replicator stops', { timeout: 400_000 }, async (t) => {
  const r = await regions(t);
  if (!r) return;
  const container = uniqueName('zombie');
  let aStopped = false;
  const config = loadConfig({ env: {}, configFile: r.configFile });
  try {
    await Volume.format(r.storeA, container, { createContainer: true });
    const va = await Volume.open(r.storeA, container, { cacheDir: join(r.dir, 'old-writer'), commitIntervalMs: 100 });
    const replication = startReplication({ volume: va, store: r.storeA, region: 'A' }, [{ region: 'B', store: r.storeB, container }], { pollMs: 300 });
    for (let i = 0; i < 10; i++) await writeSync(va, `/f${i}`, Buffer.alloc(64 * 1024, i));
    await replication.drain(60_000);

    await stopProxy(r.a.saioDir);
    aStopped = true;
    // The old writer goes on (into its local log; its commits wait for the store).
    const fh = await va.create('/while-a-is-down', 0o644, O_CREAT | O_RDWR);
    await va.write(fh, Buffer.alloc(1000, 7), 0);
    await va.release(fh);

    const res = await relocate({ config, source: { region: 'A', container }, to: 'B', failover: true, probeTimeoutMs: 5000 });
    assert.ok(res.done);
    assert.equal(res.pendingFence, true);
    const vb = await Volume.open(r.storeB, container, { cacheDir: join(r.dir, 'new-owner') });
    await writeSync(vb, '/new-home', Buffer.from('b'));
    const digest = await fsDigest(vb);
    await vb.close();

    await startProxy(r.a.saioDir);
    aStopped = false;
    const applied = await applyPendingFences({ store: r.storeB, container }, async () => r.storeA);
    assert.equal(applied.length, 1);
    assert.ok(applied[0]!.applied, applied[0]!.error);
    // The old writer's changes are refused from now on (a commit of its own may have landed in A before the fence).
    let refused: unknown = null;
    const until = Date.now() + 60_000;
    while (!refused && Date.now() < until) {
      try {
        await writeSync(va, `/zombie-${Date.now()}`, Buffer.from('z'));
      } catch (err) {
        refused = err;
      }
    }
    assert.ok(refused instanceof FsError && refused.code === 'EROFS', `old writer refused with EROFS (${String(refused)})`);
    await waitFor('the old writer\'s replicator to stop', () => ['taken-over', 'stopped', 'diverged'].includes(replication.status()[0]!.state), 60_000, 200);
    assert.equal(await fsDigest((await Volume.open(r.storeB, container, { cacheDir: join(r.dir, 'ro'), readOnly: true }))), digest, 'the volume in B did not change');
    await replication.stop();
    await va.close({ abandon: true }).catch(() => undefined);
  } finally {
    if (aStopped) await startProxy(r.a.saioDir).catch(() => undefined);
    await dropContainer(r.storeA, container);
    await dropContainer(r.storeB, container);
    await r.close();
  }
});

function median(values: number[]): number {
  if (!values.length) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
