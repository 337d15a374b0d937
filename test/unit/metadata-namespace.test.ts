/**
 * Unit tests of FsState's namespace operations: lookup, create, mknod, mkdir, symlink, link, unlink, rmdir,
 * with the errno Linux (ext4) gives for each failure, nlink counting and the times each operation sets.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FsState } from '../../src/core/metadata.js';
import { ROOT_INO, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, type MetaRecord } from '../../src/core/types.js';
import { fails, ROOT, run } from './fsstate-helpers.js';

const ALICE = { uid: 1000, gid: 100 };

function fresh(): FsState {
  const s = FsState.create(1000);
  run(s, () => s.planMkdir('/d', 0o755, ROOT, 2000));
  run(s, () => s.planCreate('/d/f', 0o644, ROOT, 3000, true));
  return s;
}

test('a fresh state has only the root directory', () => {
  const s = FsState.create(5, { uid: 7, gid: 8 }, 0o700);
  const a = s.getattr(ROOT_INO);
  assert.equal(a.mode, S_IFDIR | 0o700);
  assert.equal(a.nlink, 2);
  assert.deepEqual([a.uid, a.gid, a.atime, a.mtime, a.ctime, a.btime], [7, 8, 5, 5, 5, 5]);
  assert.deepEqual(s.readdir(ROOT_INO), []);
  assert.equal(s.lookup('/'), ROOT_INO);
  assert.equal(s.nextIno, 2);
});

test('lookup: ENOENT, ENOTDIR, ENAMETOOLONG, EINVAL for a relative path', () => {
  const s = fresh();
  assert.equal(s.lookup('/d/f'), s.readdir(s.lookup('/d'))[0]!.attr.ino);
  assert.equal(s.lookup('/d/'), s.lookup('/d'));
  fails(s, 'ENOENT', () => s.lookup('/nope'));
  fails(s, 'ENOENT', () => s.lookup('/nope/f'));
  fails(s, 'ENOENT', () => s.lookup(''));
  fails(s, 'ENOTDIR', () => s.lookup('/d/f/x'));
  fails(s, 'ENAMETOOLONG', () => s.lookup('/' + 'x'.repeat(256)));
  fails(s, 'ENAMETOOLONG', () => s.lookup('/' + 'é'.repeat(128))); // 256 UTF-8 bytes
  fails(s, 'ENOENT', () => s.lookup('/' + 'é'.repeat(127) + 'x')); // 255 bytes: fine, just missing
  fails(s, 'ENAMETOOLONG', () => s.lookup('/' + 'a/'.repeat(2048)));
  fails(s, 'EINVAL', () => s.lookup('d/f'));
  // ENOTDIR wins over a too long name after a file, as in the kernel's walk.
  fails(s, 'ENOTDIR', () => s.lookup('/d/f/' + 'x'.repeat(300)));
});

test('create: new inode, attrs, parent times; EEXIST with exclusive; existing file without it is a no-op', () => {
  const s = fresh();
  const d = s.lookup('/d');
  const b = run(s, () => s.planCreate('/d/g', 0o4755 | S_IFDIR, ALICE, 9000, true));
  assert.equal(b.length, 3);
  const g = s.getattr(s.lookup('/d/g'));
  assert.equal(g.mode, S_IFREG | 0o4755, 'type bits come from the operation, permission bits & 07777');
  assert.deepEqual([g.nlink, g.uid, g.gid, g.size, g.atime, g.mtime, g.ctime, g.btime], [1, 1000, 100, 0, 9000, 9000, 9000, 9000]);
  const da = s.getattr(d);
  assert.deepEqual([da.mtime, da.ctime, da.atime, da.nlink], [9000, 9000, 2000, 2]);
  fails(s, 'EEXIST', () => s.planCreate('/d/g', 0o644, ROOT, 1, true));
  assert.deepEqual(s.planCreate('/d/g', 0o644, ROOT, 1, false), []);
  fails(s, 'EISDIR', () => s.planCreate('/d', 0o644, ROOT, 1, false));
  fails(s, 'EEXIST', () => s.planCreate('/d', 0o644, ROOT, 1, true));
  fails(s, 'EISDIR', () => s.planCreate('/', 0o644, ROOT, 1, false));
  fails(s, 'ENOENT', () => s.planCreate('/x/y', 0o644, ROOT, 1, true));
  fails(s, 'ENOTDIR', () => s.planCreate('/d/f/y', 0o644, ROOT, 1, true));
  fails(s, 'ENAMETOOLONG', () => s.planCreate('/d/' + 'n'.repeat(256), 0o644, ROOT, 1, true));
  run(s, () => s.planCreate('/d/' + 'n'.repeat(255), 0o644, ROOT, 1, true));
});

test('inode numbers are never reused, and replay reproduces nextIno', () => {
  const s = FsState.create(1);
  const batches: MetaRecord[][] = [];
  batches.push(run(s, () => s.planCreate('/a', 0o644, ROOT, 2, true)));
  const a = s.lookup('/a');
  batches.push(run(s, () => s.planUnlink('/a', 3)));
  batches.push(run(s, () => s.planCreate('/a', 0o644, ROOT, 4, true)));
  assert.notEqual(s.lookup('/a'), a);
  assert.equal(s.nextIno, a + 2);
  const r = FsState.create(1);
  for (const b of batches) r.apply(b);
  assert.equal(r.nextIno, s.nextIno);
  assert.deepEqual(r.snapshot(), s.snapshot());
  // An inode record with a big number bumps nextIno.
  r.apply([{ t: 'inode', attr: { ...s.getattr(s.lookup('/a')), ino: 500, nlink: 0 } }]);
  assert.equal(r.nextIno, 501);
});

test('setgid directories hand down their group (and the bit to subdirectories)', () => {
  const s = FsState.create(1);
  run(s, () => s.planMkdir('/g', 0o2775, ROOT, 2));
  assert.equal(s.getattr(s.lookup('/g')).mode, S_IFDIR | 0o775, 'mkdir ignores S_ISGID in its mode');
  run(s, () => s.planChmod(s.lookup('/g'), 0o2775, 2));
  run(s, () => s.planChown(s.lookup('/g'), -1, 50, 2));
  assert.equal(s.getattr(s.lookup('/g')).mode, S_IFDIR | 0o2775);
  run(s, () => s.planCreate('/g/f', 0o644, ALICE, 3, true));
  run(s, () => s.planMkdir('/g/sub', 0o755, ALICE, 3));
  assert.equal(s.getattr(s.lookup('/g/f')).gid, 50);
  assert.equal(s.getattr(s.lookup('/g/f')).mode, S_IFREG | 0o644);
  assert.equal(s.getattr(s.lookup('/g/sub')).gid, 50);
  assert.equal(s.getattr(s.lookup('/g/sub')).mode, S_IFDIR | 0o2755);
});

test('mkdir: nlink 2, parent nlink + 1, mode & 01777; EEXIST; ENOENT; ENOTDIR', () => {
  const s = fresh();
  run(s, () => s.planMkdir('/d/e', 0o7777, ALICE, 5000));
  const e = s.getattr(s.lookup('/d/e'));
  assert.equal(e.mode, S_IFDIR | 0o1777);
  assert.equal(e.nlink, 2);
  assert.equal(s.getattr(s.lookup('/d')).nlink, 3);
  assert.equal(s.getattr(ROOT_INO).nlink, 3);
  assert.equal(s.getattr(s.lookup('/d')).mtime, 5000);
  fails(s, 'EEXIST', () => s.planMkdir('/d/e', 0o755, ROOT, 1));
  fails(s, 'EEXIST', () => s.planMkdir('/d/f', 0o755, ROOT, 1));
  fails(s, 'EEXIST', () => s.planMkdir('/', 0o755, ROOT, 1));
  fails(s, 'ENOENT', () => s.planMkdir('/x/y', 0o755, ROOT, 1));
  fails(s, 'ENOTDIR', () => s.planMkdir('/d/f/y', 0o755, ROOT, 1));
  fails(s, 'ENAMETOOLONG', () => s.planMkdir('/' + 'z'.repeat(256), 0o755, ROOT, 1));
});

test('mknod: fifos, sockets, devices (rdev), regular files for type 0; EPERM for a directory, EINVAL for junk', () => {
  const s = fresh();
  run(s, () => s.planMknod('/p', S_IFIFO | 0o600, 99, ROOT, 1));
  run(s, () => s.planMknod('/s', S_IFSOCK | 0o600, 0, ROOT, 1));
  run(s, () => s.planMknod('/c', S_IFCHR | 0o600, 0x0501, ROOT, 1));
  run(s, () => s.planMknod('/r', 0o640, 0, ROOT, 1));
  assert.equal(s.getattr(s.lookup('/p')).mode, S_IFIFO | 0o600);
  assert.equal(s.getattr(s.lookup('/p')).rdev, 0);
  assert.equal(s.getattr(s.lookup('/s')).mode & S_IFMT, S_IFSOCK);
  assert.equal(s.getattr(s.lookup('/c')).rdev, 0x0501);
  assert.equal(s.getattr(s.lookup('/r')).mode, S_IFREG | 0o640);
  fails(s, 'EPERM', () => s.planMknod('/x', S_IFDIR | 0o755, 0, ROOT, 1));
  fails(s, 'EINVAL', () => s.planMknod('/x', 0o150000, 0, ROOT, 1));
  fails(s, 'EEXIST', () => s.planMknod('/p', S_IFIFO | 0o600, 0, ROOT, 1));
  fails(s, 'EEXIST', () => s.planMknod('/', S_IFIFO | 0o600, 0, ROOT, 1));
  // Data operations on special files are EINVAL.
  fails(s, 'EINVAL', () => s.planWrite(s.lookup('/p'), 0, 1, { wal: 1, off: 0 }, 1));
  fails(s, 'EINVAL', () => s.planTruncate(s.lookup('/p'), 0, 1));
});

test('symlink: target kept, size = target bytes, mode 0777; ENOENT for an empty target; ENAMETOOLONG', () => {
  const s = fresh();
  run(s, () => s.planSymlink('../d/f→', '/l', ALICE, 7));
  const l = s.lookup('/l');
  assert.equal(s.readlink(l), '../d/f→');
  const a = s.getattr(l);
  assert.equal(a.mode, S_IFLNK | 0o777);
  assert.equal(a.size, Buffer.byteLength('../d/f→'));
  assert.equal(a.uid, 1000);
  fails(s, 'EINVAL', () => s.readlink(s.lookup('/d/f')));
  fails(s, 'ENOENT', () => s.planSymlink('', '/l2', ROOT, 1));
  fails(s, 'ENAMETOOLONG', () => s.planSymlink('x'.repeat(4096), '/l2', ROOT, 1));
  run(s, () => s.planSymlink('x'.repeat(4095), '/l2', ROOT, 1));
  fails(s, 'EEXIST', () => s.planSymlink('t', '/l', ROOT, 1));
  fails(s, 'EEXIST', () => s.planSymlink('t', '/d', ROOT, 1));
  // lookup never follows symlinks: a component that is a symlink is not a directory here.
  fails(s, 'ENOTDIR', () => s.lookup('/l/x'));
});

test('link: nlink + 1, ctime of the inode, m/ctime of the new parent; EPERM for dirs; EEXIST; ENOENT', () => {
  const s = fresh();
  const f = s.lookup('/d/f');
  run(s, () => s.planLink('/d/f', '/h', 8000));
  assert.equal(s.lookup('/h'), f);
  const a = s.getattr(f);
  assert.equal(a.nlink, 2);
  assert.equal(a.ctime, 8000);
  assert.equal(a.mtime, 3000);
  assert.equal(s.getattr(ROOT_INO).mtime, 8000);
  assert.equal(s.getattr(ROOT_INO).nlink, 3, 'a file link does not change the parent nlink');
  fails(s, 'EPERM', () => s.planLink('/d', '/d2', 1));
  fails(s, 'EEXIST', () => s.planLink('/d', '/h', 1), );
  fails(s, 'EEXIST', () => s.planLink('/d/f', '/h', 1));
  fails(s, 'EEXIST', () => s.planLink('/d/f', '/', 1));
  fails(s, 'ENOENT', () => s.planLink('/nope', '/h2', 1));
  fails(s, 'ENOENT', () => s.planLink('/d/f', '/nope/h2', 1));
  fails(s, 'ENOTDIR', () => s.planLink('/d/f', '/h/x', 1));
});

test('unlink: drops a link; the last link frees the inode unless open; EISDIR; ENOENT; ENOTDIR', () => {
  const s = fresh();
  const f = s.lookup('/d/f');
  run(s, () => s.planLink('/d/f', '/h', 10));
  const b1 = run(s, () => s.planUnlink('/h', 20));
  assert.ok(!b1.some((r) => r.t === 'free'));
  assert.equal(s.getattr(f).nlink, 1);
  assert.equal(s.getattr(f).ctime, 20);
  assert.equal(s.getattr(ROOT_INO).mtime, 20);
  const b2 = run(s, () => s.planUnlink('/d/f', 30));
  assert.deepEqual(b2[b2.length - 1], { t: 'free', ino: f });
  assert.equal(s.has(f), false);
  fails(s, 'ENOENT', () => s.getattr(f));
  assert.deepEqual(s.readdir(s.lookup('/d')), []);
  fails(s, 'ENOENT', () => s.planUnlink('/d/f', 1));
  fails(s, 'EISDIR', () => s.planUnlink('/d', 1));
  fails(s, 'EISDIR', () => s.planUnlink('/', 1));
  run(s, () => s.planCreate('/x', 0o644, ROOT, 1, true));
  fails(s, 'ENOTDIR', () => s.planUnlink('/x/y', 1));
  fails(s, 'ENAMETOOLONG', () => s.planUnlink('/' + 'q'.repeat(256), 1));
});

test('rmdir: parent nlink - 1; ENOTEMPTY; ENOTDIR; EBUSY for the root; ENOENT', () => {
  const s = fresh();
  run(s, () => s.planMkdir('/e', 0o755, ROOT, 1));
  assert.equal(s.getattr(ROOT_INO).nlink, 4);
  fails(s, 'ENOTEMPTY', () => s.planRmdir('/d', 1));
  fails(s, 'ENOTDIR', () => s.planRmdir('/d/f', 1));
  fails(s, 'EBUSY', () => s.planRmdir('/', 1));
  fails(s, 'ENOENT', () => s.planRmdir('/zz', 1));
  const e = s.lookup('/e');
  const b = run(s, () => s.planRmdir('/e', 77));
  assert.deepEqual(b[b.length - 1], { t: 'free', ino: e });
  assert.equal(s.getattr(ROOT_INO).nlink, 3);
  assert.equal(s.getattr(ROOT_INO).mtime, 77);
  run(s, () => s.planUnlink('/d/f', 1));
  run(s, () => s.planRmdir('/d', 1));
  assert.equal(s.getattr(ROOT_INO).nlink, 2);
  assert.equal(s.inodeCount, 1);
});

test('readdir: entries with attrs in a stable order; ENOTDIR on a file', () => {
  const s = FsState.create(1);
  for (const n of ['c', 'a', 'b']) run(s, () => s.planCreate('/' + n, 0o644, ROOT, 1, true));
  run(s, () => s.planMkdir('/m', 0o755, ROOT, 1));
  const names = s.readdir(ROOT_INO).map((e) => e.name);
  assert.deepEqual(names, ['c', 'a', 'b', 'm']);
  assert.deepEqual(s.readdir(ROOT_INO).map((e) => e.name), names);
  assert.equal(s.readdir(ROOT_INO)[3]!.attr.mode & S_IFMT, S_IFDIR);
  fails(s, 'ENOTDIR', () => s.readdir(s.lookup('/a')));
  fails(s, 'ENOENT', () => s.readdir(999));
  // getattr returns copies: changing them does not change the state.
  const a = s.getattr(s.lookup('/a'));
  a.size = 123;
  assert.equal(s.getattr(s.lookup('/a')).size, 0);
});

test('plans do not change the state until applied, and batches are not aliased to the state', () => {
  const s = fresh();
  const before = JSON.stringify(s.snapshot());
  const b = s.planCreate('/new', 0o644, ROOT, 1, true);
  s.planMkdir('/new2', 0o755, ROOT, 1);
  assert.equal(JSON.stringify(s.snapshot()), before);
  s.apply(b);
  const rec = b[0] as Extract<MetaRecord, { t: 'inode' }>;
  rec.attr.size = 999;
  assert.equal(s.getattr(s.lookup('/new')).size, 0);
});

test('link: EMLINK at ext4 link limit', () => {
  const s = fresh();
  const f = s.lookup('/d/f');
  s.apply([{ t: 'inode', attr: { ...s.getattr(f), nlink: 65000 } }]);
  fails(s, 'EMLINK', () => s.planLink('/d/f', '/many', 1));
  s.apply([{ t: 'inode', attr: { ...s.getattr(f), nlink: 64999 } }]);
  run(s, () => s.planLink('/d/f', '/many', 1));
  assert.equal(s.getattr(f).nlink, 65000);
});

test('apply rejects records no plan can produce (a damaged journal) instead of guessing', () => {
  const s = fresh();
  const f = s.lookup('/d/f');
  assert.throws(() => s.apply([{ t: 'link', dir: 4242, name: 'x', ino: f }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'link', dir: f, name: 'x', ino: f }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'link', dir: ROOT_INO, name: 'x', ino: 4242 }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'write', ino: s.lookup('/d'), off: 0, len: 1, ref: { wal: 1, off: 0 }, mtime: 1 }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'trunc', ino: 4242, size: 0, mtime: 1 }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'free', ino: ROOT_INO }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'free', ino: 4242 }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'xattr', ino: 4242, name: 'user.a', value: null, ctime: 1 }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'inode', attr: { ...s.getattr(f), mode: S_IFDIR | 0o755 } }]), /damaged/);
  assert.throws(() => s.apply([{ t: 'bogus' } as unknown as MetaRecord]), /damaged/);
});
