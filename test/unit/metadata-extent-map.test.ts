/**
 * Unit tests of ExtentMap (src/core/extent-map.ts): overlapping writes, splits at both ends, holes,
 * truncate down and up, rebase after splits, merging, snapshot encoding, and a brute-force model check.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExtentMap, type Extent } from '../../src/core/extent-map.js';
import type { DataRef, ExtentPiece } from '../../src/core/types.js';

const obj = (o: string, off: number): DataRef => ({ obj: o, off });
const wal = (w: number, off: number): DataRef => ({ wal: w, off });

function ext(m: ExtentMap): Extent[] {
  m.checkInvariants();
  return m.all();
}

test('an empty map is one hole', () => {
  const m = new ExtentMap();
  assert.deepEqual(m.pieces(0, 100, 50), [{ off: 0, len: 50, ref: null }]);
  assert.deepEqual(m.pieces(60, 10, 50), []);
  assert.deepEqual(m.pieces(10, 0, 50), []);
  assert.equal(m.count, 0);
  assert.equal(m.end, 0);
});

test('a write inside an extent splits it at both ends with adjusted ref offsets', () => {
  const m = new ExtentMap();
  m.write(0, 100, obj('a', 1000));
  m.write(40, 10, wal(3, 7));
  assert.deepEqual(ext(m), [
    { off: 0, len: 40, ref: obj('a', 1000) },
    { off: 40, len: 10, ref: wal(3, 7) },
    { off: 50, len: 50, ref: obj('a', 1050) },
  ]);
  assert.equal(m.walRefCount, 1);
});

test('a write over several extents shadows them and trims the ends', () => {
  const m = new ExtentMap();
  m.write(0, 10, obj('a', 0));
  m.write(20, 10, obj('b', 0));
  m.write(40, 10, obj('c', 0));
  m.write(5, 40, wal(1, 100));
  assert.deepEqual(ext(m), [
    { off: 0, len: 5, ref: obj('a', 0) },
    { off: 5, len: 40, ref: wal(1, 100) },
    { off: 45, len: 5, ref: obj('c', 5) },
  ]);
});

test('an exact overwrite replaces; touching writes do not disturb neighbours', () => {
  const m = new ExtentMap();
  m.write(10, 10, obj('a', 0));
  m.write(10, 10, obj('b', 0));
  m.write(0, 10, obj('c', 0));
  m.write(20, 10, obj('d', 0));
  assert.deepEqual(ext(m), [
    { off: 0, len: 10, ref: obj('c', 0) },
    { off: 10, len: 10, ref: obj('b', 0) },
    { off: 20, len: 10, ref: obj('d', 0) },
  ]);
});

test('seamless neighbours are merged (sequential writes into one object)', () => {
  const m = new ExtentMap();
  m.write(0, 4096, obj('a', 0));
  m.write(4096, 4096, obj('a', 4096));
  m.write(8192, 100, obj('a', 8192));
  assert.deepEqual(ext(m), [{ off: 0, len: 8292, ref: obj('a', 0) }]);
  // Same object, not contiguous in the object: no merge.
  m.write(8292, 8, obj('a', 9000));
  assert.equal(ext(m).length, 2);
  // Re-writing the middle with the same bytes re-merges into one.
  m.write(100, 50, obj('x', 0));
  assert.equal(ext(m).length, 4);
  m.write(100, 50, obj('a', 100));
  assert.deepEqual(ext(m), [
    { off: 0, len: 8292, ref: obj('a', 0) },
    { off: 8292, len: 8, ref: obj('a', 9000) },
  ]);
});

test('pieces report holes between, before and after extents, clipped to size', () => {
  const m = new ExtentMap();
  m.write(10, 10, obj('a', 0));
  m.write(30, 10, obj('b', 0));
  const want: ExtentPiece[] = [
    { off: 5, len: 5, ref: null },
    { off: 10, len: 10, ref: obj('a', 0) },
    { off: 20, len: 10, ref: null },
    { off: 30, len: 10, ref: obj('b', 0) },
    { off: 40, len: 10, ref: null },
  ];
  assert.deepEqual(m.pieces(5, 100, 50), want);
  assert.deepEqual(m.pieces(15, 20, 50), [
    { off: 15, len: 5, ref: obj('a', 5) },
    { off: 20, len: 10, ref: null },
    { off: 30, len: 5, ref: obj('b', 0) },
  ]);
  assert.deepEqual(m.pieces(12, 100, 14), [{ off: 12, len: 2, ref: obj('a', 2) }]);
});

test('truncate down trims the straddling extent; growing again reads a hole', () => {
  const m = new ExtentMap();
  m.write(0, 10, obj('a', 0));
  m.write(20, 10, obj('b', 0));
  m.truncate(25);
  assert.deepEqual(ext(m), [
    { off: 0, len: 10, ref: obj('a', 0) },
    { off: 20, len: 5, ref: obj('b', 0) },
  ]);
  m.truncate(5);
  assert.deepEqual(ext(m), [{ off: 0, len: 5, ref: obj('a', 0) }]);
  // Size goes back up to 30: bytes 5..30 are a hole, not the old data.
  assert.deepEqual(m.pieces(0, 30, 30), [
    { off: 0, len: 5, ref: obj('a', 0) },
    { off: 5, len: 25, ref: null },
  ]);
  m.truncate(0);
  assert.deepEqual(ext(m), []);
  assert.equal(m.count, 0);
});

test('rebase rewrites only the pieces of that write still visible, after splits', () => {
  const m = new ExtentMap();
  m.write(0, 100, wal(1, 1000)); // write A
  m.write(30, 10, wal(1, 5000)); // write B splits A
  m.write(90, 20, wal(2, 0)); // write C shadows A's tail
  assert.equal(m.walRefCount, 4);
  const moved = m.rebase(0, 100, wal(1, 1000), obj('o1', 200));
  assert.equal(moved, 30 + 50);
  assert.deepEqual(ext(m), [
    { off: 0, len: 30, ref: obj('o1', 200) },
    { off: 30, len: 10, ref: wal(1, 5000) },
    { off: 40, len: 50, ref: obj('o1', 240) },
    { off: 90, len: 20, ref: wal(2, 0) },
  ]);
  // Rebasing B into the same object right where it continues A merges everything around it.
  m.rebase(30, 10, wal(1, 5000), obj('o1', 230));
  assert.deepEqual(ext(m), [
    { off: 0, len: 90, ref: obj('o1', 200) },
    { off: 90, len: 20, ref: wal(2, 0) },
  ]);
  assert.equal(m.walRefCount, 1);
  // A rebase for data that is no longer referenced changes nothing.
  assert.equal(m.rebase(0, 10, wal(9, 0), obj('zz', 0)), 0);
  const objs = new Set<string>();
  m.collectObjects(objs);
  assert.deepEqual([...objs], ['o1']);
});

test('rebase ignores WAL refs of the same segment that belong to another write', () => {
  const m = new ExtentMap();
  m.write(0, 10, wal(1, 0)); // write X at wal offset 0
  m.write(10, 10, wal(1, 100)); // write Y at wal offset 100
  m.rebase(10, 10, wal(1, 0), obj('o', 0)); // a (wrong) file range for X's data: not at the same relative place
  assert.deepEqual(ext(m), [
    { off: 0, len: 10, ref: wal(1, 0) },
    { off: 10, len: 10, ref: wal(1, 100) },
  ]);
});

test('flat encoding round trips', () => {
  const m = new ExtentMap();
  for (let k = 0; k < 2000; k++) m.write(k * 10, 5, k % 2 ? obj(`o${k % 7}`, k) : wal(k % 3, k * 3));
  const back = ExtentMap.fromFlat(JSON.parse(JSON.stringify(m.toFlat())));
  back.checkInvariants();
  assert.deepEqual(back.all(), m.all());
  assert.equal(back.walRefCount, m.walRefCount);
  // And it keeps working after restore.
  back.write(3, 20000, obj('big', 0));
  back.checkInvariants();
  assert.deepEqual(back.all(), [
    { off: 0, len: 3, ref: wal(0, 0) },
    { off: 3, len: 20000, ref: obj('big', 0) },
  ]);
});

test('many random writes agree with a byte-by-byte model (across chunk boundaries)', () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let run = 0; run < 20; run++) {
    const m = new ExtentMap();
    // model[i]: 0 = hole, (source + 1) * 1e6 + stored offset otherwise (sources: wal 0..2 = 0..2, object 'o' = 3).
    const model = new Float64Array(24000);
    let size = 0;
    const N = 20000;
    for (let step = 0; step < 1200; step++) {
      const op = rnd(20);
      if (op < 16) {
        const off = rnd(N);
        const len = 1 + rnd(op === 0 ? 3000 : 40);
        const w = rnd(3);
        const r = rnd(100000);
        m.write(off, len, wal(w, r));
        for (let k = 0; k < len; k++) model[off + k] = (w + 1) * 1e6 + r + k;
        size = Math.max(size, off + len);
      } else if (op < 17) {
        const s = rnd(N);
        m.truncate(s);
        model.fill(0, s);
        size = s;
      } else {
        const off = rnd(N);
        const len = 1 + rnd(100);
        const r = rnd(100000);
        m.rebase(off, len, wal(0, r), obj('o', 7));
        for (let k = 0; k < len; k++) if (model[off + k] === 1e6 + r + k) model[off + k] = 4e6 + 7 + k;
      }
    }
    m.checkInvariants();
    let pos = 0;
    for (const p of m.pieces(0, Infinity, size)) {
      assert.equal(p.off, pos);
      for (let k = 0; k < p.len; k++) {
        const got = p.ref === null ? 0 : 'wal' in p.ref ? (p.ref.wal + 1) * 1e6 + p.ref.off + k : 4e6 + p.ref.off + k;
        if (got !== model[p.off + k]) assert.fail(`run ${run} byte ${p.off + k}: ${got} != ${model[p.off + k]}`);
      }
      pos += p.len;
    }
    assert.equal(pos, size);
  }
});

test('262144 random 4 KiB writes (a 1 GiB file) stay fast', () => {
  const m = new ExtentMap();
  const B = 262144;
  const order = Array.from({ length: B }, (_, i) => i);
  let seed = 7;
  for (let i = B - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const t0 = performance.now();
  for (const b of order) m.write(b * 4096, 4096, obj(`o${b % 5}`, b * 8192));
  const ms = performance.now() - t0;
  assert.equal(m.count, B);
  m.checkInvariants();
  assert.ok(ms < 15000, `took ${ms} ms`);
  const p = m.pieces(4096 * 1000 + 100, 8192, B * 4096);
  assert.deepEqual(p, [
    { off: 4096 * 1000 + 100, len: 3996, ref: obj('o0', 1000 * 8192 + 100) },
    { off: 4096 * 1001, len: 4096, ref: obj('o1', 1001 * 8192) },
    { off: 4096 * 1002, len: 100, ref: obj('o2', 1002 * 8192) },
  ]);
  // A large overwrite collapses them.
  m.write(0, B * 4096, obj('whole', 0));
  m.checkInvariants();
  assert.equal(m.count, 1);
});
