/**
 * The kernel as the reference of the property tests of the filesystem core (test/unit/fsstate-model.test.ts
 * drives FsState, test/helpers/volume-model.ts drives a whole Volume): a real directory under the OS temp dir
 * that every operation is also applied to through node:fs, and the vocabulary both tests share.
 *
 *  - `NsOp` and its fast-check arbitraries: namespace and data operations on paths, over a small set of names
 *    so that operations collide (EEXIST, ENOTEMPTY, renames over existing entries, hard links...).
 *  - `KernelReference`: applies an NsOp (and open/read/write/truncate/close of descriptors) to the directory
 *    and returns the errno name it failed with. node:fs has no xattr calls: xattrs are a model of Linux's
 *    rules kept beside the directory, keyed by the real inode.
 *  - `TreeShot`: a normalised picture of a whole tree (types, modes, owners, sizes, nlink, mtimes, hard-link
 *    identity, symlink targets, contents, xattrs) that both sides produce, `diffTrees` to compare two, and
 *    `KernelReference.resetTo` to rebuild the directory as a picture shows it (after a crash, the core may
 *    legitimately come back at an earlier state than the reference reached).
 *
 * Operations whose paths go through a symlink are skipped (`goesThroughSymlink`): the kernel resolves those
 * before the core is called.
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { FsError } from '../../src/core/errors.js';
import { XATTR_CREATE, XATTR_REPLACE } from '../../src/core/types.js';

export const IS_ROOT = process.getuid?.() === 0;

/** Namespace and data operations on paths, which every side implements. */
export type NsOp =
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
  | { k: 'removexattr'; p: string; name: string };

export const nameArb = fc.oneof(
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
export const pathArb = fc.oneof(
  { weight: 6, arbitrary: randomPathArb },
  { weight: 4, arbitrary: fc.constantFrom('/a', '/b', '/a/a', '/a/b', '/a/b/a') },
);
/** Renames between a directory and its own subtree, in both directions (EINVAL / ENOTEMPTY / fine). */
export const subtreeRenameArb = fc
  .tuple(pathArb, fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 2 }), fc.boolean())
  .map(([p, rest, down]) => {
    const deeper = `${p}/${rest.join('/')}`;
    return { k: 'rename' as const, from: down ? p : deeper, to: down ? deeper : p };
  });

/** Every run starts from this tree, so that early operations have something to work on. */
export const SETUP: NsOp[] = [
  { k: 'mkdir', p: '/a', mode: 0o755 },
  { k: 'mkdir', p: '/a/b', mode: 0o755 },
  { k: 'create', p: '/b', mode: 0o644, excl: true },
  { k: 'create', p: '/a/a', mode: 0o644, excl: true },
  { k: 'write', p: '/a/a', off: 0, len: 5000, seed: 1 },
];
export const modeArb = fc.constantFrom(0o755, 0o700, 0o644, 0o600, 0o2775, 0o4755, 0o1777, 0o6750);
export const seedArb = fc.integer({ min: 0, max: 255 });
export const XATTR_NAMES = ['user.x', 'user.y', 'trusted.t'];

/** Data operations' sizes: mostly small, sometimes large (`maxOff`/`maxLen` bound the large ones). */
export function nsOpArb(sizes: { maxOff: number; maxLen: number; maxSize: number } = { maxOff: 20000, maxLen: 6000, maxSize: 30000 }): fc.Arbitrary<NsOp> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ k: fc.constant('mkdir' as const), p: pathArb, mode: modeArb }) },
    { weight: 6, arbitrary: fc.record({ k: fc.constant('create' as const), p: pathArb, mode: modeArb, excl: fc.boolean() }) },
    {
      weight: 8,
      arbitrary: fc.record({
        k: fc.constant('write' as const),
        p: pathArb,
        off: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: sizes.maxOff })),
        len: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: sizes.maxLen })),
        seed: seedArb,
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({ k: fc.constant('truncate' as const), p: pathArb, size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: sizes.maxSize })) }),
    },
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
        name: fc.constantFrom(...XATTR_NAMES),
        seed: seedArb,
        flags: fc.constantFrom(0, XATTR_CREATE, XATTR_REPLACE),
      }),
    },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('removexattr' as const), p: pathArb, name: fc.constantFrom(...XATTR_NAMES) }) },
  );
}

/** Deterministic bytes of a write. */
export function dataOf(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i * 7 + (i >> 8)) & 255;
  return b;
}

/** The value of a setxattr op. */
export function xattrValueOf(seed: number): Buffer {
  return dataOf(seed % 40, seed);
}

/** The errno name of an error from the core or from node:fs (anything else is rethrown: a bug of the test). */
export function codeOf(e: unknown): string {
  if (e instanceof FsError) return e.code;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  throw e;
}

