/**
 * Child process of the split-brain test (not a test itself): one "host" that, for as long as it runs, keeps
 * trying to own one volume on the real Swift: at random moments it takes the volume over (force), writes a few
 * files with fsync, and then closes cleanly, crashes its session (abandon) or just keeps going until it is
 * fenced. Every fsync that returned is appended to a log with the session's epoch (synchronously).
 *
 *   node split-brain-host.js NAME CONTAINER CACHEDIR LOGFILE SEED
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { Volume } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { createSwiftStore } from '../../src/store/swift/swift-store.js';

const [name, container, cacheDir, logFile, seedArg] = process.argv.slice(2);

export interface HostAck {
  host: string;
  epoch: number;
  path: string;
  sha: string;
  at: number;
}

async function main(): Promise<void> {
  if (!name || !container || !cacheDir || !logFile) {
    console.error('usage: split-brain-host NAME CONTAINER CACHEDIR LOGFILE SEED');
    process.exit(2);
  }
  const env = process.env;
  const store = createSwiftStore({
    auth: { type: 'tempauth', authUrl: env.SWIFTFS_TEST_ST_AUTH!, user: env.SWIFTFS_TEST_ST_USER!, key: env.SWIFTFS_TEST_ST_KEY! },
    requestTimeoutMs: 10_000,
    retry: { retries: 2, baseDelayMs: 50 },
  });
  const log = fs.openSync(logFile, 'a');
  const say = (obj: object) => fs.writeSync(log, JSON.stringify(obj) + '\n');
  let x = Number(seedArg) >>> 0 || 1;
  const rnd = (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  for (let session = 0; ; session++) {
    await sleep(rnd(1500));
    let v: Volume;
    try {
      v = await Volume.open(store, container, { cacheDir, force: true, commitIntervalMs: 50, checkpointEvery: 1_000_000, checkpointBytes: 1 << 30, openTimeoutMs: 20_000 });
    } catch (err) {
      say({ host: name, openFailed: (err as Error).message, at: Date.now() });
      continue;
    }
    const epoch = v.status().owner!.epoch;
    say({ host: name, opened: epoch, at: Date.now() });
    const writes = 1 + rnd(8);
    let fenced = false;
    for (let i = 0; i < writes && !fenced; i++) {
      const path = `/${name}-e${epoch}-s${session}-${i}`;
      const data = Buffer.from(`${path} ${'x'.repeat(rnd(20_000))}`);
      try {
        const fh = await v.create(path, 0o644, O_CREAT | O_RDWR);
        await v.write(fh, data, 0);
        await v.fsync(fh, false);
        await v.release(fh);
        say({ ack: { host: name, epoch, path, sha: createHash('sha256').update(data).digest('hex'), at: Date.now() } });
      } catch (err) {
        fenced = true;
        say({ host: name, epoch, refused: (err as Error).message, at: Date.now() });
      }
      await sleep(rnd(300));
    }
    const end = rnd(3);
    if (end === 0) await v.close().catch(() => undefined);
    else await v.close({ abandon: true }).catch(() => undefined);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
