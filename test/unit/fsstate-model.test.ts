/**
 * Property tests of FsState against the real thing: random sequences of namespace and data operations are
 * applied both to an FsState and, through node:fs, to a real directory under the OS temp dir (the
 * reference). Every operation must fail with the same errno or succeed on both; at the end the trees must
 * agree (names, types, modes, owners, sizes, nlink, hard-link identity, symlink targets, file contents
 * rebuilt from the extent maps), and so must unlinked files still held open.
 *
 * The harness plays the engine's part: write data goes to a fake WAL (a byte log), a "commit" packs pending
 * writes into fake objects and rebases, and rewrites the recorded batches' refs as the committer does. Also
 * checked: snapshot -> JSON -> restore mid-sequence, and replaying every recorded batch on a fresh FsState
 * gives the same snapshot.
 *
 * Not compared with the kernel: xattrs (node:fs has no xattr calls; an in-test model of Linux's rules is
 * used), times (the kernel's clock), RENAME_NOREPLACE/EXCHANGE and mknod (not in node:fs; unit tests cover
 * them). Operations whose paths go through a symlink are skipped: the kernel resolves those before FsState
 * is called.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { FsState, type Snapshot } from '../../src/core/metadata.js';
import { FsError } from '../../src/core/errors.js';
import {
  ROOT_INO,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  XATTR_CREATE,
  XATTR_REPLACE,
  type DataRef,
  type MetaRecord,
} from '../../src/core/types.js';

const ROOT = { uid: 0, gid: 0 };
const IS_ROOT = process.getuid?.() === 0;

type Op =
  | { k: 'mkdir'; p: string; mode: number }
  | { k: 'create'; p: string; mode: number; excl: boolean }
  | { k: 'write'; p: string; off: number; len: number; seed: number }
  | { k: 'truncate'; p: string; size: number }
  | { k: 'rename'; from: string; to: string }
  | { k: 'link'; from: string; to: string }
  | { k: 'unlink'; p: string }
  | { k: 'rmdir'; p: string }
  | { k: 'symlink'; target: string; p: string }
  | { k: 'chmod'; p: string; mode: number }
  | { k: 'chown'; p: string; uid: number; gid: number }
  | { k: 'setxattr'; p: string; name: string; seed: number; flags: number }
  | { k: 'removexattr'; p: string; name: string }
  | { k: 'open'; p: string }
  | { k: 'fdwrite'; h: number; off: number; len: number; seed: number }
  | { k: 'close'; h: number }
  | { k: 'commit' }
  | { k: 'restart' };

const nameArb = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom('a', 'b', 'c') },
  { weight: 1, arbitrary: fc.constantFrom('N'.repeat(255), 'L'.repeat(256)) },
);
const randomPathArb = fc
  .oneof(
    { weight: 4, arbitrary: fc.array(nameArb, { minLength: 1, maxLength: 1 }) },
    { weight: 4, arbitrary: fc.array(nameArb, { minLength: 2, maxLength: 2 }) },
    { weight: 2, arbitrary: fc.array(nameArb, { minLength: 3, maxLength: 3 }) },
  )
  .map((xs) => '/' + xs.join('/'));
/** Paths that exist after SETUP are hit often, so that files see several writes and truncates. */
const pathArb = fc.oneof(
  { weight: 6, arbitrary: randomPathArb },
  { weight: 4, arbitrary: fc.constantFrom('/a', '/b', '/a/a', '/a/b', '/a/b/a') },
);
/** Renames between a directory and its own subtree, in both directions (EINVAL / ENOTEMPTY / fine). */
const subtreeRenameArb = fc
  .tuple(pathArb, fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 2 }), fc.boolean())
  .map(([p, rest, down]) => {
    const deeper = `${p}/${rest.join('/')}`;
    return { k: 'rename' as const, from: down ? p : deeper, to: down ? deeper : p };
  });

