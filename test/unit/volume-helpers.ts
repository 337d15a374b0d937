/**
 * Helpers shared by the Volume unit tests: a formatted volume on a memory store (optionally behind a
 * FaultyStore) with a fresh cache directory, small blocks and segments so that tests exercise packing,
 * early uploads, segment switches and checkpoints with little data.
 */

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FaultyStore } from '../../src/store/faulty-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { Volume, type VolumeOpenOptions } from '../../src/core/volume.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import type { Logger } from '../../src/core/log.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export async function tempDir(prefix = 'swiftfs-vol-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** A logger that keeps what it is given (to assert on warnings and errors). */
export function memoryLogger(): Logger & { lines: { level: string; msg: string; obj: object }[] } {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const mk = (level: string) => (a: object | string, b?: string) => {
    if (typeof a === 'string') lines.push({ level, msg: a, obj: {} });
    else lines.push({ level, msg: b ?? '', obj: a });
  };
  return { lines, error: mk('error'), warn: mk('warn'), info: mk('info'), debug: mk('debug') } as Logger & { lines: { level: string; msg: string; obj: object }[] };
}

export interface Setup {
  memory: MemoryStore;
  faulty: FaultyStore;
  store: ObjectStore;
  container: string;
  cacheDir: string;
  open(extra?: Partial<VolumeOpenOptions>, cacheDir?: string): Promise<Volume>;
  cleanup(): Promise<void>;
}

export const SMALL: Partial<VolumeOpenOptions> = {
  walSegmentSize: 2 * MiB,
  cacheSize: 64 * MiB,
  dirtyLimit: 8 * MiB,
  commitIntervalMs: 50,
};

export async function setup(opts: { blockSize?: number; conditionalCreate?: boolean } = {}): Promise<Setup> {
  const memory = new MemoryStore({ conditionalCreate: opts.conditionalCreate ?? true });
  const faulty = new FaultyStore(memory);
  const container = 'vol';
  await Volume.format(faulty, container, { createContainer: true, blockSize: opts.blockSize ?? 64 * KiB });
  const cacheDir = await tempDir();
  const dirs = [cacheDir];
  const opened: Volume[] = [];
  return {
    memory,
    faulty,
    store: faulty,
    container,
    cacheDir,
    async open(extra = {}, dir = cacheDir) {
      const v = await Volume.open(faulty, container, { cacheDir: dir, ...SMALL, ...extra });
      opened.push(v);
      return v;
    },
    async cleanup() {
      faulty.comeBack();
      faulty.clearFaults();
      for (const v of opened) await v.close({ abandon: true }).catch(() => undefined);
      for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
    },
  };
}

export async function writeFile(v: Volume, p: string, data: Buffer, mode = 0o644): Promise<void> {
  const fh = await v.create(p, mode, O_CREAT | O_RDWR);
  try {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(256 * KiB, data.length - off);
      await v.write(fh, data.subarray(off, off + n), off);
      off += n;
    }
  } finally {
    await v.release(fh);
  }
}

export async function readFile(v: Volume, p: string): Promise<Buffer> {
  const fh = await v.open(p, 0);
  try {
    const size = (await v.fgetattr(fh)).size;
    const parts: Buffer[] = [];
    for (let off = 0; off < size; off += 128 * KiB) parts.push(await v.read(fh, Math.min(128 * KiB, size - off), off));
    return Buffer.concat(parts);
  } finally {
    await v.release(fh);
  }
}

/** Deterministic pseudo-random bytes. */
export function pattern(len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
