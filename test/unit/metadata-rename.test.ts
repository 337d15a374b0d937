/**
 * Unit tests of FsState.planRename: plain moves, replacing (file over file, dir over empty dir), hard links
 * of one inode, RENAME_NOREPLACE, RENAME_EXCHANGE, the subtree rules, parent pointers, nlink and times, and
 * the errno of each failure in the order Linux checks them.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FsState } from '../../src/core/metadata.js';
import { RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO, type MetaRecord } from '../../src/core/types.js';
import { fails, ROOT, run } from './fsstate-helpers.js';


/** / with a/ (a/b/ (a/b/f), a/e/ empty, a/g file), x/ empty, h file. */
function tree(): FsState {
  const s = FsState.create(1);
  for (const d of ['/a', '/a/b', '/a/e', '/x']) run(s, () => s.planMkdir(d, 0o755, ROOT, 2));
  for (const f of ['/a/b/f', '/a/g', '/h']) run(s, () => s.planCreate(f, 0o644, ROOT, 3, true));
  return s;
}

const nlink = (s: FsState, p: string): number => s.getattr(s.lookup(p)).nlink;

test('rename a file within a directory and across directories', () => {
  const s = tree();
  const h = s.lookup('/h');
  run(s, () => s.planRename('/h', '/h2', 0, 100));
  assert.equal(s.lookup('/h2'), h);
  assert.throws(() => s.lookup('/h'));
  assert.equal(s.getattr(h).ctime, 100);
  assert.equal(s.getattr(h).mtime, 3);
  run(s, () => s.planRename('/h2', '/a/b/h3', 0, 200));
  assert.equal(s.lookup('/a/b/h3'), h);
  assert.equal(s.getattr(ROOT_INO).mtime, 200);
  assert.equal(s.getattr(s.lookup('/a/b')).mtime, 200);
  assert.equal(nlink(s, '/a/b'), 2);
  assert.equal(s.getattr(ROOT_INO).nlink, 4);
});

test('moving a directory moves its subtree, updates both parents nlink and its ".." parent', () => {
  const s = tree();
  const b = s.lookup('/a/b');
  run(s, () => s.planRename('/a/b', '/x/b2', 0, 50));
  assert.equal(s.lookup('/x/b2'), b);
  assert.equal(s.lookup('/x/b2/f'), s.readdir(b)[0]!.attr.ino);
  assert.equal(nlink(s, '/a'), 3);
  assert.equal(nlink(s, '/x'), 3);
  assert.equal(s.getattr(b).ctime, 50);
  // The parent pointer moved: moving /x into /x/b2 is now caught as a loop, and /a into /x/b2 is fine.
  fails(s, 'EINVAL', () => s.planRename('/x', '/x/b2/y', 0, 1));
  run(s, () => s.planRename('/a', '/x/b2/a', 0, 60));
  fails(s, 'EINVAL', () => s.planRename('/x/b2', '/x/b2/a/e/z', 0, 1));
  assert.equal(s.getattr(ROOT_INO).nlink, 3);
  assert.equal(nlink(s, '/x/b2'), 3);
});

test('replacing a file drops a link of the old target, freeing it when it was the last and not open', () => {
  const s = tree();
  const g = s.lookup('/a/g');
  const h = s.lookup('/h');
  const b = run(s, () => s.planRename('/h', '/a/g', 0, 10));
  assert.ok(b.some((r) => r.t === 'free' && r.ino === g));
  assert.equal(s.lookup('/a/g'), h);
  assert.equal(s.has(g), false);
  // With another link the target survives with nlink - 1.
  run(s, () => s.planLink('/a/g', '/keep', 11));
  run(s, () => s.planCreate('/n', 0o644, ROOT, 12, true));
  run(s, () => s.planRename('/n', '/a/g', 0, 13));
  assert.equal(s.getattr(h).nlink, 1);
  assert.equal(s.getattr(h).ctime, 13);
  // An open target becomes an orphan.
  const n = s.lookup('/a/g');
  s.opened(n);
  run(s, () => s.planCreate('/m', 0o644, ROOT, 14, true));
  const b2 = run(s, () => s.planRename('/m', '/a/g', 0, 15));
  assert.ok(!b2.some((r) => r.t === 'free'));
  assert.equal(s.getattr(n).nlink, 0);
  assert.deepEqual(s.orphans(), [n]);
  assert.deepEqual(s.planClosed(n), [{ t: 'free', ino: n }]);
});