/** Every run starts from this tree, so that early operations have something to work on. */
const SETUP: Op[] = [
  { k: 'mkdir', p: '/a', mode: 0o755 },
  { k: 'mkdir', p: '/a/b', mode: 0o755 },
  { k: 'create', p: '/b', mode: 0o644, excl: true },
  { k: 'create', p: '/a/a', mode: 0o644, excl: true },
  { k: 'write', p: '/a/a', off: 0, len: 5000, seed: 1 },
];
const modeArb = fc.constantFrom(0o755, 0o700, 0o644, 0o600, 0o2775, 0o4755, 0o1777, 0o6750);
const seedArb = fc.integer({ min: 0, max: 255 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('mkdir' as const), p: pathArb, mode: modeArb }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('create' as const), p: pathArb, mode: modeArb, excl: fc.boolean() }) },
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant('write' as const),
      p: pathArb,
      off: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 20000 })),
      len: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 6000 })),
      seed: seedArb,
    }),
  },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('truncate' as const), p: pathArb, size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 30000 })) }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('rename' as const), from: pathArb, to: pathArb }) },
  { weight: 2, arbitrary: subtreeRenameArb },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('link' as const), from: pathArb, to: pathArb }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('unlink' as const), p: pathArb }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('rmdir' as const), p: pathArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('symlink' as const), target: fc.constantFrom('a', '../b', '/nowhere/x', 'c/a'), p: pathArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('chmod' as const), p: pathArb, mode: modeArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('chown' as const), p: pathArb, uid: fc.constantFrom(-1, 0, 1000), gid: fc.constantFrom(-1, 0, 1000) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('setxattr' as const),
      p: pathArb,
      name: fc.constantFrom('user.x', 'user.y', 'trusted.t'),
      seed: seedArb,
      flags: fc.constantFrom(0, XATTR_CREATE, XATTR_REPLACE),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('removexattr' as const), p: pathArb, name: fc.constantFrom('user.x', 'user.y', 'trusted.t') }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('open' as const), p: pathArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('fdwrite' as const),
      h: fc.integer({ min: 0, max: 3 }),
      off: fc.integer({ min: 0, max: 5000 }),
      len: fc.integer({ min: 0, max: 3000 }),
      seed: seedArb,
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('close' as const), h: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 2, arbitrary: fc.constant({ k: 'commit' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'restart' as const }) },
);

const opsArb = fc.array(opArb, { minLength: 5, maxLength: 60, size: 'max' }).map((ops) => [...SETUP, ...ops]);

function dataOf(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i * 7 + (i >> 8)) & 255;
  return b;
}

function codeOf(e: unknown): string {
  if (e instanceof FsError) return e.code;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  throw e;
}

/** Runs fn; returns undefined on success or the errno name it failed with. */
function attempt(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return codeOf(e);
  }
}

type WriteRec = Extract<MetaRecord, { t: 'write' }>;

