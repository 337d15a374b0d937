/**
 * Property tests of FsState against the real thing: random sequences of namespace and data operations are
 * applied both to an FsState and, through node:fs, to a real directory under the OS temp dir (the
 * reference, test/helpers/kernel-reference.ts, shared with the Volume property test). Every operation must fail with the same errno or succeed on both; at the end the trees must
 * agree (names, types, modes, owners, sizes, nlink, hard-link identity, symlink targets, file contents
 * rebuilt from the extent maps), and so must unlinked files still held open.
 *
 * The harness plays the engine's part: write data goes to a fake WAL (a byte log), a "commit" packs pending
 * writes into fake objects and rebases, and rewrites the recorded batches' refs as the committer does. Also
 * checked: snapshot -> JSON -> restore mid-sequence, and replaying every recorded batch on a fresh FsState
 * gives the same snapshot.
 *
 * Not compared with the kernel: xattrs (node:fs has no xattr calls; the reference keeps a model of Linux's
 * rules), times (the kernel's clock), RENAME_NOREPLACE/EXCHANGE and mknod (not in node:fs; unit tests cover
 * them). Operations whose paths go through a symlink are skipped: the kernel resolves those before FsState
 * is called.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fc from 'fast-check';
import { FsState, type Snapshot } from '../../src/core/metadata.js';
import { FsError } from '../../src/core/errors.js';
import { ROOT_INO, S_IFDIR, S_IFMT, type DataRef, type MetaRecord } from '../../src/core/types.js';
import {
  KernelReference,
  SETUP,
  ShotBuilder,
  attempt,
  byName,
  childPath,
  dataOf,
  diffTrees,
  inodeCount,
  nsOpArb,
  pathArb,
  seedArb,
  withUmask0,
  xattrValueOf,
  type NsOp,
  type TreeShot,
} from '../helpers/kernel-reference.js';

const ROOT = { uid: 0, gid: 0 };

type Op =
  | NsOp
  | { k: 'open'; p: string }
  | { k: 'fdwrite'; h: number; off: number; len: number; seed: number }
  | { k: 'close'; h: number }
  | { k: 'commit' }
  | { k: 'restart' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 51, arbitrary: nsOpArb() },
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

type WriteRec = Extract<MetaRecord, { t: 'write' }>;

/** One run: an FsState and the kernel reference driven in lockstep. */
class Harness {
  readonly ref = new KernelReference();
  state: FsState;
  now = 1000;
  /** The fake WAL: every write's bytes, appended. */
  private log = Buffer.alloc(0);
  private readonly objects = new Map<string, Buffer>();
  private objCount = 0;
  /** Write records applied since the last commit (in recorded batches). */
  private pending: WriteRec[] = [];
  readonly batches: MetaRecord[][] = [];
  /** Our inode of each open handle of the reference (same order as ref.handles). */
  readonly handles: number[] = [];

  constructor() {
    this.state = FsState.create(this.now, ROOT, 0o755);
  }

  private apply(batch: MetaRecord[]): void {
    this.state.apply(batch);
    this.batches.push(batch);
    for (const r of batch) if (r.t === 'write') this.pending.push(r);
  }