test('a directory may replace an empty directory only', () => {
  const s = tree();
  const e = s.lookup('/a/e');
  const x = s.lookup('/x');
  run(s, () => s.planRename('/x', '/a/e', 0, 9));
  assert.equal(s.lookup('/a/e'), x);
  assert.equal(s.has(e), false);
  assert.equal(nlink(s, '/a'), 4, 'a lost e but gained x');
  assert.equal(s.getattr(ROOT_INO).nlink, 3);
  fails(s, 'ENOTEMPTY', () => s.planRename('/a/e', '/a/b', 0, 1));
  // Same parent: dir over empty dir.
  run(s, () => s.planMkdir('/a/z', 0o755, ROOT, 1));
  run(s, () => s.planRename('/a/z', '/a/e', 0, 1));
  assert.equal(nlink(s, '/a'), 4);
});

test('type mismatches: ENOTDIR (dir over file), EISDIR (file over dir)', () => {
  const s = tree();
  fails(s, 'ENOTDIR', () => s.planRename('/x', '/h', 0, 1));
  fails(s, 'EISDIR', () => s.planRename('/h', '/x', 0, 1));
  fails(s, 'EISDIR', () => s.planRename('/h', '/a', 0, 1));
});

test('two hard links of one inode: rename is a successful no-op and both names stay', () => {
  const s = tree();
  run(s, () => s.planLink('/h', '/h2', 1));
  assert.deepEqual(s.planRename('/h', '/h2', 0, 5), []);
  assert.deepEqual(s.planRename('/h', '/h', 0, 5), []);
  assert.deepEqual(s.planRename('/a', '/a', 0, 5), []);
  assert.equal(s.lookup('/h'), s.lookup('/h2'));
  assert.equal(nlink(s, '/h'), 2);
});

test('subtree rules: EINVAL into its own subtree, ENOTEMPTY over an ancestor', () => {
  const s = tree();
  fails(s, 'EINVAL', () => s.planRename('/a', '/a/b/c', 0, 1));
  fails(s, 'EINVAL', () => s.planRename('/a', '/a/n', 0, 1));
  fails(s, 'EINVAL', () => s.planRename('/a', '/a/e', 0, 1)); // checked before the target's emptiness
  fails(s, 'ENOTEMPTY', () => s.planRename('/a/b/f', '/a', 0, 1));
  fails(s, 'ENOTEMPTY', () => s.planRename('/a/b', '/a', 0, 1));
  fails(s, 'EINVAL', () => s.planRename('/a/b', '/a', RENAME_EXCHANGE, 1));
});

test('root and path errors: EBUSY, ENOENT, ENOTDIR, ENAMETOOLONG, EINVAL flags', () => {
  const s = tree();
  fails(s, 'EBUSY', () => s.planRename('/', '/z', 0, 1));
  fails(s, 'EBUSY', () => s.planRename('/a', '/', 0, 1));
  fails(s, 'ENOENT', () => s.planRename('/nope', '/z', 0, 1));
  fails(s, 'ENOENT', () => s.planRename('/nope/x', '/z', 0, 1));
  fails(s, 'ENOENT', () => s.planRename('/h', '/nope/z', 0, 1));
  fails(s, 'ENOTDIR', () => s.planRename('/h/x', '/z', 0, 1));
  fails(s, 'ENOTDIR', () => s.planRename('/a/g', '/h/z', 0, 1));
  fails(s, 'ENAMETOOLONG', () => s.planRename('/h', '/' + 'l'.repeat(256), 0, 1));
  fails(s, 'ENAMETOOLONG', () => s.planRename('/' + 'l'.repeat(256), '/h', 0, 1));
  fails(s, 'EINVAL', () => s.planRename('/h', '/z', RENAME_EXCHANGE | RENAME_NOREPLACE, 1));
  fails(s, 'EINVAL', () => s.planRename('/h', '/z', 4 /* RENAME_WHITEOUT */, 1));
});

