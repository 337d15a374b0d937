/**
 * Child process of the relocation tests (not a test itself): the writer of a volume in region A that replicates
 * to region B from its own process (startReplication, as a mount daemon does). It writes files forever, each
 * once, with contents derived from its number, fsyncs each, and appends what each fsync acknowledged to a log
 * (synchronously: a kill -9 loses no line written); every half second it also logs the replication status.
 *
 *   node relocate-writer.js CONTAINER CACHEDIR LOGFILE [MAXFILE_KIB]
 *
 * Regions come from SWIFTFS_TEST_* (A) and SWIFTFS_TEST_*_B (B).
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { Volume } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { createSwiftStore } from '../../src/store/swift/swift-store.js';
import { startReplication } from '../../src/region/replication.js';
import { xorshiftRng } from '../helpers/rng.js';

const [container, cacheDir, logFile, maxKiBArg] = process.argv.slice(2);

/** The content of file n (deterministic, so that the parent can check it). */
export function fileContent(n: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = (n * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export interface WriterAck {
  n: number;
  path: string;
  size: number;
  sha: string;
  /** When fsync returned (ms). */
  at: number;
}

async function main(): Promise<void> {
  if (!container || !cacheDir || !logFile) {
    console.error('usage: relocate-writer CONTAINER CACHEDIR LOGFILE [MAXFILE_KIB]');
    process.exit(2);
  }
  const env = process.env;
  const mk = (suffix: string) =>
    createSwiftStore({
      auth: { type: 'tempauth', authUrl: env[`SWIFTFS_TEST_ST_AUTH${suffix}`]!, user: env[`SWIFTFS_TEST_ST_USER${suffix}`]!, key: env[`SWIFTFS_TEST_ST_KEY${suffix}`]! },
      requestTimeoutMs: 10_000,
      retry: { retries: 2, baseDelayMs: 100 },
    });
  const a = mk('');
  const b = mk('_B');
  const log = fs.openSync(logFile, 'a');
  const say = (obj: object) => fs.writeSync(log, JSON.stringify(obj) + '\n');
  const volume = await Volume.open(a, container, { cacheDir, commitIntervalMs: 200, cacheSize: 1024 * 1024 * 1024, dirtyLimit: 64 * 1024 * 1024, checkpointEvery: 50 });
  const replication = startReplication({ volume, store: a, region: 'A' }, [{ region: 'B', store: b, container }], { pollMs: 500 });
  say({ opened: true, pid: process.pid, uuid: volume.uuid });
  setInterval(() => say({ status: replication.status()[0], at: Date.now(), journalSeq: volume.status().journalSeq }), 500).unref();
  const maxKiB = Number(maxKiBArg ?? 512);
  await volume.mkdir('/load', 0o755).catch(() => undefined);
  const rnd = xorshiftRng(process.pid);
  for (let n = 0; ; n++) {
    const size = 1 + rnd(maxKiB * 1024);
    const data = fileContent(n, size);
    const path = `/load/f${n}`;
    const fh = await volume.create(path, 0o644, O_CREAT | O_RDWR);
    await volume.write(fh, data, 0);
    await volume.fsync(fh, false);
    await volume.release(fh);
    const ack: WriterAck = { n, path, size, sha: createHash('sha256').update(data).digest('hex'), at: Date.now() };
    say({ ack });
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