  private plan(fn: () => MetaRecord[]): void {
    this.apply(fn());
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

  /** FsState's side of a namespace operation. */
  private ours(op: NsOp, now: number): string | undefined {
    const s = this.state;
    switch (op.k) {
      case 'mkdir':
        return attempt(() => this.plan(() => s.planMkdir(op.p, op.mode, ROOT, now)));
      case 'create':
        return attempt(() => this.plan(() => s.planCreate(op.p, op.mode, ROOT, now, op.excl)));
      case 'write':
        return attempt(() => {
          const ino = s.lookup(op.p);
          // open(O_WRONLY) of a directory is EISDIR (the engine's open checks that, not planWrite)
          if ((s.getattr(ino).mode & S_IFMT) === S_IFDIR) throw new FsError('EISDIR');
          this.writeIno(ino, op.off, dataOf(op.len, op.seed));
        });
      case 'truncate':
        return attempt(() => this.plan(() => s.planTruncate(s.lookup(op.p), op.size, now)));
      case 'rename':
        return attempt(() => this.plan(() => s.planRename(op.from, op.to, 0, now)));
      case 'link':
        return attempt(() => this.plan(() => s.planLink(op.from, op.to, now)));
      case 'unlink':
        return attempt(() => this.plan(() => s.planUnlink(op.p, now)));
      case 'rmdir':
        return attempt(() => this.plan(() => s.planRmdir(op.p, now)));
      case 'symlink':
        return attempt(() => this.plan(() => s.planSymlink(op.target, op.p, ROOT, now)));
      case 'chmod':
        return attempt(() => this.plan(() => s.planChmod(s.lookup(op.p), op.mode, now)));
      case 'chown':
        return attempt(() => this.plan(() => s.planChown(s.lookup(op.p), op.uid, op.gid, now)));
      case 'setxattr':
        return attempt(() => this.plan(() => s.planSetxattr(s.lookup(op.p), op.name, xattrValueOf(op.seed), op.flags, now)));
      case 'removexattr':
        return attempt(() => this.plan(() => s.planRemovexattr(s.lookup(op.p), op.name, now)));
    }
  }

  /** Runs one operation on both sides and checks that they agree on the outcome. */
  step(op: Op): void {
    const s = this.state;
    const now = ++this.now;
    let real: string | undefined;
    let ours: string | undefined;
    switch (op.k) {
      case 'open': {
        if (this.ref.viaSymlink(op.p, true) || this.handles.length >= 4) return;
        let h = -1;
        real = attempt(() => {
          h = this.ref.open(op.p, fs.constants.O_RDWR);
        });
        ours = attempt(() => {
          const ino = s.lookup(op.p);
          if ((s.getattr(ino).mode & S_IFMT) === S_IFDIR) throw new FsError('EISDIR');
          if (real === undefined) {
            s.opened(ino);
            this.handles.push(ino);
          }
        });
        if (real === undefined && ours !== undefined) this.ref.close(h);
        break;
      }
      case 'fdwrite': {
        const h = this.ref.handles[op.h];
        if (!h) return;
        const data = dataOf(op.len, op.seed);
        fs.writeSync(h.fd, data, 0, data.length, op.off);
        this.writeIno(this.handles[op.h]!, op.off, data);
        return;
      }
      case 'close': {
        if (!this.ref.handles[op.h]) return;
        const ino = this.handles[op.h]!;
        this.compareHandle(op.h);
        this.ref.close(op.h);
        this.handles.splice(op.h, 1);
        this.plan(() => s.planClosed(ino));
        return;
      }
      case 'commit':
        this.commit();
        return;
      case 'restart':
        this.restart();
        return;
      default:
        if (this.ref.skips(op)) return;
        real = this.ref.run(op);
        ours = this.ours(op, now);
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
    for (const ino of this.handles) restored.opened(ino);
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

  private compareHandle(h: number): void {
    const { fd } = this.ref.handles[h]!;
    const ino = this.handles[h]!;
    const st = fs.fstatSync(fd);
    const a = this.state.getattr(ino);
    assert.equal(a.size, st.size, 'size of an open file');
    assert.equal(a.nlink, st.nlink, 'nlink of an open file');
    const buf = Buffer.alloc(st.size);
    fs.readSync(fd, buf, 0, st.size, 0);
    assert.ok(buf.equals(this.contents(ino)), 'contents of an open file');
  }

  /** The picture of the tree as FsState holds it (file contents rebuilt from the extent maps). */
  shot(): TreeShot {
    const s = this.state;
    const b = new ShotBuilder();
    const visit = (p: string, ino: number): void => {
      const xattrs = s.listxattr(ino).sort().map((k) => [k, s.getxattr(ino, k).toString('hex')] as [string, string]);
      const node = b.add(p, ino, s.getattr(ino), xattrs);
      if (node.type === 'symlink') node.target = s.readlink(ino);
      if (node.type === 'file') node.data = this.contents(ino);
      if (node.type === 'dir') for (const e of byName(s.readdir(ino))) visit(childPath(p, e.name), e.attr.ino);
    };
    visit('/', ROOT_INO);
    return b.shot;
  }

  /** Compares the whole tree and the open handles. */
  compareAll(): void {
    const ref = this.ref.shot();
    const diff = diffTrees(this.shot(), ref);
    assert.deepEqual(diff, [], `FsState differs from the kernel:\n${diff.join('\n')}`);
    for (let h = 0; h < this.handles.length; h++) this.compareHandle(h);
    // Exactly the linked inodes and the open orphans exist.
    const linked = new Set<number>();
    for (const [p] of ref) linked.add(this.state.lookup(p));
    const open = new Set(this.handles);
    assert.equal(this.state.inodeCount, inodeCount(ref) + [...open].filter((ino) => !linked.has(ino)).length, 'no leaked inodes');
    for (const o of this.state.orphans()) assert.ok(open.has(o), `orphan ${o} is not open`);
  }

  close(): void {
    this.ref.remove();
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
