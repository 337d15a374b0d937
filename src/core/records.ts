/**
 * Binary encodings of the core's persistent records:
 *  - WAL entries (one record batch plus its write data, CRC'd, self-locating) for the local write-ahead log;
 *  - journal segments (one committed group of batches, with a header naming the writer) for the store;
 *  - checkpoints (the gzipped FsState snapshot plus a header) for the store.
 *
 * Metadata is JSON; bulk data never goes through JSON. Every encoding carries a CRC32 so that a torn or
 * damaged record is detected and never applied. Formats are little-endian and versioned by their magic.
 */

import { crc32, gunzipSync, gzipSync } from 'node:zlib';
import type { MetaRecord } from './types.js';
import type { Snapshot } from './metadata.js';

/** Thrown for anything that does not decode: wrong magic, bad CRC, truncated, malformed JSON. */
export class RecordDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordDecodeError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// WAL entries
//
//   offset size
//   0      4    magic 'SWE1' (0x31455753 LE)
//   4      4    total length of the entry (header + data + meta)
//   8      4    CRC32 of bytes [12, total)
//   12     4    WAL segment number the entry was written into (rejects stale entries of recycled files)
//   16     8    entry sequence number (float64; integers < 2^53)
//   24     4    data length
//   28     4    meta length
//   32     data (write payload; the batch's WAL refs point here)
//   32+dl  meta (UTF-8 JSON of MetaRecord[])
// ---------------------------------------------------------------------------------------------------------------

export const WAL_ENTRY_MAGIC = 0x31455753;
export const WAL_ENTRY_HEADER_SIZE = 32;

export interface WalEntryHeader {
  total: number;
  segment: number;
  seq: number;
  dataLength: number;
  metaLength: number;
}

/** Encodes a batch's JSON once (so that its size is known before a position is chosen). */
export function encodeBatchJson(batch: readonly MetaRecord[]): Buffer {
  return Buffer.from(JSON.stringify(batch), 'utf8');
}

/**
 * Builds the header and computes the CRC over header tail + data + meta without concatenating them: the entry
 * is then written with one vectored write of [header, data, meta].
 */
export function encodeWalEntryHeader(segment: number, seq: number, data: Uint8Array | null, meta: Buffer): Buffer {
  const dataLength = data ? data.length : 0;
  const header = Buffer.allocUnsafe(WAL_ENTRY_HEADER_SIZE);
  header.writeUInt32LE(WAL_ENTRY_MAGIC, 0);
  header.writeUInt32LE(WAL_ENTRY_HEADER_SIZE + dataLength + meta.length, 4);
  header.writeUInt32LE(segment >>> 0, 12);
  header.writeDoubleLE(seq, 16);
  header.writeUInt32LE(dataLength, 24);
  header.writeUInt32LE(meta.length, 28);
  let crc = crc32(header.subarray(12));
  if (data && dataLength > 0) crc = crc32(data, crc);
  crc = crc32(meta, crc);
  header.writeUInt32LE(crc, 8);
  return header;
}

/** Parses and checks the fixed header only (length sanity, magic). Returns null when it is not an entry. */
export function decodeWalEntryHeader(buf: Buffer, at = 0): WalEntryHeader | null {
  if (buf.length - at < WAL_ENTRY_HEADER_SIZE) return null;
  if (buf.readUInt32LE(at) !== WAL_ENTRY_MAGIC) return null;
  const total = buf.readUInt32LE(at + 4);
  const dataLength = buf.readUInt32LE(at + 24);
  const metaLength = buf.readUInt32LE(at + 28);
  if (total !== WAL_ENTRY_HEADER_SIZE + dataLength + metaLength) return null;
  const seq = buf.readDoubleLE(at + 16);
  if (!Number.isSafeInteger(seq) || seq < 1) return null;
  return { total, segment: buf.readUInt32LE(at + 12), seq, dataLength, metaLength };
}

