/**
 * Helpers of the region tests: digests of a whole filesystem (to compare a replica with the source state it
 * claims to be), a consistency check of a container (every object its newest state references exists), and a
 * small volume on a memory store that commits often.
 */

import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { listAll } from '../../src/store/object-store.js';
import { Volume, type VolumeOpenOptions } from '../../src/core/volume.js';
import { DATA_PREFIX, loadVolume } from '../../src/core/layout.js';
import { FsState } from '../../src/core/metadata.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type VolumeFs } from '../../src/core/types.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export async function tempDir(prefix = 'swiftfs-region-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export const FAST: Partial<VolumeOpenOptions> = {
  walSegmentSize: 2 * MiB,
  cacheSize: 64 * MiB,
  dirtyLimit: 8 * MiB,
  commitIntervalMs: 20,
  checkpointEvery: 1_000_000,
};

async function readAll(v: VolumeFs, p: string): Promise<Buffer> {
  const fh = await v.open(p, 0);
  try {
    const size = (await v.fgetattr(fh)).size;
    const parts: Buffer[] = [];
    for (let off = 0; off < size; off += 256 * KiB) parts.push(await v.read(fh, Math.min(256 * KiB, size - off), off));
    return Buffer.concat(parts);
  } finally {
    await v.release(fh);
  }
}

/** A digest of the whole tree: names, types, modes, sizes, file contents, link targets. */
export async function fsDigest(v: VolumeFs): Promise<string> {
  const lines: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await v.readdir(dir)).filter((e) => e.name !== '.' && e.name !== '..').sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      const type = e.attr.mode & S_IFMT;
      if (type === S_IFDIR) {
        lines.push(`d ${p} ${(e.attr.mode & 0o7777).toString(8)}`);
        await walk(p);
      } else if (type === S_IFREG) {
        const data = await readAll(v, p);
        lines.push(`f ${p} ${e.attr.size} ${createHash('sha256').update(data).digest('hex')}`);
      } else if (type === S_IFLNK) {
        lines.push(`l ${p} ${await v.readlink(p)}`);
      } else lines.push(`o ${p} ${type}`);
    }
  };
  await walk('/');
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

/** The files of a tree with their contents (for finding what a replica has). */
export async function fsFiles(v: VolumeFs, dir = '/'): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await v.readdir(dir)) {
    if (e.name === '.' || e.name === '..') continue;
    const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
    if ((e.attr.mode & S_IFMT) === S_IFDIR) for (const [k, val] of await fsFiles(v, p)) out.set(k, val);
    else if ((e.attr.mode & S_IFMT) === S_IFREG) out.set(p, await readAll(v, p));
  }
  return out;
}

/**
 * Checks a container the way a mount would read it: the newest checkpoint plus its consecutive segments apply
 * cleanly and every data object that state references exists. Returns the head seq, or null when the container
 * is not (yet) a volume. Throws naming the first missing object.
 */
export async function checkContainerConsistent(store: ObjectStore, container: string): Promise<number | null> {
  let loaded;
  try {
    loaded = await loadVolume(store, container);
  } catch {
    return null;
  }
  const state = FsState.restore(loaded.checkpoint.snapshot);
  for (const seg of loaded.segments) for (const b of seg.decoded.batches) state.apply(b);
  const present = new Set<string>();
  for await (const e of listAll(store, container, { prefix: DATA_PREFIX })) if ('key' in e) present.add(e.key.slice(DATA_PREFIX.length));
  for (const id of state.referencedObjects()) {
    if (!present.has(id)) throw new Error(`container ${container}: object ${id} is referenced but missing`);
  }
  const segs = loaded.segments;
  return segs.length ? segs[segs.length - 1]!.seq : loaded.checkpoint.header.seq;
}

export interface SourceVolume {
  store: MemoryStore;
  container: string;
  cacheDir: string;
  volume: Volume;
  reopen(extra?: Partial<VolumeOpenOptions>): Promise<Volume>;
  cleanup(): Promise<void>;
}

