import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { ObjectCache } from '../../src/core/object-cache.js';
import { FsError } from '../../src/core/errors.js';
import { tempDir, pattern, sleep, KiB } from './volume-helpers.js';

function fakeRemote(objects: Map<string, Buffer>, delayMs = 5) {
  const calls: string[] = [];
  return {
    calls,
    fetch: async (id: string) => {
      calls.push(id);
      await sleep(delayMs);
      const b = objects.get(id);
      if (!b) throw new Error(`no ${id}`);
      return Buffer.from(b);
    },
  };
}

const id = (n: number) => `00000001/${n.toString(16).padStart(10, '0')}`;

test('single-flight: concurrent reads of one object download it once; reads copy the right range', async () => {
  const dir = await tempDir('swiftfs-cache-');
  try {
    const objects = new Map([[id(1), pattern(100 * KiB, 1)]]);
    const remote = fakeRemote(objects, 30);
    const cache = await ObjectCache.open({ dir, maxBytes: 1 << 30, fetch: remote.fetch });
    const outs = Array.from({ length: 10 }, () => Buffer.alloc(1000));
    await Promise.all(outs.map((o, i) => cache.read(id(1), i * 1000, 1000, o, 0)));
    assert.equal(remote.calls.length, 1);
    outs.forEach((o, i) => assert.deepEqual(o, objects.get(id(1))!.subarray(i * 1000, i * 1000 + 1000)));
    await assert.rejects(cache.read(id(1), 100 * KiB - 10, 20, Buffer.alloc(20), 0), (e: unknown) => e instanceof FsError && e.code === 'EIO');
    await cache.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('disk tier is bounded in bytes: eviction deletes files; survives restart; temp files are cleaned', async () => {
  const dir = await tempDir('swiftfs-cache-');
  try {
    const objects = new Map<string, Buffer>();
    for (let i = 0; i < 10; i++) objects.set(id(i), pattern(100 * KiB, i + 1));
    const remote = fakeRemote(objects, 1);
    const cache = await ObjectCache.open({ dir, maxBytes: 450 * KiB, memoryBytes: 150 * KiB, fetch: remote.fetch });
    for (let i = 0; i < 10; i++) await cache.get(id(i));
    await sleep(50);
    const files = async () => (await fs.readdir(path.join(dir, '00000001'))).filter((n) => !n.includes('.tmp')).sort();
    const kept = await files();
    assert.equal(kept.length, 4, `kept ${kept}`);
    assert.deepEqual(kept, [6, 7, 8, 9].map((n) => id(n).split('/')[1]));
    assert.ok(cache.stats().diskBytes <= 450 * KiB);
    await cache.close();
    await fs.writeFile(path.join(dir, '00000001', 'junk.tmp-1-1'), 'partial');

    const remote2 = fakeRemote(objects, 1);
    const again = await ObjectCache.open({ dir, maxBytes: 450 * KiB, fetch: remote2.fetch });
    assert.equal(again.stats().diskObjects, 4);
    const out = Buffer.alloc(100 * KiB);
    await again.read(id(8), 0, 100 * KiB, out, 0);
    assert.deepEqual(out, objects.get(id(8)));
    assert.equal(remote2.calls.length, 0, 'served from disk after restart');
    assert.ok(!(await fs.readdir(path.join(dir, '00000001'))).some((n) => n.includes('.tmp')));
    await again.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('insert() of an uploaded object avoids a download; prefetch downloads in the background, bounded', async () => {
  const dir = await tempDir('swiftfs-cache-');
  try {
    const objects = new Map<string, Buffer>();
    for (let i = 0; i < 12; i++) objects.set(id(i), pattern(10 * KiB, i + 3));
    let active = 0;
    let maxActive = 0;
    const fetches: string[] = [];
    const cache = await ObjectCache.open({
      dir,
      maxBytes: 1 << 30,
      readaheadConcurrency: 3,
      fetch: async (k) => {
        fetches.push(k);
        active++;
        maxActive = Math.max(maxActive, active);
        await sleep(20);
        active--;
        return Buffer.from(objects.get(k)!);
      },
    });
    await cache.insert(id(0), objects.get(id(0))!);
    const out = Buffer.alloc(10 * KiB);
    await cache.read(id(0), 0, 10 * KiB, out, 0);
    assert.deepEqual(out, objects.get(id(0)));
    assert.equal(fetches.length, 0);
    cache.prefetch([1, 2, 3, 4, 5, 6, 7, 8].map(id));
    cache.prefetch([1, 2].map(id)); // already coming: no second download
    await cache.read(id(8), 0, 10, Buffer.alloc(10), 0);
    await sleep(100);
    assert.equal(fetches.length, 8);
    assert.ok(maxActive <= 3, `max ${maxActive} parallel readaheads`);
    for (let i = 1; i <= 8; i++) assert.ok(cache.has(id(i)));
    await cache.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('cold random reads fetch 64 KiB-aligned ranges; an object read often is fetched whole in the background, read by range meanwhile', { timeout: 20_000 }, async () => {
  const dir = await tempDir('swiftfs-cache-');
  try {
    const obj = pattern(1024 * KiB, 9);
    const ranges: [number, number][] = [];
    let wholes = 0;
    let releaseWhole: () => void = () => undefined;
    const wholeGate = new Promise<void>((resolve) => (releaseWhole = resolve));
    const cache = await ObjectCache.open({
      dir,
      maxBytes: 1 << 30,
      fetch: async () => {
        wholes++;
        await wholeGate; // a slow whole download: random reads must not wait for it
        return Buffer.from(obj);
      },
      fetchRange: async (_id, offset, length) => {
        ranges.push([offset, length]);
        return Buffer.from(obj.subarray(offset, offset + length));
      },
    });
    const out = Buffer.alloc(4 * KiB);
    for (const off of [100 * KiB + 5, 700 * KiB, 62 * KiB]) {
      await cache.read(id(1), off, 4 * KiB, out, 0, false);
      assert.deepEqual(out, obj.subarray(off, off + 4 * KiB));
    }
    assert.deepEqual(ranges, [
      [64 * KiB, 64 * KiB],
      [640 * KiB, 64 * KiB],
      [0, 128 * KiB],
    ]);
    assert.equal(wholes, 0);
    assert.equal(cache.has(id(1)), false, 'ranges are not cached');
    await cache.read(id(1), 900 * KiB, 4 * KiB, out, 0, false);
    assert.equal(wholes, 1, 'the fourth read starts a whole fetch');
    assert.deepEqual(out, obj.subarray(900 * KiB, 904 * KiB));
    assert.equal(ranges.length, 4, 'and is itself served by a range, without waiting for the whole object');
    await cache.read(id(1), 300 * KiB, 4 * KiB, out, 0, false);
    assert.deepEqual(out, obj.subarray(300 * KiB, 304 * KiB));
    assert.equal(ranges.length, 5, 'a random read during the whole fetch is served by a range');
    assert.equal(wholes, 1, 'one whole fetch');
    assert.equal(cache.stats().fills, 1);
    // A sequential reader waits for the whole fetch under way instead of starting another one.
    const seqOut = Buffer.alloc(8 * KiB);
    const seqRead = cache.read(id(1), 500 * KiB, 8 * KiB, seqOut, 0, true);
    releaseWhole();
    await seqRead;
    assert.deepEqual(seqOut, obj.subarray(500 * KiB, 508 * KiB));
    assert.equal(wholes, 1);
    assert.ok(cache.has(id(1)));
    await cache.read(id(1), 1000, 10, Buffer.alloc(10), 0, false);
    assert.equal(wholes, 1);
    assert.equal(ranges.length, 5, 'held locally now: no more ranged GETs');
    await cache.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a cold object read at random is fetched whole at once while the disk tier has room for it, else after 3 ranged reads', { timeout: 20_000 }, async () => {
  const dir = await tempDir('swiftfs-cache-');
  try {
    const objects = new Map([1, 2, 3].map((n) => [id(n), pattern(1024 * KiB, n + 20)] as const));
    const wholes: string[] = [];
    const ranges: string[] = [];
    const cache = await ObjectCache.open({
      dir,
      maxBytes: 2 * 1024 * KiB,
      objectBytes: 1024 * KiB,
      fetch: async (k) => {
        wholes.push(k);
        await sleep(5);
        return Buffer.from(objects.get(k)!);
      },
      fetchRange: async (k, offset, length) => {
        ranges.push(k);
        return Buffer.from(objects.get(k)!.subarray(offset, offset + length));
      },
    });
    const out = Buffer.alloc(4 * KiB);
    const waitHeld = async (k: string) => {
      for (let i = 0; i < 200 && !(cache.has(k) && cache.stats().diskObjects >= 1 && cache.stats().loading === 0); i++) await sleep(10);
      assert.ok(cache.has(k), `${k} held after its background fetch`);
    };
    // Empty disk tier: room for a whole object, so the first random read of id(1) starts its whole fetch.
    await cache.read(id(1), 5000, 4 * KiB, out, 0, false);
    assert.deepEqual(out, objects.get(id(1))!.subarray(5000, 5000 + 4 * KiB));
    assert.deepEqual(wholes, [id(1)]);
    assert.deepEqual(ranges, [id(1)], 'the read itself did not wait for it');
    await waitHeld(id(1));
    for (let i = 0; i < 200 && cache.stats().diskBytes < 1024 * KiB; i++) await sleep(10);
    // 1 MiB of 2 used: still room for one more.
    await cache.read(id(2), 0, 4 * KiB, out, 0, false);
    assert.deepEqual(wholes, [id(1), id(2)]);
    await waitHeld(id(2));
    for (let i = 0; i < 200 && cache.stats().diskBytes < 2048 * KiB; i++) await sleep(10);
    assert.equal(cache.stats().diskBytes, 2048 * KiB);
    // Full: id(3) is read by range three times before its whole fetch would evict something.
    for (const off of [0, 300 * KiB, 600 * KiB]) {
      await cache.read(id(3), off, 4 * KiB, out, 0, false);
      assert.deepEqual(out, objects.get(id(3))!.subarray(off, off + 4 * KiB));
    }
    assert.deepEqual(wholes, [id(1), id(2)]);
    await cache.read(id(3), 900 * KiB, 4 * KiB, out, 0, false);
    assert.deepEqual(wholes, [id(1), id(2), id(3)]);
    assert.equal(cache.stats().fills, 3);
    await cache.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