/** Verifies the CRC of a whole entry held in `buf` at `at`, and decodes its batch. Null when invalid. */
export function decodeWalEntryBody(buf: Buffer, at: number, header: WalEntryHeader): MetaRecord[] | null {
  if (buf.length - at < header.total) return null;
  const crc = crc32(buf.subarray(at + 12, at + header.total));
  if (crc !== buf.readUInt32LE(at + 8)) return null;
  const metaStart = at + WAL_ENTRY_HEADER_SIZE + header.dataLength;
  try {
    const batch = JSON.parse(buf.toString('utf8', metaStart, metaStart + header.metaLength)) as unknown;
    if (!Array.isArray(batch)) return null;
    return batch as MetaRecord[];
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// WAL segment file header (first WAL_SEGMENT_HEADER_SIZE bytes of each segment file)
//
//   0  4  magic 'SWW1'
//   4  4  length of the JSON that follows
//   8  4  CRC32 of the JSON
//   12 .. JSON WalSegmentHeader, zero padded to WAL_SEGMENT_HEADER_SIZE
// ---------------------------------------------------------------------------------------------------------------

export const WAL_SEGMENT_MAGIC = 0x31575753;
export const WAL_SEGMENT_HEADER_SIZE = 4096;

export interface WalSegmentHeader {
  v: 1;
  /** The volume this WAL belongs to. */
  volume: string;
  /** Random id of this WAL (one per cache directory and volume); journal segments name it when they cover entries. */
  walId: string;
  segment: number;
  /** Owner epoch of the session that started this segment. */
  epoch: number;
  /** The journal sequence number that was committed when this segment was started (what it continues from). */
  journalSeq: number;
  createdAt: number;
}

export function encodeWalSegmentHeader(header: WalSegmentHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length + 12 > WAL_SEGMENT_HEADER_SIZE) throw new Error('WAL segment header too large');
  const out = Buffer.alloc(WAL_SEGMENT_HEADER_SIZE);
  out.writeUInt32LE(WAL_SEGMENT_MAGIC, 0);
  out.writeUInt32LE(json.length, 4);
  out.writeUInt32LE(crc32(json), 8);
  json.copy(out, 12);
  return out;
}

export function decodeWalSegmentHeader(buf: Buffer): WalSegmentHeader | null {
  if (buf.length < 12 || buf.readUInt32LE(0) !== WAL_SEGMENT_MAGIC) return null;
  const len = buf.readUInt32LE(4);
  if (len + 12 > buf.length) return null;
  const json = buf.subarray(12, 12 + len);
  if (crc32(json) !== buf.readUInt32LE(8)) return null;
  try {
    const header = JSON.parse(json.toString('utf8')) as WalSegmentHeader;
    if (header.v !== 1 || typeof header.segment !== 'number') return null;
    return header;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Journal segments
//
//   0  4  magic 'SWJ1' (plain) or 'SWJZ' (the rest is gzipped)
//   4  .. body (plain, or gzip of it):
//        4  header JSON length, header JSON (SegmentHeader)
//        4  batch count, then per batch: 4 length, JSON of MetaRecord[]
//        4  CRC32 of everything before it in the body
// ---------------------------------------------------------------------------------------------------------------

const SEGMENT_MAGIC_PLAIN = 0x314a5753; // 'SWJ1'
const SEGMENT_MAGIC_GZIP = 0x5a4a5753; // 'SWJZ'
/** Bodies larger than this are gzipped (JSON of records compresses 5-10x). */
const SEGMENT_GZIP_THRESHOLD = 16 * 1024;

export interface SegmentHeader {
  v: 1;
  seq: number;
  /** Owner epoch of the writer. */
  epoch: number;
  /** The writer's WAL id and the last WAL entry this segment covers (crash recovery decides with these). */
  walId: string;
  walSeq: number;
  /** ms since the epoch. */
  time: number;
  /** Data objects this segment references that no earlier segment did. */
  objects: string[];
}

export interface DecodedSegment {
  header: SegmentHeader;
  batches: MetaRecord[][];
}

export function encodeSegment(header: SegmentHeader, batches: readonly (readonly MetaRecord[])[]): Buffer {
  const parts: Buffer[] = [];
  const headerJson = Buffer.from(JSON.stringify(header), 'utf8');
  parts.push(u32(headerJson.length), headerJson, u32(batches.length));
  for (const batch of batches) {
    const json = encodeBatchJson(batch);
    parts.push(u32(json.length), json);
  }
  const body = Buffer.concat(parts);
  const withCrc = Buffer.concat([body, u32(crc32(body))]);
  if (withCrc.length > SEGMENT_GZIP_THRESHOLD) return Buffer.concat([u32(SEGMENT_MAGIC_GZIP), gzipSync(withCrc, { level: 3 })]);
  return Buffer.concat([u32(SEGMENT_MAGIC_PLAIN), withCrc]);
}

export function decodeSegment(buf: Buffer): DecodedSegment {
  if (buf.length < 4) throw new RecordDecodeError('journal segment truncated');
  const magic = buf.readUInt32LE(0);
  let body: Buffer;
  if (magic === SEGMENT_MAGIC_PLAIN) body = buf.subarray(4);
  else if (magic === SEGMENT_MAGIC_GZIP) {
    try {
      body = gunzipSync(buf.subarray(4));
    } catch (err) {
      throw new RecordDecodeError(`journal segment does not decompress: ${(err as Error).message}`);
    }
  } else throw new RecordDecodeError('not a swiftfs journal segment (bad magic)');
  if (body.length < 12) throw new RecordDecodeError('journal segment truncated');
  const crcAt = body.length - 4;
  if (crc32(body.subarray(0, crcAt)) !== body.readUInt32LE(crcAt)) throw new RecordDecodeError('journal segment CRC mismatch');
  const r = new Reader(body.subarray(0, crcAt));
  const header = r.json() as SegmentHeader;
  if (header?.v !== 1 || typeof header.seq !== 'number') throw new RecordDecodeError('journal segment header is not version 1');
  const count = r.u32();
  const batches: MetaRecord[][] = [];
  for (let i = 0; i < count; i++) batches.push(r.json() as MetaRecord[]);
  return { header, batches };
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints
//
//   0  4  magic 'SWC1'
//   4  4  header JSON length, header JSON (CheckpointHeader)
//   .. 4  gzip length, gzip of the snapshot JSON
//   .. 4  CRC32 of everything before it
// ---------------------------------------------------------------------------------------------------------------

const CHECKPOINT_MAGIC = 0x31435753; // 'SWC1'

export interface CheckpointHeader {
  v: 1;
  /** The state is the one after journal segment `seq` (0: the freshly formatted volume). */
  seq: number;
  /** Epoch, WAL id and WAL seq of the last segment applied (as in SegmentHeader). */
  epoch: number;
  walId: string;
  walSeq: number;
  /** Highest owner epoch seen in any segment up to seq (epochs only grow). */
  maxEpoch: number;
  time: number;
}

export function encodeCheckpoint(header: CheckpointHeader, snapshot: Snapshot): Buffer {
  const headerJson = Buffer.from(JSON.stringify(header), 'utf8');
  const gz = gzipSync(Buffer.from(JSON.stringify(snapshot), 'utf8'), { level: 4 });
  const body = Buffer.concat([u32(CHECKPOINT_MAGIC), u32(headerJson.length), headerJson, u32(gz.length), gz]);
  return Buffer.concat([body, u32(crc32(body))]);
}

/** Decodes only the header (cheap: no gunzip), after checking the CRC. */
export function decodeCheckpointHeader(buf: Buffer): CheckpointHeader {
  checkCheckpoint(buf);
  const r = new Reader(buf.subarray(4, buf.length - 4));
  return r.json() as CheckpointHeader;
}

export function decodeCheckpoint(buf: Buffer): { header: CheckpointHeader; snapshot: Snapshot } {
  checkCheckpoint(buf);
  const r = new Reader(buf.subarray(4, buf.length - 4));
  const header = r.json() as CheckpointHeader;
  if (header?.v !== 1) throw new RecordDecodeError('checkpoint header is not version 1');
  const gz = r.bytes();
  let snapshot: Snapshot;
  try {
    snapshot = JSON.parse(gunzipSync(gz).toString('utf8')) as Snapshot;
  } catch (err) {
    throw new RecordDecodeError(`checkpoint snapshot does not decode: ${(err as Error).message}`);
  }
  return { header, snapshot };
}

function checkCheckpoint(buf: Buffer): void {
  if (buf.length < 16 || buf.readUInt32LE(0) !== CHECKPOINT_MAGIC) throw new RecordDecodeError('not a swiftfs checkpoint (bad magic)');
  const crcAt = buf.length - 4;
  if (crc32(buf.subarray(0, crcAt)) !== buf.readUInt32LE(crcAt)) throw new RecordDecodeError('checkpoint CRC mismatch');
}

// ---------------------------------------------------------------------------------------------------------------

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  u32(): number {
    if (this.at + 4 > this.buf.length) throw new RecordDecodeError('record truncated');
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  bytes(): Buffer {
    const len = this.u32();
    if (this.at + len > this.buf.length) throw new RecordDecodeError('record truncated');
    const out = this.buf.subarray(this.at, this.at + len);
    this.at += len;
    return out;
  }
  json(): unknown {
    const b = this.bytes();
    try {
      return JSON.parse(b.toString('utf8'));
    } catch (err) {
      throw new RecordDecodeError(`malformed JSON in record: ${(err as Error).message}`);
    }
  }
}