/** One run: an FsState and a real directory driven in lockstep. */
class Harness {
  readonly dir: string;
  state: FsState;
  now = 1000;
  /** The fake WAL: every write's bytes, appended. */
  private log = Buffer.alloc(0);
  private readonly objects = new Map<string, Buffer>();
  private objCount = 0;
  /** Write records applied since the last commit (in recorded batches). */
  private pending: WriteRec[] = [];
  readonly batches: MetaRecord[][] = [];
  /** Open handles: real fd and our inode. */
  readonly handles: { fd: number; ino: number }[] = [];
  /** Model of xattrs by our inode number. */
  private readonly xattrs = new Map<number, Map<string, Buffer>>();

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swiftfs-model-'));
    fs.chmodSync(this.dir, 0o755);
    this.state = FsState.create(this.now, ROOT, 0o755);
  }

  real(p: string): string {
    return this.dir + p;
  }

  private apply(batch: MetaRecord[]): void {
    this.state.apply(batch);
    this.batches.push(batch);
    for (const r of batch) {
      if (r.t === 'write') this.pending.push(r);
      if (r.t === 'free') this.xattrs.delete(r.ino);
    }
  }

  private plan(fn: () => MetaRecord[]): void {
    this.apply(fn());
  }

  /** Whether resolving `p` in the real tree goes through a symlink (not counting the last component unless `final`). */
  private viaSymlink(p: string, final: boolean): boolean {
    const parts = p.split('/').filter(Boolean);
    let cur = this.dir;
    for (let i = 0; i < parts.length; i++) {
      cur += '/' + parts[i];
      let st: fs.Stats;
      try {
        st = fs.lstatSync(cur);
      } catch {
        return false;
      }
      if (st.isSymbolicLink() && (i < parts.length - 1 || final)) return true;
      if (!st.isDirectory()) return false;
    }
    return false;
  }

  private storeWal(data: Buffer): DataRef {
    const ref = { wal: 1, off: this.log.length };
    this.log = Buffer.concat([this.log, data]);
    return ref;
  }

  private writeIno(ino: number, off: number, data: Buffer): void {
    const ref = this.storeWal(data);
    this.plan(() => this.state.planWrite(ino, off, data.length, ref, ++this.now));
  }

  /** Runs one operation on both sides and checks that they agree on the outcome. */
  step(op: Op): void {
    const s = this.state;
    const now = ++this.now;
    let real: string | undefined;
    let ours: string | undefined;
    switch (op.k) {
      case 'mkdir':
        if (this.viaSymlink(op.p, false)) return;
        real = attempt(() => fs.mkdirSync(this.real(op.p), op.mode));
        ours = attempt(() => this.plan(() => s.planMkdir(op.p, op.mode, ROOT, now)));
        break;
      case 'create': {
        if (this.viaSymlink(op.p, !op.excl)) return;
        real = attempt(() => {
          const fd = fs.openSync(this.real(op.p), fs.constants.O_CREAT | fs.constants.O_WRONLY | (op.excl ? fs.constants.O_EXCL : 0), op.mode);
          fs.closeSync(fd);
        });
        ours = attempt(() => this.plan(() => s.planCreate(op.p, op.mode, ROOT, now, op.excl)));
        break;
      }
      case 'write': {
        if (this.viaSymlink(op.p, true)) return;
        const data = dataOf(op.len, op.seed);
        real = attempt(() => {
          const fd = fs.openSync(this.real(op.p), fs.constants.O_WRONLY);
          try {
            fs.writeSync(fd, data, 0, data.length, op.off);
          } finally {
            fs.closeSync(fd);
          }
        });
        ours = attempt(() => {
          const ino = s.lookup(op.p);
          // open(O_WRONLY) of a directory is EISDIR (the engine's open checks that, not planWrite)
          if ((s.getattr(ino).mode & S_IFMT) === S_IFDIR) throw new FsError('EISDIR');
          this.writeIno(ino, op.off, data);
        });
        break;
      }
      case 'truncate':
        if (this.viaSymlink(op.p, true)) return;
        real = attempt(() => fs.truncateSync(this.real(op.p), op.size));
        ours = attempt(() => this.plan(() => s.planTruncate(s.lookup(op.p), op.size, now)));
        break;
      case 'rename':
        if (this.viaSymlink(op.from, false) || this.viaSymlink(op.to, false)) return;
        real = attempt(() => fs.renameSync(this.real(op.from), this.real(op.to)));
        ours = attempt(() => this.plan(() => s.planRename(op.from, op.to, 0, now)));
        break;
      case 'link':
        if (this.viaSymlink(op.from, false) || this.viaSymlink(op.to, false)) return;
        real = attempt(() => fs.linkSync(this.real(op.from), this.real(op.to)));
        ours = attempt(() => this.plan(() => s.planLink(op.from, op.to, now)));
        break;
      case 'unlink':
        if (this.viaSymlink(op.p, false)) return;
        real = attempt(() => fs.unlinkSync(this.real(op.p)));
        ours = attempt(() => this.plan(() => s.planUnlink(op.p, now)));
        break;
      case 'rmdir':
        if (this.viaSymlink(op.p, false)) return;
        real = attempt(() => fs.rmdirSync(this.real(op.p)));
        ours = attempt(() => this.plan(() => s.planRmdir(op.p, now)));
        break;
      case 'symlink':
        if (this.viaSymlink(op.p, false)) return;
        real = attempt(() => fs.symlinkSync(op.target, this.real(op.p)));
        ours = attempt(() => this.plan(() => s.planSymlink(op.target, op.p, ROOT, now)));
        break;
      case 'chmod':
        if (this.viaSymlink(op.p, true)) return;
        real = attempt(() => fs.chmodSync(this.real(op.p), op.mode));
        ours = attempt(() => this.plan(() => s.planChmod(s.lookup(op.p), op.mode, now)));
        break;
      case 'chown':
        if (!IS_ROOT || this.viaSymlink(op.p, false)) return;
        real = attempt(() => fs.lchownSync(this.real(op.p), op.uid, op.gid));
        ours = attempt(() => this.plan(() => s.planChown(s.lookup(op.p), op.uid, op.gid, now)));
        break;
      case 'setxattr': {
        if (this.viaSymlink(op.p, false)) return;
        const value = dataOf(op.seed % 40, op.seed);
        // The model of Linux's rules: lookup errors, EPERM for user.* on other than files and dirs, flags.
        const expected = attempt(() => {
          const ino = s.lookup(op.p);
          const type = s.getattr(ino).mode & S_IFMT;
          if (op.name.startsWith('user.') && type !== S_IFREG && type !== S_IFDIR) throw new FsError('EPERM');
          const has = this.xattrs.get(ino)?.has(op.name) ?? false;
          if (has && op.flags === XATTR_CREATE) throw new FsError('EEXIST');
          if (!has && op.flags === XATTR_REPLACE) throw new FsError('ENODATA');
        });
        ours = attempt(() => {
          const ino = s.lookup(op.p);
          this.plan(() => s.planSetxattr(ino, op.name, value, op.flags, now));
          let m = this.xattrs.get(ino);
          if (!m) this.xattrs.set(ino, (m = new Map()));
          m.set(op.name, value);
        });
        real = expected;
        break;
      }
      case 'removexattr': {
        if (this.viaSymlink(op.p, false)) return;
        real = attempt(() => {
          const ino = s.lookup(op.p);
          const type = s.getattr(ino).mode & S_IFMT;
          if (op.name.startsWith('user.') && type !== S_IFREG && type !== S_IFDIR) throw new FsError('EPERM');
          if (!this.xattrs.get(ino)?.has(op.name)) throw new FsError('ENODATA');
        });
        ours = attempt(() => {
          const ino = s.lookup(op.p);
          this.plan(() => s.planRemovexattr(ino, op.name, now));
          this.xattrs.get(ino)!.delete(op.name);
        });
        break;
      }
      case 'open': {
        if (this.viaSymlink(op.p, true) || this.handles.length >= 4) return;
        let fd = -1;
        real = attempt(() => {
          fd = fs.openSync(this.real(op.p), fs.constants.O_RDWR);
        });
        ours = attempt(() => {
          const ino = s.lookup(op.p);
          if ((s.getattr(ino).mode & S_IFMT) === S_IFDIR) throw new FsError('EISDIR');
          if (real === undefined) {
            s.opened(ino);
            this.handles.push({ fd, ino });
          }
        });
        if (real === undefined && ours !== undefined) fs.closeSync(fd);
        break;
      }
      case 'fdwrite': {
        const h = this.handles[op.h];
        if (!h) return;
        const data = dataOf(op.len, op.seed);
        fs.writeSync(h.fd, data, 0, data.length, op.off);
        this.writeIno(h.ino, op.off, data);
        return;
      }
      case 'close': {
        const h = this.handles[op.h];
        if (!h) return;
        this.compareHandle(h);
        fs.closeSync(h.fd);
        this.handles.splice(op.h, 1);
        this.plan(() => s.planClosed(h.ino));
        return;
      }
      case 'commit':
        this.commit();
        return;
      case 'restart':
        this.restart();
        return;
    }
    assert.equal(ours, real, `${JSON.stringify(op).slice(0, 200)}: FsState says ${ours ?? 'ok'}, the kernel says ${real ?? 'ok'}`);
  }

  /** What the committer does: pack pending writes into an object, rebase, rewrite the recorded refs. */
  commit(): void {
    if (this.pending.length === 0) return;
    const name = `obj-${++this.objCount}`;
    const parts: Buffer[] = [];
    let pos = 0;
    for (const rec of this.pending) {
      const from = rec.ref as { wal: number; off: number };
      parts.push(this.log.subarray(from.off, from.off + rec.len));
      const to = { obj: name, off: pos };
      this.state.rebase(rec.ino, rec.off, rec.len, from, to);
      rec.ref = to;
      pos += rec.len;
    }
    this.objects.set(name, Buffer.concat(parts));
    this.pending = [];
    assert.equal(this.state.hasWalRefs(), false);
  }

  /** A restart from a checkpoint: snapshot -> JSON -> restore, then the open handles are registered again. */
  restart(): void {
    const json = JSON.stringify(this.state.snapshot());
    const restored = FsState.restore(JSON.parse(json) as Snapshot);
    assert.equal(JSON.stringify(restored.snapshot()), json);
    for (const h of this.handles) restored.opened(h.ino);
    this.state = restored;
  }

  /** The bytes of a file as FsState describes them. */
  contents(ino: number): Buffer {
    const size = this.state.getattr(ino).size;
    const out = Buffer.alloc(size);
    for (const p of this.state.extents(ino, 0, size)) {
      if (p.ref === null) continue;
      const src = 'wal' in p.ref ? this.log : this.objects.get(p.ref.obj);
      assert.ok(src, `missing object ${JSON.stringify(p.ref)}`);
      src.copy(out, p.off, p.ref.off, p.ref.off + p.len);
    }
    return out;
  }

  private compareHandle(h: { fd: number; ino: number }): void {
    const st = fs.fstatSync(h.fd);
    const a = this.state.getattr(h.ino);
    assert.equal(a.size, st.size, 'size of an open file');
    assert.equal(a.nlink, st.nlink, 'nlink of an open file');
    const buf = Buffer.alloc(st.size);
    fs.readSync(h.fd, buf, 0, st.size, 0);
    assert.ok(buf.equals(this.contents(h.ino)), 'contents of an open file');
  }

  /** Compares the whole tree and the open handles. */
  compareAll(): void {
    const inoMap = new Map<number, number>();
    const back = new Map<number, number>();
    const walk = (rel: string, ours: number): void => {
      const realNames = fs.readdirSync(this.real(rel) || this.dir).sort();
      const entries = this.state.readdir(ours);
      assert.deepEqual(entries.map((e) => e.name).sort(), realNames, `entries of ${rel || '/'}`);
      for (const e of entries) {
        const p = `${rel}/${e.name}`;
        const st = fs.lstatSync(this.real(p));
        const a = e.attr;
        assert.equal(a.mode, st.mode, `mode of ${p}`);
        assert.equal(a.nlink, st.nlink, `nlink of ${p}`);
        assert.equal(a.uid, st.uid, `uid of ${p}`);
        assert.equal(a.gid, st.gid, `gid of ${p}`);
        const seen = inoMap.get(Number(st.ino));
        if (seen === undefined) {
          assert.equal(back.get(a.ino), undefined, `${p}: one FsState inode for two real inodes`);
          inoMap.set(Number(st.ino), a.ino);
          back.set(a.ino, Number(st.ino));
        } else {
          assert.equal(a.ino, seen, `${p}: hard links must share the inode`);
        }
        const type = a.mode & S_IFMT;
        if (type === S_IFDIR) {
          walk(p, a.ino);
        } else if (type === S_IFLNK) {
          assert.equal(this.state.readlink(a.ino), fs.readlinkSync(this.real(p)), `target of ${p}`);
          assert.equal(a.size, st.size);
        } else if (type === S_IFREG) {
          assert.equal(a.size, st.size, `size of ${p}`);
          assert.ok(fs.readFileSync(this.real(p)).equals(this.contents(a.ino)), `contents of ${p}`);
          assert.deepEqual(
            this.state.listxattr(a.ino).sort(),
            [...(this.xattrs.get(a.ino)?.keys() ?? [])].sort(),
            `xattr names of ${p}`,
          );
          for (const [k, v] of this.xattrs.get(a.ino) ?? []) assert.ok(this.state.getxattr(a.ino, k).equals(v));
        }
      }
    };
    const rootSt = fs.statSync(this.dir);
    assert.equal(this.state.getattr(ROOT_INO).nlink, rootSt.nlink, 'root nlink');
    walk('', ROOT_INO);
    for (const h of this.handles) this.compareHandle(h);
    // Exactly the linked inodes and the open orphans exist.
    const open = new Set(this.handles.map((h) => h.ino));
    assert.equal(this.state.inodeCount, back.size + 1 + [...open].filter((ino) => !back.has(ino)).length, 'no leaked inodes');
    for (const o of this.state.orphans()) assert.ok(open.has(o), `orphan ${o} is not open`);
  }

  close(): void {
    for (const h of this.handles) fs.closeSync(h.fd);
    this.handles.length = 0;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function withUmask0<T>(fn: () => T): T {
  const old = process.umask(0);
  try {
    return fn();
  } finally {
    process.umask(old);
  }
}

test('random operation sequences: FsState agrees with the kernel (ext4/tmpfs under the temp dir)', () => {
  withUmask0(() => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        const h = new Harness();
        try {
          for (const op of ops) h.step(op);
          h.compareAll();
          // Close everything: orphans are freed and nothing leaks.
          while (h.handles.length > 0) h.step({ k: 'close', h: 0 });
          h.compareAll();
          assert.deepEqual(h.state.orphans(), []);
        } finally {
          h.close();
        }
      }),
      { numRuns: Number(process.env['SWIFTFS_MODEL_RUNS'] ?? 150) },
    );
  });
});