/** Runs fn; returns undefined on success or the errno name it failed with. */
export function attempt(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return codeOf(e);
  }
}

/** The same for an async fn. */
export async function attemptAsync(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
    return undefined;
  } catch (e) {
    return codeOf(e);
  }
}

export function withUmask0<T>(fn: () => T): T {
  const old = process.umask(0);
  try {
    return fn();
  } finally {
    process.umask(old);
  }
}

/** Runs an async fn with umask 0 (the reference's modes are then exactly the modes asked for). */
export async function withUmask0Async<T>(fn: () => Promise<T>): Promise<T> {
  const old = process.umask(0);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tree pictures
// ---------------------------------------------------------------------------------------------------------------

export type NodeType = 'dir' | 'file' | 'symlink' | 'other';

/** One path of a tree as stat(2), readlink(2), read(2) and listxattr(2) show it. */
export interface NodeShot {
  type: NodeType;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  /** ms since the epoch. */
  mtime: number;
  /** The first path (in walk order: names sorted, depth first) of this inode: the same for all its hard links. */
  inode: string;
  target?: string;
  data?: Buffer;
  /** [name, hex value], sorted by name. */
  xattrs: [string, string][];
}

/** A whole tree: every path ('/' included) in walk order. */
export type TreeShot = Map<string, NodeShot>;

export function typeOfMode(mode: number): NodeType {
  const t = mode & 0o170000;
  return t === 0o040000 ? 'dir' : t === 0o100000 ? 'file' : t === 0o120000 ? 'symlink' : 'other';
}

/**
 * Differences between two pictures, as readable lines (empty when they agree). Sizes of directories are not
 * compared. mtimes are compared when `mtimeToleranceMs` is given (two clocks: the kernel's and the core's), for
 * files and directories.
 */
export function diffTrees(ours: TreeShot, ref: TreeShot, opts: { mtimeToleranceMs?: number; limit?: number } = {}): string[] {
  const out: string[] = [];
  const limit = opts.limit ?? 12;
  for (const [p, r] of ref) {
    if (out.length >= limit) break;
    const o = ours.get(p);
    if (!o) {
      out.push(`${p}: missing (a ${r.type})`);
      continue;
    }
    const fields = ['type', 'mode', 'uid', 'gid', 'nlink', 'size', 'inode', 'target'] as const;
    for (const f of fields) {
      if (f === 'size' && r.type === 'dir') continue; // a directory's size is the filesystem's own business
      if (o[f] !== r[f]) out.push(`${p}: ${f} ${fmt(f, o[f])}, expected ${fmt(f, r[f])}`);
    }
    if (opts.mtimeToleranceMs !== undefined && (r.type === 'file' || r.type === 'dir') && Math.abs(o.mtime - r.mtime) > opts.mtimeToleranceMs) {
      out.push(`${p}: mtime ${new Date(o.mtime).toISOString()}, expected ${new Date(r.mtime).toISOString()}`);
    }
    if (r.data && o.data && !o.data.equals(r.data)) {
      let i = 0;
      while (i < o.data.length && i < r.data.length && o.data[i] === r.data[i]) i++;
      out.push(`${p}: contents differ from byte ${i} (${o.data.length} bytes, expected ${r.data.length})`);
    }
    if (JSON.stringify(o.xattrs) !== JSON.stringify(r.xattrs)) out.push(`${p}: xattrs ${JSON.stringify(o.xattrs)}, expected ${JSON.stringify(r.xattrs)}`);
  }
  for (const p of ours.keys()) {
    if (out.length >= limit) break;
    if (!ref.has(p)) out.push(`${p}: unexpected (a ${ours.get(p)!.type})`);
  }
  return out;
}

function fmt(field: string, v: unknown): string {
  return field === 'mode' && typeof v === 'number' ? `0o${v.toString(8)}` : JSON.stringify(v);
}

/** The attributes a picture keeps (mtime in ms). */
export type ShotAttr = Pick<NodeShot, 'mode' | 'uid' | 'gid' | 'nlink' | 'size' | 'mtime'>;

/** Builds a picture in walk order, labelling each inode with the first path it was met at. */
export class ShotBuilder {
  readonly shot: TreeShot = new Map();
  private readonly first = new Map<number, string>();

  /** Adds path `p` of inode `ino`; the caller fills in `target` or `data`. */
  add(p: string, ino: number, a: ShotAttr, xattrs: [string, string][]): NodeShot {
    const inode = this.first.get(ino) ?? p;
    this.first.set(ino, inode);
    const node: NodeShot = { type: typeOfMode(a.mode), mode: a.mode, uid: a.uid, gid: a.gid, nlink: a.nlink, size: a.size, mtime: a.mtime, inode, xattrs };
    this.shot.set(p, node);
    return node;
  }
}

/** The path of `name` in directory `dir`. */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** Directory entries in walk order. */
export function byName<T extends { name: string }>(entries: T[]): T[] {
  return entries.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

/** Number of distinct inodes a picture shows. */
export function inodeCount(shot: TreeShot): number {
  return new Set([...shot.values()].map((n) => n.inode)).size;
}

// ---------------------------------------------------------------------------------------------------------------
// The reference directory
// ---------------------------------------------------------------------------------------------------------------

/** An open descriptor of the reference. */
export interface RefHandle {
  fd: number;
  flags: number;
}

export class KernelReference {
  readonly dir: string;
  /** Open descriptors, in the order the test opened them. */
  readonly handles: RefHandle[] = [];
  /** The model of xattrs, by real inode number. */
  private readonly xattrs = new Map<number, Map<string, Buffer>>();

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swiftfs-ref-'));
    fs.chmodSync(this.dir, 0o755);
  }

  real(p: string): string {
    return p === '/' ? this.dir : this.dir + p;
  }

  /** Whether resolving `p` goes through a symlink (not counting the last component unless `final`). */
  viaSymlink(p: string, final: boolean): boolean {
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

  /** Whether the kernel would resolve a path of `op` through a symlink before the core sees it (skip it then). */
  skips(op: NsOp): boolean {
    switch (op.k) {
      case 'mkdir':
      case 'unlink':
      case 'rmdir':
      case 'symlink':
      case 'setxattr':
      case 'removexattr':
        return this.viaSymlink(op.p, false);
      case 'create':
        return this.viaSymlink(op.p, !op.excl);
      case 'write':
      case 'truncate':
      case 'chmod':
        return this.viaSymlink(op.p, true);
      case 'chown':
        return !IS_ROOT || this.viaSymlink(op.p, false);
      case 'rename':
      case 'link':
        return this.viaSymlink(op.from, false) || this.viaSymlink(op.to, false);
    }
  }

  private inoOf(p: string): number | undefined {
    try {
      return Number(fs.lstatSync(this.real(p)).ino);
    } catch {
      return undefined;
    }
  }

  /** A new inode at `p` has no xattrs (the kernel may reuse the number of a freed inode). */
  private fresh(p: string): void {
    const ino = this.inoOf(p);
    if (ino !== undefined) this.xattrs.delete(ino);
  }

  /** Applies an operation; returns undefined or the errno name it failed with. */
  run(op: NsOp): string | undefined {
    switch (op.k) {
      case 'mkdir':
        return attempt(() => {
          fs.mkdirSync(this.real(op.p), op.mode);
          this.fresh(op.p);
        });
      case 'create':
        return attempt(() => {
          const existed = this.inoOf(op.p) !== undefined;
          fs.closeSync(fs.openSync(this.real(op.p), fs.constants.O_CREAT | fs.constants.O_WRONLY | (op.excl ? fs.constants.O_EXCL : 0), op.mode));
          if (!existed) this.fresh(op.p);
        });
      case 'write': {
        const data = dataOf(op.len, op.seed);
        return attempt(() => {
          const fd = fs.openSync(this.real(op.p), fs.constants.O_WRONLY);
          try {
            fs.writeSync(fd, data, 0, data.length, op.off);
          } finally {
            fs.closeSync(fd);
          }
        });
      }
      case 'truncate':
        return attempt(() => fs.truncateSync(this.real(op.p), op.size));
      case 'rename':
        return attempt(() => fs.renameSync(this.real(op.from), this.real(op.to)));
      case 'link':
        return attempt(() => fs.linkSync(this.real(op.from), this.real(op.to)));
      case 'unlink':
        return attempt(() => fs.unlinkSync(this.real(op.p)));
      case 'rmdir':
        return attempt(() => fs.rmdirSync(this.real(op.p)));
      case 'symlink':
        return attempt(() => {
          fs.symlinkSync(op.target, this.real(op.p));
          this.fresh(op.p);
        });
      case 'chmod':
        return attempt(() => fs.chmodSync(this.real(op.p), op.mode));
      case 'chown':
        return attempt(() => fs.lchownSync(this.real(op.p), op.uid, op.gid));
      case 'setxattr':
        return attempt(() => this.setxattr(op.p, op.name, xattrValueOf(op.seed), op.flags));
      case 'removexattr':
        return attempt(() => this.removexattr(op.p, op.name));
    }
  }

  /** The model of Linux's rules (lsetxattr): lookup errors, EPERM for user.* on other than files and dirs, flags. */
  private xattrTarget(p: string, name: string): Map<string, Buffer> {
    const st = fs.lstatSync(this.real(p));
    if (name.startsWith('user.') && !st.isFile() && !st.isDirectory()) throw new FsError('EPERM');
    const ino = Number(st.ino);
    let m = this.xattrs.get(ino);
    if (!m) this.xattrs.set(ino, (m = new Map()));
    return m;
  }

  setxattr(p: string, name: string, value: Buffer, flags: number): void {
    const m = this.xattrTarget(p, name);
    if (m.has(name) && flags === XATTR_CREATE) throw new FsError('EEXIST');
    if (!m.has(name) && flags === XATTR_REPLACE) throw new FsError('ENODATA');
    m.set(name, value);
  }

  removexattr(p: string, name: string): void {
    const m = this.xattrTarget(p, name);
    if (!m.delete(name)) throw new FsError('ENODATA');
  }

  getxattr(p: string, name: string): Buffer {
    const v = this.xattrs.get(Number(fs.lstatSync(this.real(p)).ino))?.get(name);
    if (!v) throw new FsError('ENODATA');
    return v;
  }

  listxattr(p: string): string[] {
    return [...(this.xattrs.get(Number(fs.lstatSync(this.real(p)).ino))?.keys() ?? [])].sort();
  }

  /** xattrs of an inode by its real number, as a picture shows them. */
  xattrsOfIno(ino: number): [string, string][] {
    return [...(this.xattrs.get(ino) ?? [])].map(([k, v]) => [k, v.toString('hex')] as [string, string]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  // ---- descriptors ----

  /** open(2) with Linux flags; returns the index of the new handle. */
  open(p: string, flags: number, mode = 0o644): number {
    const existed = this.inoOf(p) !== undefined;
    const fd = fs.openSync(this.real(p), flags, mode);
    if (!existed) this.fresh(p);
    this.handles.push({ fd, flags });
    return this.handles.length - 1;
  }

  close(h: number): void {
    const handle = this.handles[h]!;
    this.handles.splice(h, 1);
    fs.closeSync(handle.fd);
  }

  closeAll(): void {
    while (this.handles.length > 0) this.close(0);
  }

  // ---- pictures ----

  /** The picture of the whole tree. */
  shot(): TreeShot {
    const b = new ShotBuilder();
    const visit = (p: string): void => {
      const st = fs.lstatSync(this.real(p));
      const node = b.add(p, Number(st.ino), { ...st, mtime: st.mtimeMs }, this.xattrsOfIno(Number(st.ino)));
      if (node.type === 'symlink') node.target = fs.readlinkSync(this.real(p));
      if (node.type === 'file') node.data = fs.readFileSync(this.real(p));
      if (node.type === 'dir') for (const name of fs.readdirSync(this.real(p)).sort()) visit(childPath(p, name));
    };
    visit('/');
    return b.shot;
  }

  /** Rebuilds the directory as `shot` shows it (every descriptor must be closed). */
  resetTo(shot: TreeShot): void {
    assert.equal(this.handles.length, 0, 'resetTo with open descriptors');
    for (const name of fs.readdirSync(this.dir)) fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
    this.xattrs.clear();
    for (const [p, n] of shot) {
      if (p === '/') continue;
      const real = this.real(p);
      if (n.inode !== p) fs.linkSync(this.real(n.inode), real);
      else if (n.type === 'dir') fs.mkdirSync(real);
      else if (n.type === 'file') fs.writeFileSync(real, n.data ?? Buffer.alloc(0));
      else if (n.type === 'symlink') fs.symlinkSync(n.target!, real);
      else throw new Error(`resetTo: cannot create a ${n.type} at ${p}`);
    }
    // Attributes once per inode: owner before mode (chown clears set-id bits), then xattrs.
    for (const [p, n] of shot) {
      if (n.inode !== p) continue;
      const real = this.real(p);
      fs.lchownSync(real, n.uid, n.gid);
      if (n.type !== 'symlink') fs.chmodSync(real, n.mode & 0o7777);
      if (n.xattrs.length) this.xattrs.set(Number(fs.lstatSync(real).ino), new Map(n.xattrs.map(([k, v]) => [k, Buffer.from(v, 'hex')])));
    }
    // mtimes last, children before their directory (creating entries changed it).
    for (const [p, n] of [...shot].reverse()) {
      if (n.inode !== p || (n.type !== 'file' && n.type !== 'dir')) continue;
      const st = fs.lstatSync(this.real(p));
      fs.utimesSync(this.real(p), st.atime, new Date(n.mtime));
    }
  }

  /** Closes everything and removes the directory. */
  remove(): void {
    for (const h of this.handles) fs.closeSync(h.fd);
    this.handles.length = 0;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
