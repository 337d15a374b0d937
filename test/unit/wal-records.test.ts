import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeCheckpoint,
  decodeCheckpointHeader,
  decodeSegment,
  decodeWalEntryBody,
  decodeWalEntryHeader,
  encodeBatchJson,
  encodeCheckpoint,
  encodeSegment,
  encodeWalEntryHeader,
  RecordDecodeError,
  WAL_ENTRY_HEADER_SIZE,
} from '../../src/core/records.js';
import type { MetaRecord } from '../../src/core/types.js';
import { FsState } from '../../src/core/metadata.js';

const batch: MetaRecord[] = [
  { t: 'write', ino: 5, off: 10, len: 3, ref: { wal: 2, off: 4128 }, mtime: 1.5 },
  { t: 'xattr', ino: 5, name: 'user.x', value: Buffer.from('v').toString('base64'), ctime: 2 },
];

function walEntry(segment: number, seq: number, data: Buffer | null, b: MetaRecord[]): Buffer {
  const meta = encodeBatchJson(b);
  const header = encodeWalEntryHeader(segment, seq, data, meta);
  return Buffer.concat(data ? [header, data, meta] : [header, meta]);
}

test('WAL entry round trip, data kept out of JSON', () => {
  const data = Buffer.from('abc');
  const buf = walEntry(2, 17, data, batch);
  const h = decodeWalEntryHeader(buf, 0);
  assert.ok(h);
  assert.equal(h.segment, 2);
  assert.equal(h.seq, 17);
  assert.equal(h.dataLength, 3);
  assert.equal(h.total, buf.length);
  assert.deepEqual(buf.subarray(WAL_ENTRY_HEADER_SIZE, WAL_ENTRY_HEADER_SIZE + 3), data);
  assert.deepEqual(decodeWalEntryBody(buf, 0, h), batch);
  // metadata-only entry
  const m = walEntry(1, 1, null, [{ t: 'unlink', dir: 1, name: 'x' }]);
  const mh = decodeWalEntryHeader(m, 0)!;
  assert.equal(mh.dataLength, 0);
  assert.deepEqual(decodeWalEntryBody(m, 0, mh), [{ t: 'unlink', dir: 1, name: 'x' }]);
});

test('WAL entry: any flipped byte or truncation is rejected', () => {
  const buf = walEntry(3, 9, Buffer.alloc(100, 1), batch);
  for (let i = 0; i < buf.length; i += 7) {
    const bad = Buffer.from(buf);
    bad[i] = bad[i]! ^ 0x40;
    const h = decodeWalEntryHeader(bad, 0);
    assert.ok(h === null || decodeWalEntryBody(bad, 0, h) === null, `flip at ${i} not detected`);
  }
  const h = decodeWalEntryHeader(buf, 0)!;
  assert.equal(decodeWalEntryBody(buf.subarray(0, buf.length - 1), 0, h), null);
  assert.equal(decodeWalEntryHeader(Buffer.alloc(64), 0), null);
});

test('journal segment round trip, plain and gzipped, and damage detection', () => {
  const header = { v: 1 as const, seq: 4, epoch: 2, walId: 'w', walSeq: 99, time: 5, objects: ['00000002/0000000001'] };
  const small = encodeSegment(header, [batch, []]);
  assert.deepEqual(decodeSegment(small), { header, batches: [batch, []] });
  const many: MetaRecord[][] = [];
  for (let i = 0; i < 2000; i++) many.push([{ t: 'link', dir: 1, name: `file-${i}`, ino: i + 2 }]);
  const big = encodeSegment(header, many);
  assert.equal(big.readUInt32LE(0), 0x5a4a5753, 'large segments are gzipped');
  assert.ok(big.length < JSON.stringify(many).length / 3);
  assert.deepEqual(decodeSegment(big).batches, many);
  const bad = Buffer.from(small);
  bad[bad.length - 10] = bad[bad.length - 10]! ^ 1;
  assert.throws(() => decodeSegment(bad), RecordDecodeError);
  assert.throws(() => decodeSegment(Buffer.from('hello world!')), RecordDecodeError);
});

test('checkpoint round trip restores the same state', () => {
  const st = FsState.create(1000);
  st.apply(st.planMkdir('/a', 0o755, { uid: 1, gid: 2 }, 1001));
  const header = { v: 1 as const, seq: 7, epoch: 3, walId: 'w', walSeq: 12, maxEpoch: 3, time: 9 };
  const buf = encodeCheckpoint(header, st.snapshot());
  assert.deepEqual(decodeCheckpointHeader(buf), header);
  const { header: h2, snapshot } = decodeCheckpoint(buf);
  assert.deepEqual(h2, header);
  const back = FsState.restore(snapshot);
  assert.deepEqual(back.getattr(back.lookup('/a')), st.getattr(st.lookup('/a')));
  const bad = Buffer.from(buf);
  bad[20] = bad[20]! ^ 1;
  assert.throws(() => decodeCheckpoint(bad), RecordDecodeError);
});
