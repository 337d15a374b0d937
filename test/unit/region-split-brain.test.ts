/**
 * Split brain on a memory store with random latency, and on a Swift-like store over it (create-only puts not
 * atomic, the newest timestamp winning, segment and owner-record puts landing up to 40 ms late): two "hosts"
 * (two Volume sessions with their own cache directories) keep taking one volume over from each other at random
 * moments, writing and fsyncing, crashing or closing, while a third party fences the volume now and then (as a
 * relocation does). Afterwards the journal shows that at most one writer committed at any time (epochs never go
 * back), every acknowledged fsync is there under the epoch of the session that made it, and the volume is
 * consistent.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MemoryStore } from '../../src/store/memory-store.js';
import { Volume } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { fenceContainer } from '../../src/region/fence.js';
import { JOURNAL_PREFIX, OWNER_KEY, readFormat } from '../../src/core/layout.js';
import { tempDir, verifySingleWriterJournal, type WriterAckRecord } from './region-helpers.js';
import { SwiftLikeStore } from './swift-like-store.js';
import { xorshiftRng } from '../helpers/rng.js';


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Settle delay of every party: more than twice the slowest put of the Swift-like store (40 ms + latency). */
const SETTLE_MS = 150;

const STORES = [
  { name: 'memory store (atomic create-only puts)', swiftLike: false },
  { name: 'Swift-like store (create-only puts not atomic, puts landing late)', swiftLike: true },
] as const;

for (const kind of STORES) {
  for (const seed of [11, 22]) {
    test(`two hosts fight over one volume on a ${kind.name} (seed ${seed}): one writer at a time, nothing acknowledged lost`, async (t) => {
      const rnd = xorshiftRng(seed);
      const memory = new MemoryStore({ latencyMs: () => rnd(4) });
      const swiftLike = kind.swiftLike ? new SwiftLikeStore(memory, { putDelayMs: (key) => (key.startsWith(JOURNAL_PREFIX) ? rnd(40) : key === OWNER_KEY ? rnd(20) : 0) }) : null;
      const store = swiftLike ?? memory;
      await Volume.format(store, 'vol', { createContainer: true, blockSize: 64 * 1024 });
      const uuid = (await readFormat(store, 'vol')).uuid;
      const acks: WriterAckRecord[] = [];
      const stats = { opens: 0, refusedWrites: 0, openFailures: 0, fences: 0 };
      // Runs at least 6 s (9 s where takeovers wait), and on until some writer was fenced in the middle of its
      // writes (at most 20 s).
      const soft = Date.now() + (kind.swiftLike ? 9000 : 6000);
      const hard = Date.now() + 20000;
      const running = () => Date.now() < soft || (stats.refusedWrites === 0 && Date.now() < hard);
      const host = async (name: string) => {
        const cacheDir = await tempDir(`swiftfs-sb-${name}-`);
        let lost = false;
        for (let session = 0; running(); session++) {
          // A takeover takes the settle delay where create-only puts are not atomic, and the later of two
          // concurrent ones wins: hosts that retried at once would keep pre-empting each other.
          await sleep(kind.swiftLike ? (lost ? SETTLE_MS : 0) + rnd(2 * SETTLE_MS) : rnd(60));
          let v: Volume;
          try {
            v = await Volume.open(store, 'vol', { cacheDir, force: true, commitIntervalMs: 5, checkpointEvery: 1_000_000, checkpointBytes: 1 << 30, walSegmentSize: 2 * 1024 * 1024, cacheSize: 64 * 1024 * 1024, dirtyLimit: 4 * 1024 * 1024, fenceSettleMs: SETTLE_MS });
          } catch {
            stats.openFailures++;
            lost = true;
            continue;
          }
          lost = false;
          stats.opens++;
          const epoch = v.status().owner!.epoch;
          const writes = 1 + rnd(6);
          for (let i = 0; i < writes; i++) {
            const path = `/${name}-e${epoch}-s${session}-${i}`;
            const data = Buffer.from(`${path} ${'y'.repeat(rnd(5000))}`);
            try {
              const fh = await v.create(path, 0o644, O_CREAT | O_RDWR);
              await v.write(fh, data, 0);
              await v.fsync(fh, false);
              await v.release(fh);
              acks.push({ host: name, epoch, path, sha: createHash('sha256').update(data).digest('hex') });
            } catch {
              stats.refusedWrites++;
              break;
            }
            await sleep(rnd(20));
          }
          await v.close(rnd(2) === 0 ? {} : { abandon: true }).catch(() => undefined);
        }
      };
      const fencer = async () => {
        while (running()) {
          await sleep(200 + rnd(400));
          try {
            await fenceContainer({ settleMs: SETTLE_MS, store, container: 'vol', region: 'A', uuid, mode: 'retire', movedTo: null, reason: 'split-brain test' });
            stats.fences++;
          } catch {
            // lost a race with a takeover: fine
          }
        }
      };
      await Promise.all([host('h1'), host('h2'), fencer()]);
      const verdict = await verifySingleWriterJournal(store, 'vol', acks);
      assert.ok(stats.opens >= 10, `hosts took the volume many times (${stats.opens})`);
      assert.ok(verdict.epochs.length >= 10, `many owners committed (${verdict.epochs.length} epochs)`);
      assert.ok(stats.refusedWrites > 0, 'some writers were fenced while writing');
      assert.ok(acks.length > 20, `writes were acknowledged (${acks.length})`);
      t.diagnostic(`${stats.opens} opens (${stats.openFailures} lost), ${stats.fences} fences, ${acks.length} acknowledged, ${stats.refusedWrites} refused; ${verdict.segments} segments by ${verdict.epochs.length} owners${swiftLike ? `; ${swiftLike.droppedPuts.length} late puts dropped, ${swiftLike.racedCreates} racing create-only puts` : ''}`);
    });
  }
}