test('replaying every recorded batch on a fresh FsState gives the same snapshot (refs rewritten by commits)', () => {
  withUmask0(() => {
    fc.assert(
      fc.property(opsArb, fc.boolean(), (ops, commitAtEnd) => {
        const h = new Harness();
        try {
          for (const op of ops) h.step(op);
          if (commitAtEnd) h.commit();
          const replay = FsState.create(1000, ROOT, 0o755);
          for (const b of h.batches) replay.apply(b);
          assert.deepEqual(replay.snapshot(), h.state.snapshot());
          // And from a restored checkpoint, planFreeOrphans frees exactly the open orphans.
          const r = FsState.restore(JSON.parse(JSON.stringify(h.state.snapshot())) as Snapshot);
          const freed = r.planFreeOrphans().map((x) => (x.t === 'free' ? x.ino : -1));
          assert.deepEqual(freed.sort(), h.state.orphans().sort());
        } finally {
          h.close();
        }
      }),
      { numRuns: Number(process.env['SWIFTFS_MODEL_RUNS'] ?? 100) },
    );
  });
});

test('one file under random writes, truncates, commits and restarts reads back like the kernel file', () => {
  const fileOpArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        k: fc.constant('write' as const),
        p: fc.constant('/f'),
        off: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 40000 })),
        len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 9000 })),
        seed: seedArb,
      }),
    },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('truncate' as const), p: fc.constant('/f'), size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 45000 })) }) },
    { weight: 2, arbitrary: fc.constant({ k: 'commit' as const }) },
    { weight: 1, arbitrary: fc.constant({ k: 'restart' as const }) },
  );
  withUmask0(() => {
    fc.assert(
      fc.property(fc.array(fileOpArb, { minLength: 1, maxLength: 40, size: 'max' }), (ops) => {
        const h = new Harness();
        try {
          h.step({ k: 'create', p: '/f', mode: 0o644, excl: true });
          for (const op of ops) h.step(op);
          h.compareAll();
          h.commit();
          h.compareAll();
          const replay = FsState.create(1000, ROOT, 0o755);
          for (const b of h.batches) replay.apply(b);
          assert.deepEqual(replay.snapshot(), h.state.snapshot());
        } finally {
          h.close();
        }
      }),
      { numRuns: Number(process.env['SWIFTFS_MODEL_RUNS'] ?? 200) },
    );
  });
});
