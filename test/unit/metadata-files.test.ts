/**
 * Unit tests of FsState's file data and attribute operations: write/truncate (extents, size, times, EISDIR,
 * EINVAL, EFBIG), rebase and WAL refs, chmod/chown/utimens, xattrs with their errnos, open-but-unlinked
 * files and orphans, statfs, snapshot/restore.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FsState, MAX_FILE_SIZE, type Snapshot } from '../../src/core/metadata.js';
import {
  ROOT_INO,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  XATTR_CREATE,
  XATTR_REPLACE,
  XATTR_SIZE_MAX,
} from '../../src/core/types.js';
import { fails, ROOT, run } from './fsstate-helpers.js';


function withFile(): { s: FsState; f: number } {
  const s = FsState.create(1);
  run(s, () => s.planCreate('/f', 0o644, ROOT, 2, true));
  return { s, f: s.lookup('/f') };
}

test('write: extents, size growth, m/ctime; zero-length writes change nothing', () => {
  const { s, f } = withFile();
  run(s, () => s.planWrite(f, 10, 5, { wal: 1, off: 100 }, 50));
  let a = s.getattr(f);
  assert.deepEqual([a.size, a.mtime, a.ctime, a.atime], [15, 50, 50, 2]);
  assert.deepEqual(s.extents(f, 0, 100), [
    { off: 0, len: 10, ref: null },
    { off: 10, len: 5, ref: { wal: 1, off: 100 } },
  ]);
  run(s, () => s.planWrite(f, 0, 3, { obj: 'o', off: 0 }, 60));
  a = s.getattr(f);
  assert.equal(a.size, 15, 'a write inside the file does not change the size');
  assert.equal(a.mtime, 60);
  assert.deepEqual(s.planWrite(f, 100, 0, { wal: 1, off: 0 }, 70), []);
  assert.deepEqual(s.extents(f, 12, 1), [{ off: 12, len: 1, ref: { wal: 1, off: 102 } }]);
  assert.deepEqual(s.extents(f, 20, 10), []);
});

test('write/truncate errors: EISDIR, EINVAL (negative, special files), EFBIG, ENOENT', () => {
  const { s, f } = withFile();
  run(s, () => s.planMkdir('/d', 0o755, ROOT, 1));
  run(s, () => s.planSymlink('f', '/l', ROOT, 1));
  const d = s.lookup('/d');
  fails(s, 'EISDIR', () => s.planWrite(d, 0, 1, { wal: 1, off: 0 }, 1));
  fails(s, 'EISDIR', () => s.planTruncate(d, 0, 1));
  fails(s, 'EINVAL', () => s.planTruncate(s.lookup('/l'), 0, 1));
  fails(s, 'EINVAL', () => s.planWrite(f, -1, 1, { wal: 1, off: 0 }, 1));
  fails(s, 'EINVAL', () => s.planWrite(f, 0, -1, { wal: 1, off: 0 }, 1));
  fails(s, 'EINVAL', () => s.planTruncate(f, -1, 1));
  fails(s, 'EINVAL', () => s.planTruncate(f, 1.5, 1));
  fails(s, 'EFBIG', () => s.planTruncate(f, MAX_FILE_SIZE + 1, 1));
  fails(s, 'EFBIG', () => s.planWrite(f, MAX_FILE_SIZE - 1, 2, { wal: 1, off: 0 }, 1));
  run(s, () => s.planTruncate(f, MAX_FILE_SIZE, 1));
  run(s, () => s.planWrite(f, MAX_FILE_SIZE - 2, 2, { wal: 1, off: 0 }, 1));
  fails(s, 'ENOENT', () => s.planWrite(9999, 0, 1, { wal: 1, off: 0 }, 1));
  fails(s, 'ENOENT', () => s.planTruncate(9999, 0, 1));
  fails(s, 'EISDIR', () => s.extents(d, 0, 1));
});

test('truncate down then up exposes a hole, sets m/ctime, and keeps statfs used blocks right', () => {
  const { s, f } = withFile();
  const free0 = s.statfs().bfree;
  run(s, () => s.planWrite(f, 0, 10000, { obj: 'a', off: 0 }, 5));
  assert.equal(s.statfs().bfree, free0 - 3);
  run(s, () => s.planTruncate(f, 100, 6));
  assert.equal(s.statfs().bfree, free0 - 1);
  run(s, () => s.planTruncate(f, 5000, 7));
  assert.equal(s.statfs().bfree, free0 - 2);
  const a = s.getattr(f);
  assert.deepEqual([a.size, a.mtime, a.ctime], [5000, 7, 7]);
  assert.deepEqual(s.extents(f, 0, 10000), [
    { off: 0, len: 100, ref: { obj: 'a', off: 0 } },
    { off: 100, len: 4900, ref: null },
  ]);
  run(s, () => s.planUnlink('/f', 8));
  assert.equal(s.statfs().bfree, free0);
});

test('rebase moves WAL refs to objects; hasWalRefs and referencedObjects follow', () => {
  const { s, f } = withFile();
  assert.equal(s.hasWalRefs(), false);
  run(s, () => s.planWrite(f, 0, 100, { wal: 4, off: 0 }, 1));
  run(s, () => s.planWrite(f, 50, 10, { wal: 4, off: 500 }, 1));
  assert.equal(s.hasWalRefs(), true);
  assert.deepEqual(s.filesWithWalRefs(), [f]);
  s.rebase(f, 0, 100, { wal: 4, off: 0 }, { obj: 'A', off: 1000 });
  assert.equal(s.hasWalRefs(), true);
  s.rebase(f, 50, 10, { wal: 4, off: 500 }, { obj: 'B', off: 0 });
  assert.equal(s.hasWalRefs(), false);
  assert.deepEqual(s.extents(f, 0, 100), [
    { off: 0, len: 50, ref: { obj: 'A', off: 1000 } },
    { off: 50, len: 10, ref: { obj: 'B', off: 0 } },
    { off: 60, len: 40, ref: { obj: 'A', off: 1060 } },
  ]);
  assert.deepEqual([...s.referencedObjects()].sort(), ['A', 'B']);
  assert.equal(s.extentCount(f), 3);
  // Rebasing a freed inode is harmless.
  run(s, () => s.planUnlink('/f', 2));
  s.rebase(f, 0, 1, { wal: 4, off: 0 }, { obj: 'C', off: 0 });
  assert.deepEqual([...s.referencedObjects()], []);
  // WAL refs that are truncated away no longer count.
  run(s, () => s.planCreate('/g', 0o644, ROOT, 3, true));
  const g = s.lookup('/g');
  run(s, () => s.planWrite(g, 0, 10, { wal: 5, off: 0 }, 1));
  assert.equal(s.hasWalRefs(), true);
  run(s, () => s.planTruncate(g, 0, 1));
  assert.equal(s.hasWalRefs(), false);
});

test('chmod keeps the type bits and sets ctime; utimens sets a/mtime and ctime', () => {
  const { s, f } = withFile();
  run(s, () => s.planChmod(f, S_IFDIR | 0o7755, 40));
  let a = s.getattr(f);
  assert.equal(a.mode, S_IFREG | 0o7755);
  assert.deepEqual([a.ctime, a.mtime], [40, 2]);
  run(s, () => s.planChmod(ROOT_INO, 0o700, 41));
  assert.equal(s.getattr(ROOT_INO).mode, S_IFDIR | 0o700);
  run(s, () => s.planUtimens(f, 111.5, 222, 300));
  a = s.getattr(f);
  assert.deepEqual([a.atime, a.mtime, a.ctime], [111.5, 222, 300]);
  fails(s, 'ENOENT', () => s.planChmod(12345, 0o644, 1));
});

test('chown: -1 leaves a field alone, sets ctime, clears setuid (and group-exec setgid) of non-directories', () => {
  const { s, f } = withFile();
  run(s, () => s.planChown(f, 1000, -1, 10));
  let a = s.getattr(f);
  assert.deepEqual([a.uid, a.gid, a.ctime], [1000, 0, 10]);
  run(s, () => s.planChown(f, 0xffffffff, 100, 11));
  a = s.getattr(f);
  assert.deepEqual([a.uid, a.gid], [1000, 100]);
  run(s, () => s.planChmod(f, 0o6755, 12));
  run(s, () => s.planChown(f, 5, 5, 13));
  assert.equal(s.getattr(f).mode, S_IFREG | 0o755);
  run(s, () => s.planChmod(f, 0o6745, 12));
  run(s, () => s.planChown(f, 5, 5, 13));
  assert.equal(s.getattr(f).mode, S_IFREG | 0o2745, 'setgid without group exec is mandatory locking: kept');
  run(s, () => s.planMkdir('/d', 0o755, ROOT, 1));
  const d = s.lookup('/d');
  run(s, () => s.planChmod(d, 0o6755, 12));
  run(s, () => s.planChown(d, 5, 5, 13));
  assert.equal(s.getattr(d).mode, S_IFDIR | 0o6755);
});

test('xattrs: set/get/list/remove, flags, ctime, copies', () => {
  const { s, f } = withFile();
  run(s, () => s.planSetxattr(f, 'user.a', Buffer.from('one'), 0, 10));
  run(s, () => s.planSetxattr(f, 'user.b', Buffer.alloc(0), XATTR_CREATE, 11));
  assert.equal(s.getattr(f).ctime, 11);
  assert.equal(s.getattr(f).mtime, 2);
  assert.deepEqual(s.listxattr(f), ['user.a', 'user.b']);
  assert.equal(s.getxattr(f, 'user.a').toString(), 'one');
  assert.equal(s.getxattr(f, 'user.b').length, 0);
  fails(s, 'EEXIST', () => s.planSetxattr(f, 'user.a', Buffer.from('x'), XATTR_CREATE, 1));
  fails(s, 'ENODATA', () => s.planSetxattr(f, 'user.zz', Buffer.from('x'), XATTR_REPLACE, 1));
  run(s, () => s.planSetxattr(f, 'user.a', Buffer.from('two'), XATTR_REPLACE, 12));
  const got = s.getxattr(f, 'user.a');
  got[0] = 0x41;
  assert.equal(s.getxattr(f, 'user.a').toString(), 'two', 'getxattr returns a copy');
  fails(s, 'ENODATA', () => s.getxattr(f, 'user.nope'));
  fails(s, 'ENODATA', () => s.planRemovexattr(f, 'user.nope', 1));
  run(s, () => s.planRemovexattr(f, 'user.a', 13));
  assert.deepEqual(s.listxattr(f), ['user.b']);
  assert.equal(s.getattr(f).ctime, 13);
  run(s, () => s.planSetxattr(ROOT_INO, 'trusted.x', Buffer.from([0, 1, 255]), 0, 1));
  assert.deepEqual([...s.getxattr(ROOT_INO, 'trusted.x')], [0, 1, 255]);
});

test('xattr errors: ERANGE names, E2BIG sizes, ENOTSUP namespaces, EINVAL flags and empty suffix, EPERM user.* on symlinks, ENOSPC', () => {
  const { s, f } = withFile();
  fails(s, 'ERANGE', () => s.planSetxattr(f, '', Buffer.from('x'), 0, 1));
  fails(s, 'ERANGE', () => s.planSetxattr(f, 'user.' + 'n'.repeat(251), Buffer.from('x'), 0, 1));
  run(s, () => s.planSetxattr(f, 'user.' + 'n'.repeat(250), Buffer.from('x'), 0, 1));
  fails(s, 'ERANGE', () => s.getxattr(f, 'user.' + 'n'.repeat(251)));
  fails(s, 'E2BIG', () => s.planSetxattr(f, 'user.big', Buffer.alloc(XATTR_SIZE_MAX + 1), 0, 1));
  run(s, () => s.planSetxattr(f, 'user.big', Buffer.alloc(XATTR_SIZE_MAX), 0, 1));
  fails(s, 'ENOTSUP', () => s.planSetxattr(f, 'foo.bar', Buffer.from('x'), 0, 1));
  fails(s, 'ENOTSUP', () => s.getxattr(f, 'nonamespace'));
  fails(s, 'EINVAL', () => s.planSetxattr(f, 'user.', Buffer.from('x'), 0, 1));
  fails(s, 'EINVAL', () => s.planSetxattr(f, 'user.q', Buffer.from('x'), 4, 1));
  run(s, () => s.planSymlink('f', '/l', ROOT, 1));
  const l = s.lookup('/l');
  assert.equal(s.getattr(l).mode & S_IFLNK, S_IFLNK);
  fails(s, 'EPERM', () => s.planSetxattr(l, 'user.q', Buffer.from('x'), 0, 1));
  fails(s, 'ENODATA', () => s.getxattr(l, 'user.q'));
  run(s, () => s.planSetxattr(l, 'trusted.q', Buffer.from('x'), 0, 1));
  for (let k = 0; k < 14; k++) run(s, () => s.planSetxattr(f, `user.v${k}`, Buffer.alloc(XATTR_SIZE_MAX), 0, 1));
  fails(s, 'ENOSPC', () => s.planSetxattr(f, 'user.v99', Buffer.alloc(XATTR_SIZE_MAX), 0, 1));
  fails(s, 'ENOENT', () => s.listxattr(4242));
});

test('an unlinked open file stays readable and writable until its last close frees it', () => {
  const { s, f } = withFile();
  run(s, () => s.planWrite(f, 0, 10, { obj: 'x', off: 0 }, 1));
  s.opened(f);
  s.opened(f);
  const b = run(s, () => s.planUnlink('/f', 5));
  assert.ok(!b.some((r) => r.t === 'free'));
  assert.equal(s.getattr(f).nlink, 0);
  assert.deepEqual(s.orphans(), [f]);
  assert.throws(() => s.lookup('/f'));
  run(s, () => s.planWrite(f, 10, 10, { obj: 'y', off: 0 }, 6));
  assert.equal(s.getattr(f).size, 20);
  assert.equal(s.extents(f, 0, 100).length, 2);
  assert.deepEqual([...s.referencedObjects()].sort(), ['x', 'y']);
  assert.deepEqual(s.planClosed(f), [], 'one handle is still open');
  const last = s.planClosed(f);
  assert.deepEqual(last, [{ t: 'free', ino: f }]);
  s.apply(last);
  assert.equal(s.has(f), false);
  assert.deepEqual(s.orphans(), []);
  assert.deepEqual([...s.referencedObjects()], []);
  // Closing a linked file frees nothing.
  run(s, () => s.planCreate('/g', 0o644, ROOT, 1, true));
  const g = s.lookup('/g');
  s.opened(g);
  assert.deepEqual(s.planClosed(g), []);
  assert.equal(s.isOpen(g), false);
});

test('an open directory removed by rmdir stays as an orphan until closed', () => {
  const s = FsState.create(1);
  run(s, () => s.planMkdir('/d', 0o755, ROOT, 1));
  const d = s.lookup('/d');
  s.opened(d);
  const b = run(s, () => s.planRmdir('/d', 2));
  assert.ok(!b.some((r) => r.t === 'free'));
  assert.equal(s.getattr(d).nlink, 0);
  assert.deepEqual(s.readdir(d), []);
  assert.equal(s.getattr(ROOT_INO).nlink, 2);
  s.apply(s.planClosed(d));
  assert.equal(s.has(d), false);
});

test('orphans left by a crash (nlink 0, not open) are freed by planFreeOrphans after restore', () => {
  const { s, f } = withFile();
  s.opened(f);
  run(s, () => s.planUnlink('/f', 2));
  const snap = JSON.parse(JSON.stringify(s.snapshot())) as Snapshot;
  const r = FsState.restore(snap);
  assert.deepEqual(r.orphans(), [f]);
  const batch = r.planFreeOrphans();
  assert.deepEqual(batch, [{ t: 'free', ino: f }]);
  r.apply(batch);
  assert.deepEqual(r.orphans(), []);
  assert.equal(r.has(f), false);
  // The live state keeps its open orphan.
  assert.deepEqual(s.planFreeOrphans(), []);
});

test('statfs: 4 KiB blocks, used = sum of file sizes in 4 KiB blocks, inode counts, namemax', () => {
  const s = FsState.create(1);
  const st0 = s.statfs();
  assert.equal(st0.bsize, 4096);
  assert.equal(st0.frsize, 4096);
  assert.equal(st0.namemax, 255);
  assert.equal(st0.blocks, st0.bfree);
  assert.ok(st0.blocks >= 2 ** 30);
  assert.equal(st0.files - st0.ffree, 1);
  run(s, () => s.planCreate('/a', 0o644, ROOT, 1, true));
  run(s, () => s.planCreate('/b', 0o644, ROOT, 1, true));
  run(s, () => s.planWrite(s.lookup('/a'), 0, 1, { obj: 'o', off: 0 }, 1));
  run(s, () => s.planWrite(s.lookup('/b'), 8191, 2, { obj: 'o', off: 0 }, 1));
  const st = s.statfs();
  assert.equal(st0.bfree - st.bfree, 1 + 3);
  assert.equal(st.bavail, st.bfree);
  assert.equal(st.files - st.ffree, 3);
});

test('snapshot/restore round trips exactly (extents, xattrs, symlinks, nextIno, orphans) through JSON', () => {
  const s = FsState.create(1, { uid: 3, gid: 4 });
  run(s, () => s.planMkdir('/d', 0o755, ROOT, 1));
  run(s, () => s.planCreate('/d/f', 0o600, ROOT, 1, true));
  const f = s.lookup('/d/f');
  for (let k = 0; k < 50; k++) run(s, () => s.planWrite(f, k * 100, 60, k % 2 ? { obj: `o${k}`, off: k } : { wal: 2, off: k * 1000 }, 1 + k));
  run(s, () => s.planSetxattr(f, 'user.bin', Buffer.from([0, 200, 13]), 0, 5));
  run(s, () => s.planSymlink('/d/f', '/l', ROOT, 6));
  run(s, () => s.planCreate('/gone', 0o644, ROOT, 1, true));
  const gone = s.lookup('/gone');
  s.opened(gone);
  run(s, () => s.planUnlink('/gone', 7));
  const json = JSON.stringify(s.snapshot());
  const r = FsState.restore(JSON.parse(json) as Snapshot);
  assert.equal(JSON.stringify(r.snapshot()), json);
  assert.equal(r.nextIno, s.nextIno);
  assert.deepEqual(r.extents(f, 0, 1e9), s.extents(f, 0, 1e9));
  assert.deepEqual([...r.getxattr(f, 'user.bin')], [0, 200, 13]);
  assert.equal(r.readlink(r.lookup('/l')), '/d/f');
  assert.deepEqual(r.orphans(), [gone]);
  assert.equal(r.hasWalRefs(), true);
  assert.deepEqual(r.statfs(), s.statfs());
  assert.deepEqual([...r.referencedObjects()].sort(), [...s.referencedObjects()].sort());
  // Continuing on both gives the same result.
  for (const x of [s, r]) {
    run(x, () => x.planRename('/d/f', '/f2', 0, 9));
    run(x, () => x.planCreate('/new', 0o644, ROOT, 9, true));
  }
  assert.deepEqual(r.snapshot(), s.snapshot());
  assert.throws(() => FsState.restore({ v: 2 } as unknown as Snapshot));
});

test('100k inodes: plans, snapshot and restore stay fast', () => {
  const s = FsState.create(1);
  const t0 = performance.now();
  for (let d = 0; d < 100; d++) run(s, () => s.planMkdir(`/d${d}`, 0o755, ROOT, 1));
  for (let i = 0; i < 100000; i++) {
    const p = `/d${i % 100}/file-${i}`;
    run(s, () => s.planCreate(p, 0o644, ROOT, 2, true));
    if (i % 10 === 0) run(s, () => s.planWrite(s.lookup(p), 0, 4096, { obj: `o${i}`, off: 0 }, 3));
  }
  const tCreate = performance.now() - t0;
  const t1 = performance.now();
  const json = JSON.stringify(s.snapshot());
  const r = FsState.restore(JSON.parse(json) as Snapshot);
  const tSnap = performance.now() - t1;
  assert.equal(r.inodeCount, 100101);
  assert.equal(r.readdir(r.lookup('/d7')).length, 1000);
  assert.ok(tCreate < 30000, `creates took ${tCreate} ms`);
  assert.ok(tSnap < 15000, `snapshot+restore took ${tSnap} ms`);
});