test('RENAME_NOREPLACE: EEXIST when the target exists, a move otherwise', () => {
  const s = tree();
  fails(s, 'EEXIST', () => s.planRename('/h', '/a/g', RENAME_NOREPLACE, 1));
  fails(s, 'EEXIST', () => s.planRename('/h', '/h', RENAME_NOREPLACE, 1));
  fails(s, 'EEXIST', () => s.planRename('/a', '/a/b', RENAME_NOREPLACE, 1)); // EEXIST comes before EINVAL
  run(s, () => s.planRename('/h', '/h9', RENAME_NOREPLACE, 1));
  assert.ok(s.lookup('/h9'));
});

test('RENAME_EXCHANGE swaps two entries of any types, fixing nlink and parents', () => {
  const s = tree();
  fails(s, 'ENOENT', () => s.planRename('/h', '/nope', RENAME_EXCHANGE, 1));
  const h = s.lookup('/h');
  const b = s.lookup('/a/b');
  run(s, () => s.planRename('/h', '/a/b', RENAME_EXCHANGE, 70));
  assert.equal(s.lookup('/a/b'), h);
  assert.equal(s.lookup('/h'), b);
  assert.equal(s.lookup('/h/f'), s.readdir(b)[0]!.attr.ino);
  assert.equal(nlink(s, '/a'), 3, 'a lost directory b, gained file h');
  assert.equal(s.getattr(ROOT_INO).nlink, 5, 'root gained directory b');
  assert.equal(s.getattr(h).ctime, 70);
  assert.equal(s.getattr(b).ctime, 70);
  assert.equal(s.getattr(ROOT_INO).mtime, 70);
  assert.equal(s.getattr(s.lookup('/a')).mtime, 70);
  // b's parent pointer is now the root (a stale pointer to /a would make this look like a loop).
  run(s, () => s.planRename('/a', '/h/x', 0, 75));
  fails(s, 'EINVAL', () => s.planRename('/h', '/h/x/y', 0, 1));
  run(s, () => s.planRename('/h/x', '/a', 0, 76));
  // Exchange two directories in the same parent: nlink unchanged; non-empty is fine for exchange.
  run(s, () => s.planRename('/a', '/x', RENAME_EXCHANGE, 80));
  assert.equal(s.getattr(ROOT_INO).nlink, 5);
  assert.ok(s.lookup('/x/g'));
  assert.deepEqual(s.planRename('/x', '/x', RENAME_EXCHANGE, 1), []);
});

test('replaying rename batches on a fresh state gives the same snapshot', () => {
  const s = tree();
  const batches: MetaRecord[][] = [];
  const r = FsState.restore(JSON.parse(JSON.stringify(s.snapshot())));
  batches.push(run(s, () => s.planRename('/a/b', '/x/b', 0, 5)));
  batches.push(run(s, () => s.planRename('/h', '/x/b/f', 0, 6)));
  batches.push(run(s, () => s.planRename('/x', '/a/e', 0, 7)));
  fails(s, 'EINVAL', () => s.planRename('/a/g', '/a', RENAME_EXCHANGE, 8));
  batches.push(run(s, () => s.planRename('/a/g', '/a/e/b', RENAME_EXCHANGE, 8)));
  assert.ok(s.lookup('/a/g/f'));
  for (const b of batches) r.apply(b);
  assert.deepEqual(r.snapshot(), s.snapshot());
});
