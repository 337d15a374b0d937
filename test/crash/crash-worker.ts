/**
 * Child process of the crash test (not a test itself): opens a volume on the real Swift with a given cache
 * directory and fsync mode, then runs a write-heavy workload forever — several concurrent loops, each on its own
 * files, writing runs of versioned 4 KiB blocks at random places (sometimes 1 MiB aligned runs), fsyncing now
 * and then and appending what each fsync acknowledged to a log (synchronously, so a kill -9 cannot lose a
 * line written). The parent kills it at a random moment.
 *
 *   node crash-worker.js CONTAINER CACHEDIR remote|local SEED LOGFILE
 */
import * as fs from 'node:fs';
import { Volume } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { createSwiftStore } from '../../src/store/swift/swift-store.js';
import { BLOCK, BLOCKS_PER_FILE, blockContent, type AckLine } from './crash-blocks.js';
import { xorshiftRng } from '../helpers/rng.js';

const [container, cacheDir, mode, seedArg, logFile] = process.argv.slice(2);

async function main(): Promise<void> {
  if (!container || !cacheDir || !logFile || (mode !== 'remote' && mode !== 'local')) {
    console.error('usage: crash-worker CONTAINER CACHEDIR remote|local SEED LOGFILE');
    process.exit(2);
  }
  const env = process.env;
  const store = createSwiftStore({
    auth: { type: 'tempauth', authUrl: env.SWIFTFS_TEST_ST_AUTH!, user: env.SWIFTFS_TEST_ST_USER!, key: env.SWIFTFS_TEST_ST_KEY! },
    requestTimeoutMs: 15_000,
  });
  const log = fs.openSync(logFile, 'a');
  const say = (obj: object) => fs.writeSync(log, JSON.stringify(obj) + '\n');
  const volume = await Volume.open(store, container, {
    cacheDir,
    fsync: mode,
    cacheSize: 512 * 1024 * 1024,
    dirtyLimit: 32 * 1024 * 1024,
    commitIntervalMs: 150,
    force: true,
    checkpointEvery: 40,
  });
  say({ opened: true, pid: process.pid });
  const rnd = xorshiftRng(Number(seedArg));
  const LOOPS = 4;
  const FILES_PER_LOOP = 2;
  await Promise.all(
    Array.from({ length: LOOPS }, async (_, loop) => {
      const files = Array.from({ length: FILES_PER_LOOP }, (_, i) => loop * FILES_PER_LOOP + i);
      const versions = new Map<number, number[]>();
      const handles = new Map<number, number>();
      for (const f of files) {
        const fh = await volume.create(`/f${f}`, 0o644, O_CREAT | O_RDWR);
        handles.set(f, fh);
        // Resume from what is in the file (a previous run's versions) so that versions only grow.
        const v: number[] = [];
        for (let b = 0; b < BLOCKS_PER_FILE; b++) {
          const buf = await volume.read(fh, BLOCK, b * BLOCK);
          v.push(buf.length === BLOCK && buf.readUInt32LE(0) === 0x52435753 ? buf.readUInt32LE(12) : 0);
        }
        versions.set(f, v);
      }
      for (let op = 0; ; op++) {
        const f = files[rnd(files.length)]!;
        const v = versions.get(f)!;
        const fh = handles.get(f)!;
        const big = rnd(10) === 0;
        const run = big ? 256 : 1 + rnd(16);
        const start = big ? rnd(BLOCKS_PER_FILE / 256) * 256 : rnd(BLOCKS_PER_FILE - run);
        const parts: Buffer[] = [];
        for (let b = start; b < start + run; b++) parts.push(blockContent(f, b, v[b]! + 1));
        await volume.write(fh, Buffer.concat(parts), start * BLOCK);
        for (let b = start; b < start + run; b++) v[b] = v[b]! + 1;
        if (rnd(4) === 0) {
          const acked = [...v];
          await volume.fsync(fh, false);
          const line: AckLine = { file: f, versions: acked };
          say(line);
        }
      }
    }),
  );
}

main().catch((err: unknown) => {
  console.error('crash-worker failed:', err);
  process.exit(1);
});
