/**
 * The interval helpers of the commit pipeline (which bytes of a commit's writes survive later writes of the
 * same commit): the binary-search versions agree with a plain scan on random interval lists, and liveParts
 * stays fast for a commit of many random writes to one file (fsync mode local commits by time).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addInterval, liveParts, subtract } from '../../src/core/committer.js';
import type { MetaRecord } from '../../src/core/types.js';

function naiveSubtract(from: number, to: number, covered: [number, number][]): [number, number][] {
  const parts: [number, number][] = [];
  let at = from;
  for (const [a, b] of covered) {
    if (b <= at) continue;
    if (a >= to) break;
    if (a > at) parts.push([at, a - at]);
    at = Math.max(at, b);
    if (at >= to) break;
  }
  if (at < to) parts.push([at, to - at]);
  return parts;
}

function naiveAdd(list: [number, number][], a: number, b: number): [number, number][] {
  const out: [number, number][] = [];
  let placed = false;
  for (const iv of list) {
    if (iv[1] < a) out.push(iv);
    else if (iv[0] > b) {
      if (!placed) {
        out.push([a, b]);
        placed = true;
      }
      out.push(iv);
    } else {
      a = Math.min(a, iv[0]);
      b = Math.max(b, iv[1]);
    }
  }
  if (!placed) out.push([a, b]);
  return out;
}

const interval = fc.tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 30 })).map(([off, len]) => [off, off + len] as [number, number]);

test('addInterval and subtract agree with a plain scan', () => {
  fc.assert(
    fc.property(fc.array(interval, { maxLength: 40 }), interval, (adds, probe) => {
      let fast: [number, number][] = [];
      let slow: [number, number][] = [];
      for (const [a, b] of adds) {
        fast = addInterval(fast, a, b);
        slow = naiveAdd(slow, a, b);
        assert.deepEqual(fast, slow);
      }
      assert.deepEqual(subtract(probe[0], probe[1], fast), naiveSubtract(probe[0], probe[1], slow));
    }),
    { numRuns: 2000 },
  );
});

test('liveParts of 20 000 random 4 KiB writes to one file: correct and fast', () => {
  let x = 12345;
  const entries: { batch: MetaRecord[] }[] = [];
  const last = new Map<number, number>(); // page -> index of the last write to it
  for (let i = 0; i < 20_000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const page = x % 65536; // a 256 MiB file
    entries.push({ batch: [{ t: 'write', ino: 2, off: page * 4096, len: 4096, ref: { wal: 1, off: i * 4096 }, mtime: i }] });
    last.set(page, i);
  }
  const started = performance.now();
  const live = liveParts(entries);
  const ms = performance.now() - started;
  for (let i = 0; i < entries.length; i++) {
    const rec = entries[i]!.batch[0]! as Extract<MetaRecord, { t: 'write' }>;
    const alive = last.get(rec.off / 4096) === i;
    if (alive) assert.equal(live.has(rec), false, `write ${i} is the last to its page: entirely alive`);
    else assert.deepEqual(live.get(rec), [], `write ${i} is overwritten later: dead`);
  }
  assert.ok(ms < 1000, `liveParts took ${ms.toFixed(0)} ms`);
});