export async function sourceVolume(opts: { blockSize?: number; conditionalCreate?: boolean; container?: string; extra?: Partial<VolumeOpenOptions> } = {}): Promise<SourceVolume> {
  const store = new MemoryStore({ conditionalCreate: opts.conditionalCreate ?? true, name: 'region-a' });
  const container = opts.container ?? 'vol';
  await Volume.format(store, container, { createContainer: true, blockSize: opts.blockSize ?? 64 * KiB });
  const cacheDir = await tempDir();
  const dirs = [cacheDir];
  const opened: Volume[] = [];
  const src: SourceVolume = {
    store,
    container,
    cacheDir,
    volume: null as unknown as Volume,
    async reopen(extra = {}) {
      const v = await Volume.open(store, container, { cacheDir, ...FAST, ...opts.extra, ...extra });
      opened.push(v);
      src.volume = v;
      return v;
    },
    async cleanup() {
      for (const v of opened) await v.close({ abandon: true }).catch(() => undefined);
      for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
    },
  };
  await src.reopen();
  return src;
}

/** Opens a container read-only in a fresh cache directory, runs `fn`, closes. */
export async function withReadOnly<T>(store: ObjectStore, container: string, fn: (v: Volume) => Promise<T>): Promise<T> {
  const dir = await tempDir('swiftfs-region-ro-');
  const v = await Volume.open(store, container, { cacheDir: dir, readOnly: true });
  try {
    return await fn(v);
  } finally {
    await v.close().catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export interface WriterAckRecord {
  host: string;
  epoch: number;
  /** Absolute path of a file in the root directory. */
  path: string;
  sha: string;
}

export interface JournalVerdict {
  segments: number;
  epochs: number[];
  /** Segments per epoch, in journal order. */
  runs: { epoch: number; from: number; to: number }[];
}

/**
 * The split-brain check, on a journal that was never collected (segments 1..head all present):
 *  - epochs never go back along the journal (once a segment of a newer owner is committed, no older owner
 *    ever commits again: at most one writer commits at any time);
 *  - every acknowledged fsync is in a segment of the epoch of the session that made it;
 *  - the volume is consistent and every acknowledged file holds the bytes acknowledged.
 */
export async function verifySingleWriterJournal(store: ObjectStore, container: string, acks: WriterAckRecord[]): Promise<JournalVerdict> {
  const { listSegmentSeqs, fetchSegment } = await import('../../src/core/layout.js');
  const seqs = await listSegmentSeqs(store, container);
  const runs: JournalVerdict['runs'] = [];
  const createdIn = new Map<string, { seq: number; epoch: number }>();
  let maxEpoch = 0;
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    if (seq !== i + 1) throw new Error(`journal has a gap: segment ${i + 1} missing (found ${seq})`);
    const seg = await fetchSegment(store, container, seq);
    if (!seg) throw new Error(`segment ${seq} listed but missing`);
    const epoch = seg.decoded.header.epoch;
    if (epoch < maxEpoch) throw new Error(`segment ${seq} was committed by epoch ${epoch} after epoch ${maxEpoch} had committed: two writers committed`);
    maxEpoch = epoch;
    const last = runs[runs.length - 1];
    if (last && last.epoch === epoch) last.to = seq;
    else runs.push({ epoch, from: seq, to: seq });
    for (const batch of seg.decoded.batches) {
      for (const rec of batch) if (rec.t === 'link' && rec.dir === 1 && !createdIn.has(`/${rec.name}`)) createdIn.set(`/${rec.name}`, { seq, epoch });
    }
  }
  for (const ack of acks) {
    const where = createdIn.get(ack.path);
    if (!where) throw new Error(`${ack.host}'s acknowledged ${ack.path} (epoch ${ack.epoch}) is in no segment`);
    if (where.epoch !== ack.epoch) throw new Error(`${ack.path} acknowledged by epoch ${ack.epoch} was committed in segment ${where.seq} of epoch ${where.epoch}`);
  }
  if ((await checkContainerConsistent(store, container)) === null) throw new Error('the volume does not load');
  await withReadOnly(store, container, async (v) => {
    for (const ack of acks) {
      const data = await readAll(v, ack.path);
      if (createHash('sha256').update(data).digest('hex') !== ack.sha) throw new Error(`${ack.path}: content differs from what was acknowledged`);
    }
  });
  return { segments: seqs.length, epochs: [...new Set(runs.map((r) => r.epoch))], runs };
}
