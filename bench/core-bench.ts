/**
 * Benchmark of the filesystem core (Volume) against a real Swift, without FUSE: what the doors can get at best.
 *
 *   node dist/bench/core-bench.js [--api swift|s3] [--seq-mib 1024] [--files 1000] [--random 4096]
 *
 * Needs SWIFTFS_TEST_ST_AUTH/_USER/_KEY (and SWIFTFS_TEST_S3_ENDPOINT for --api s3), or ST_AUTH/ST_USER/ST_KEY.
 * Measures:
 *  - small files: create+write(1 KiB)+close, stat, unlink per second (and the syncAll that makes them durable);
 *  - sequential write of a big file in 1 MiB writes until fsync returns (MiB/s to durable);
 *  - sequential read of it: cold (a new read-only mount on an empty cache dir) and warm (again, same mount);
 *  - 4 KiB random writes in a 256 MiB file with an fsync every 64 writes, fsync remote and local (IOPS);
 *  - 4 KiB random reads in the big file, warm (IOPS).
 */

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { Volume } from '../src/core/volume.js';
import { O_CREAT, O_RDONLY, O_RDWR } from '../src/core/types.js';
import { createSwiftStore } from '../src/store/swift/swift-store.js';
import { createS3Store } from '../src/store/s3/s3-store.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { listAll } from '../src/store/object-store.js';
import { xorshiftRng } from '../test/helpers/rng.js';

const MiB = 1024 * 1024;
const KiB = 1024;

function env(name: string): string | undefined {
  return process.env[`SWIFTFS_TEST_${name}`] ?? process.env[name];
}

function makeStore(api: string): ObjectStore {
  const authUrl = env('ST_AUTH');
  const user = env('ST_USER');
  const key = env('ST_KEY');
  if (!authUrl || !user || !key) throw new Error('set SWIFTFS_TEST_ST_AUTH/_USER/_KEY (or ST_AUTH/ST_USER/ST_KEY)');
  if (api === 's3') {
    const endpoint = process.env.SWIFTFS_TEST_S3_ENDPOINT ?? new URL(authUrl).origin;
    return createS3Store({ endpoint, accessKeyId: user, secretAccessKey: key, requestTimeoutMs: 60_000 });
  }
  return createSwiftStore({ auth: { type: 'tempauth', authUrl, user, key }, requestTimeoutMs: 60_000 });
}


async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = process.hrtime.bigint();
  const out = await fn();
  return [out, Number(process.hrtime.bigint() - t) / 1e9];
}

interface Row {
  what: string;
  value: string;
  detail: string;
}

