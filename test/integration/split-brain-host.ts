/**
 * Child process of the split-brain test (not a test itself): one "host" that, for as long as it runs, keeps
 * trying to own one volume on the real Swift (Swift or S3 API): at random moments it takes the volume over
 * (force), writes files with fsync, and closes cleanly or crashes its session (abandon) after a few, or keeps
 * going until it is fenced. Every fsync that returned is appended to a log with the session's epoch
 * (synchronously). A takeover waits the lease's settle delay (4 s) and the later of two concurrent ones wins,
 * so a host pauses up to that long between attempts (and that much more after losing one or being fenced, while
 * the other takeover settles), and most sessions write until they are fenced: two hosts that both retried at
 * once would keep pre-empting each other.
 *
 *   node split-brain-host.js NAME CONTAINER CACHEDIR LOGFILE SEED [swift|s3]
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { Volume } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { DEFAULT_SETTLE_MS } from '../../src/core/ownership.js';
import { readSwiftEnv } from '../helpers/swift-env.js';
import { makeStore } from './volume-stores.js';
import { xorshiftRng } from '../helpers/rng.js';

const [name, container, cacheDir, logFile, seedArg, apiArg] = process.argv.slice(2);

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
  const env = readSwiftEnv();
  if (!env) {
    console.error('split-brain-host: SWIFTFS_TEST_* is not set');
    process.exit(2);
  }
  const store = makeStore(env, apiArg === 's3' ? 's3' : 'swift', 10_000);
  const log = fs.openSync(logFile, 'a');
  const say = (obj: object) => fs.writeSync(log, JSON.stringify(obj) + '\n');
  const rnd = xorshiftRng(Number(seedArg));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let lost = false;
  for (let session = 0; ; session++) {
    await sleep((lost ? DEFAULT_SETTLE_MS : 0) + rnd(DEFAULT_SETTLE_MS));
    let v: Volume;
    try {
      v = await Volume.open(store, container, { cacheDir, force: true, commitIntervalMs: 50, checkpointEvery: 1_000_000, checkpointBytes: 1 << 30, openTimeoutMs: 20_000 });
    } catch (err) {
      say({ host: name, openFailed: (err as Error).message, at: Date.now() });
      lost = true;
      continue;
    }
    lost = false;
    const epoch = v.status().owner!.epoch;
    say({ host: name, opened: epoch, at: Date.now() });
    // A session closes cleanly or crashes (abandon) after a few writes, or (mostly) keeps writing until it is
    // fenced: the other host's takeover then ends it, instead of racing the other host's own.
    const end = rnd(6);
    const writes = end >= 2 ? 200 : 1 + rnd(8);
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
    // Fenced: another takeover is running; give it its settle delay before trying again.
    lost = fenced;
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
