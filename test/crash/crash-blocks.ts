/**
 * The verifiable data of the crash test: files made of 4 KiB blocks, each block holding (file, block, version)
 * in a header and a pattern derived from them, so that any block read back can be checked to be one complete
 * version (never garbage, never a mix) and compared with the version that fsync acknowledged.
 */
import { createHash } from 'node:crypto';

export const BLOCK = 4096;
export const BLOCKS_PER_FILE = 512; // 2 MiB files
const MAGIC = 0x52435753; // 'SWCR'

export function blockContent(file: number, block: number, version: number): Buffer {
  const b = Buffer.allocUnsafe(BLOCK);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(file, 4);
  b.writeUInt32LE(block, 8);
  b.writeUInt32LE(version, 12);
  let seed = createHash('md5').update(`${file}/${block}/${version}`).digest();
  for (let at = 16; at < BLOCK; at += 16) {
    seed.copy(b, at, 0, Math.min(16, BLOCK - at));
    seed = createHash('md5').update(seed).digest();
  }
  return b;
}

/** The version a block holds (0 for never written = zeros), or an error message. */
export function blockVersion(buf: Buffer, file: number, block: number): number | string {
  if (buf.length !== BLOCK) return `short block (${buf.length} bytes)`;
  if (buf.every((x) => x === 0)) return 0;
  if (buf.readUInt32LE(0) !== MAGIC) return 'garbage (no magic)';
  if (buf.readUInt32LE(4) !== file || buf.readUInt32LE(8) !== block) return `block of ${buf.readUInt32LE(4)}/${buf.readUInt32LE(8)} found at ${file}/${block}`;
  const v = buf.readUInt32LE(12);
  if (!buf.equals(blockContent(file, block, v))) return `version ${v} damaged`;
  return v;
}

/** One line of the acknowledgement log: after fsync returned, file `file` had these block versions. */
export interface AckLine {
  file: number;
  versions: number[];
}
