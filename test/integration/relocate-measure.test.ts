/**
 * Measurements (run with SWIFTFS_MEASURE=1; skipped otherwise, they take minutes): on the two test Swift
 * servers,
 *  - the replication lag (seconds and bytes) under a sustained write load, sampled from the writer's process;
 *  - a planned relocation of a 1 GiB volume whose replica followed it (warm), and of one with no replica (cold);
 *  - a failover of that volume back to A with B stopped.
 * The numbers are printed as test diagnostics. The assertions only check that the runs did what they claim
 * (every byte moved, lag bounded).
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Volume } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { loadConfig } from '../../src/config/load.js';
import { relocate } from '../../src/region/relocate.js';
import { startReplication } from '../../src/region/replication.js';
import { uniqueName, stopProxy, startProxy } from '../helpers/saio.js';
import { dropContainer, quantile, regions } from './relocate-helpers.js';

const MiB = 1024 * 1024;
const skip = process.env['SWIFTFS_MEASURE'] ? false : 'measurements: set SWIFTFS_MEASURE=1 to run them';

async function writeBig(v: Volume, path: string, bytes: number, chunk = 4 * MiB): Promise<string> {
  const hash = createHash('sha256');
  const fh = await v.create(path, 0o644, O_CREAT | O_RDWR);
  const block = randomBytes(chunk);
  for (let off = 0; off < bytes; off += chunk) {
    block.writeUInt32LE(off / chunk, 0); // every chunk different
    const n = Math.min(chunk, bytes - off);
    await v.write(fh, block.subarray(0, n), off);
    hash.update(block.subarray(0, n));
  }
  await v.fsync(fh, false);
  await v.release(fh);
  return hash.digest('hex');
}

async function sha(v: Volume, path: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await v.open(path, 0);
  const size = (await v.fgetattr(fh)).size;
  for (let off = 0; off < size; off += 4 * MiB) hash.update(await v.read(fh, Math.min(4 * MiB, size - off), off));
  await v.release(fh);
  return hash.digest('hex');
}

test('replication lag under a sustained write load', { skip, timeout: 600_000 }, async (t) => {
  const r = await regions(t);
  if (!r) return;
  const container = uniqueName('lag');
  try {
    await Volume.format(r.storeA, container, { createContainer: true });
    const v = await Volume.open(r.storeA, container, { cacheDir: join(r.dir, 'c'), cacheSize: 4096 * MiB, dirtyLimit: 256 * MiB });
    const rep = startReplication({ volume: v, store: r.storeA, region: 'A' }, [{ region: 'B', store: r.storeB, container }], { pollMs: 1000 });
    const samples: { lag: number; bytes: number }[] = [];
    const sampler = setInterval(() => {
      const s = rep.status()[0]!;
      samples.push({ lag: s.lagSeconds, bytes: s.lagBytes });
    }, 250);
    const seconds = 60;
    const until = Date.now() + seconds * 1000;
    let written = 0;
    // Four writers: 1 MiB writes, fsync every 8 MiB (a database-like steady load), plus small files.
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const chunk = randomBytes(MiB);
        for (let f = 0; Date.now() < until; f++) {
          const fh = await v.create(`/w${w}-${f}`, 0o644, O_CREAT | O_RDWR);
          for (let i = 0; i < 32 && Date.now() < until; i++) {
            chunk.writeUInt32LE(i, 0);
            await v.write(fh, chunk, i * MiB);
            written += MiB;
            if (i % 8 === 7) await v.fsync(fh, false);
          }
          await v.fsync(fh, false);
          await v.release(fh);
          const small = await v.create(`/small-${w}-${f}`, 0o644, O_CREAT | O_RDWR);
          await v.write(small, randomBytes(4096), 0);
          await v.release(small);
        }
      }),
    );
    await v.syncAll();
    const loadEnd = Date.now();
    await rep.drain(300_000);
    const drainMs = Date.now() - loadEnd;
    clearInterval(sampler);
    const lags = samples.map((s) => s.lag);
    const bytes = samples.map((s) => s.bytes);
    t.diagnostic(
      `sustained load: ${(written / MiB).toFixed(0)} MiB in ${seconds} s (${(written / MiB / seconds).toFixed(1)} MiB/s); replication lag p50 ${quantile(lags, 0.5).toFixed(2)} s, p95 ${quantile(lags, 0.95).toFixed(2)} s, max ${Math.max(...lags).toFixed(2)} s; ` +
        `bytes behind p50 ${(quantile(bytes, 0.5) / MiB).toFixed(1)} MiB, p95 ${(quantile(bytes, 0.95) / MiB).toFixed(1)} MiB, max ${(Math.max(...bytes) / MiB).toFixed(1)} MiB; drained ${drainMs} ms after the load stopped`,
    );
    assert.ok(quantile(lags, 0.5) < 30, 'the replica keeps up');
    await rep.stop();
    await v.close();
  } finally {
    await dropContainer(r.storeA, container);
    await dropContainer(r.storeB, container);
    await r.close();
  }
});

test('1 GiB volume: planned relocation (warm and cold replica) and failover', { skip, timeout: 1_800_000 }, async (t) => {
  const r = await regions(t);
  if (!r) return;
  const warm = uniqueName('gib-warm');
  const cold = uniqueName('gib-cold');
  const config = loadConfig({ env: {}, configFile: r.configFile });
  let bStopped = false;
  try {
    const sums = new Map<string, string>();
    for (const [container, replicate] of [[warm, true], [cold, false]] as const) {
      await Volume.format(r.storeA, container, { createContainer: true });
      const v = await Volume.open(r.storeA, container, { cacheDir: join(r.dir, `c-${container}`), cacheSize: 4096 * MiB });
      const rep = replicate ? startReplication({ volume: v, store: r.storeA, region: 'A' }, [{ region: 'B', store: r.storeB, container }], { pollMs: 1000 }) : null;
      const started = Date.now();
      for (let i = 0; i < 8; i++) sums.set(`${container}/f${i}`, await writeBig(v, `/f${i}`, 128 * MiB));
      t.diagnostic(`${container}: wrote 1 GiB in ${((Date.now() - started) / 1000).toFixed(1)} s${rep ? ` with replication (lag at the end ${rep.status()[0]!.lagSeconds.toFixed(1)} s)` : ''}`);
      await rep?.stop({ drain: true, timeoutMs: 600_000 });
      await v.close();
    }
    for (const container of [warm, cold]) {
      const res = await relocate({ config, source: { region: 'A', container }, to: 'B' });
      assert.ok(res.done);
      t.diagnostic(
        `planned relocate of 1 GiB (${container === warm ? 'replica caught up' : 'no replica: full copy'}): ${(res.durationMs / 1000).toFixed(1)} s ` +
          `(${res.phases.map((p) => `${p.phase} ${(p.ms / 1000).toFixed(1)} s`).join(', ')}); copied ${((res.catchUp?.copiedBytes ?? 0) / MiB).toFixed(0)} MiB`,
      );
      const vb = await Volume.open(r.storeB, container, { cacheDir: join(r.dir, `b-${container}`), readOnly: true, cacheSize: 4096 * MiB });
      for (let i = 0; i < 8; i++) assert.equal(await sha(vb, `/f${i}`), sums.get(`${container}/f${i}`), `${container}/f${i}`);
      await vb.close();
    }
    // Failover back to A (now a retired home, re-seeded as a replica first), with B stopped.
    const back = await import('../../src/region/replicator.js');
    const rep = new back.Replicator({ source: { store: r.storeB, container: warm, region: 'B' }, target: { store: r.storeA, container: warm, region: 'A' }, reset: true });
    const seedStart = Date.now();
    await rep.syncOnce();
    await rep.stop();
    t.diagnostic(`re-seeding the old home as a replica (identical objects kept): ${((Date.now() - seedStart) / 1000).toFixed(1)} s, copied ${(rep.status().copiedBytes / MiB).toFixed(1)} MiB`);
    await stopProxy(r.b.saioDir);
    bStopped = true;
    const fo = await relocate({ config, source: { region: 'B', container: warm }, to: 'A', failover: true, force: true, probeTimeoutMs: 10_000 });
    assert.ok(fo.done);
    t.diagnostic(`failover of the 1 GiB volume to A with B stopped: ${(fo.durationMs / 1000).toFixed(1)} s (${fo.phases.map((p) => `${p.phase} ${(p.ms / 1000).toFixed(1)} s`).join(', ')}); lost ${fo.loss?.segmentsLost ?? '?'} segments`);
    const va = await Volume.open(r.storeA, warm, { cacheDir: join(r.dir, 'a-check'), readOnly: true, cacheSize: 4096 * MiB });
    for (let i = 0; i < 8; i++) assert.equal(await sha(va, `/f${i}`), sums.get(`${warm}/f${i}`));
    await va.close();
  } finally {
    if (bStopped) await startProxy(r.b.saioDir).catch(() => undefined);
    for (const c of [warm, cold]) {
      await dropContainer(r.storeA, c);
      await dropContainer(r.storeB, c);
    }
    await r.close();
  }
});