async function main(): Promise<void> {
  const program = new Command()
    .option('--api <api>', 'swift or s3', 'swift')
    .option('--seq-mib <n>', 'size of the sequential file in MiB', '1024')
    .option('--files <n>', 'small files', '1000')
    .option('--random <n>', 'random 4 KiB writes per mode', '4096')
    .option('--keep', 'keep the container')
    .parse();
  const o = program.opts<{ api: string; seqMib: string; files: string; random: string; keep?: boolean }>();
  const store = makeStore(o.api);
  const container = `core-bench-${Date.now().toString(36)}`;
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'swiftfs-core-bench-'));
  const rows: Row[] = [];
  const add = (what: string, value: string, detail = '') => {
    rows.push({ what, value, detail });
    console.log(`${what.padEnd(48)} ${value.padStart(14)}  ${detail}`);
  };
  const openOpts = { cacheSize: 4096 * MiB, dirtyLimit: 256 * MiB };
  try {
    await Volume.format(store, container, { createContainer: true });
    let v = await Volume.open(store, container, { cacheDir: path.join(work, 'a'), ...openOpts });

    // ---- small files
    const nFiles = Number(o.files);
    const small = Buffer.alloc(1024, 7);
    await v.mkdir('/small', 0o755);
    const [, tCreate] = await timed(async () => {
      for (let i = 0; i < nFiles; i++) {
        const fh = await v.create(`/small/f${i}`, 0o644, O_CREAT | O_RDWR);
        await v.write(fh, small, 0);
        await v.flush(fh);
        await v.release(fh);
      }
    });
    const [, tCreateSync] = await timed(() => v.syncAll());
    add('small files: create+write 1 KiB+close', `${(nFiles / tCreate).toFixed(0)} ops/s`, `${nFiles} files in ${tCreate.toFixed(2)} s, then syncAll ${tCreateSync.toFixed(2)} s`);
    const [, tStat] = await timed(async () => {
      for (let i = 0; i < nFiles; i++) await v.getattr(`/small/f${i}`);
    });
    add('small files: stat', `${(nFiles / tStat).toFixed(0)} ops/s`);
    const [, tUnlink] = await timed(async () => {
      for (let i = 0; i < nFiles; i++) await v.unlink(`/small/f${i}`);
    });
    const [, tUnlinkSync] = await timed(() => v.syncAll());
    add('small files: unlink', `${(nFiles / tUnlink).toFixed(0)} ops/s`, `then syncAll ${tUnlinkSync.toFixed(2)} s`);
    const [, tDurable] = await timed(async () => {
      for (let i = 0; i < 200; i++) {
        const fh = await v.create(`/small/d${i}`, 0o644, O_CREAT | O_RDWR);
        await v.write(fh, small, 0);
        await v.fsync(fh, false);
        await v.release(fh);
      }
    });
    add('small files: create+write+fsync (remote), serial', `${(200 / tDurable).toFixed(0)} ops/s`, `200 files in ${tDurable.toFixed(2)} s`);

    // ---- sequential write to durable
    const seqBytes = Number(o.seqMib) * MiB;
    const chunk = Buffer.allocUnsafe(MiB);
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
    const [, tWrite] = await timed(async () => {
      const fh = await v.create('/big', 0o644, O_CREAT | O_RDWR);
      for (let off = 0; off < seqBytes; off += MiB) await v.write(fh, chunk, off);
      await v.fsync(fh, false);
      await v.release(fh);
    });
    add(`sequential write ${o.seqMib} MiB + fsync`, `${(seqBytes / MiB / tWrite).toFixed(1)} MiB/s`, `${tWrite.toFixed(2)} s`);

    // ---- random writes, fsync every 64, both modes
    const nRandom = Number(o.random);
    const rfile = 256 * MiB;
    const page = Buffer.alloc(4 * KiB, 3);
    for (const mode of ['remote', 'local'] as const) {
      await v.close();
      v = await Volume.open(store, container, { cacheDir: path.join(work, 'a'), ...openOpts, fsync: mode });
      const fh = await v.create(`/rand-${mode}`, 0o644, O_CREAT | O_RDWR);
      await v.ftruncate(fh, rfile);
      const r = xorshiftRng(mode === 'remote' ? 1 : 2);
      const [, t] = await timed(async () => {
        for (let i = 0; i < nRandom; i++) {
          await v.write(fh, page, r(rfile / page.length) * page.length);
          if (i % 64 === 63) await v.fsync(fh, false);
        }
        await v.fsync(fh, false);
      });
      add(`random 4 KiB writes, fsync every 64 (${mode})`, `${(nRandom / t).toFixed(0)} IOPS`, `${nRandom} writes in ${t.toFixed(2)} s`);
      await v.release(fh);
    }
    await v.close();

    // ---- sequential read, cold then warm
    const ro = await Volume.open(store, container, { cacheDir: path.join(work, 'cold'), readOnly: true, cacheSize: 4096 * MiB });
    for (const label of ['cold', 'warm']) {
      const fh = await ro.open('/big', O_RDONLY);
      let bad = 0;
      const [, t] = await timed(async () => {
        for (let off = 0; off < seqBytes; off += 128 * KiB) {
          const b = await ro.read(fh, 128 * KiB, off);
          if (b.length !== 128 * KiB) bad++;
        }
      });
      await ro.release(fh);
      add(`sequential read ${o.seqMib} MiB, 128 KiB reads (${label})`, `${(seqBytes / MiB / t).toFixed(1)} MiB/s`, `${t.toFixed(2)} s${bad ? `, ${bad} short reads!` : ''}`);
    }
    // ---- random reads, warm
    {
      const fh = await ro.open('/big', O_RDONLY);
      const r = xorshiftRng(3);
      const n = 20000;
      const [, t] = await timed(async () => {
        for (let i = 0; i < n; i++) await ro.read(fh, 4 * KiB, r(seqBytes / (4 * KiB)) * 4 * KiB);
      });
      add('random 4 KiB reads (warm cache)', `${(n / t).toFixed(0)} IOPS`, `${n} reads in ${t.toFixed(2)} s`);
      await ro.release(fh);
    }
    await ro.close();
    console.log(`\nstore: ${store.description}; container ${container}; block size 4 MiB; node ${process.version}`);
  } finally {
    if (!o.keep) {
      const keys: string[] = [];
      for await (const e of listAll(store, container)) if ('key' in e) keys.push(e.key);
      for (let i = 0; i < keys.length; i += 32) await Promise.all(keys.slice(i, i + 32).map((k) => store.delete(container, k).catch(() => undefined)));
      await store.deleteContainer(container).catch(() => undefined);
    }
    await store.close();
    await fs.rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
