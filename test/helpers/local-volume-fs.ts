/**
 * LocalVolumeFs: a VolumeFs that passes every call through to a local directory with node:fs. It lets the
 * FUSE adapter and mount be tested without the core, and serves as a second reference (the kernel's own
 * filesystem behind our adapter) next to the plain local directory.
 *
 * Limits, all outside what the adapter has to prove: xattrs live in memory (node:fs has no xattr calls),
 * keyed by inode number; RENAME_EXCHANGE is ENOTSUP (libfuse 2 never passes rename flags); statfs is the
 * host's.
 */

import { constants as C, type Stats } from 'node:fs';
import { lchown, link, lstat, lutimes, mkdir, open, readdir, readlink, rename, rmdir, statfs, symlink, truncate, unlink, chmod, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FsError } from '../../src/core/errors.js';
import {
  O_ACCMODE,
  O_APPEND,
  O_CREAT,
  O_EXCL,
  O_TRUNC,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  S_IFCHR,
  S_IFBLK,
  S_IFIFO,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  XATTR_CREATE,
  XATTR_REPLACE,
  type Attr,
  type Caller,
  type DirEntry,
  type StatFs,
  type VolumeFs,
} from '../../src/core/types.js';

function toAttr(st: Stats): Attr {
  return {
    ino: st.ino,
    mode: st.mode,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    rdev: st.rdev,
    atime: st.atimeMs,
    mtime: st.mtimeMs,
    ctime: st.ctimeMs,
    btime: st.birthtimeMs,
  };
}

export class LocalVolumeFs implements VolumeFs {
  readonly root: string;
  private readonly handles = new Map<number, { fh: FileHandle; ino: number }>();
  private nextHandle = 1;
  private readonly xattrs = new Map<number, Map<string, Buffer>>();
  /** When set, operations reject with this errno name (to test error paths). */
  failWith: string | undefined;

  constructor(root: string) {
    this.root = root;
  }

  private p(path: string): string {
    return join(this.root, path);
  }

  private h(fh: number): FileHandle {
    const entry = this.handles.get(fh);
    if (!entry) throw new FsError('EBADF', undefined, { syscall: 'handle' });
    return entry.fh;
  }

  private check(): void {
    if (this.failWith) throw Object.assign(new Error(`injected ${this.failWith}`), { code: this.failWith });
  }

  private async own(path: string, caller?: Caller): Promise<void> {
    if (!caller || process.getuid?.() !== 0) return;
    // A setgid parent directory gives its group (the backing filesystem did that already): keep it, as Linux.
    const parent = await lstat(dirname(this.p(path)));
    await lchown(this.p(path), caller.uid, parent.mode & 0o2000 ? parent.gid : caller.gid);
  }

  private addHandle(fh: FileHandle, ino: number): number {
    const id = this.nextHandle++;
    this.handles.set(id, { fh, ino });
    return id;
  }

  async getattr(path: string): Promise<Attr> {
    this.check();
    return toAttr(await lstat(this.p(path)));
  }

  async fgetattr(fh: number): Promise<Attr> {
    return toAttr(await this.h(fh).stat());
  }

  async readdir(path: string): Promise<DirEntry[]> {
    this.check();
    const names = await readdir(this.p(path));
    const out: DirEntry[] = [];
    for (const name of names) {
      try {
        out.push({ name, attr: toAttr(await lstat(join(this.p(path), name))) });
      } catch {
        // raced with an unlink
      }
    }
    return out;
  }

  async readlink(path: string): Promise<string> {
    return readlink(this.p(path));
  }

  async open(path: string, flags: number): Promise<number> {
    this.check();
    // Offsets come from the kernel (it resolves O_APPEND), so the local file is opened without O_APPEND.
    const fh = await open(this.p(path), (flags & (O_ACCMODE | O_TRUNC)) | C.O_NOFOLLOW);
    return this.addHandle(fh, (await fh.stat()).ino);
  }

  async create(path: string, mode: number, flags: number, caller?: Caller): Promise<number> {
    this.check();
    const f = (flags & (O_ACCMODE | O_EXCL | O_TRUNC)) | O_CREAT;
    const fh = await open(this.p(path), f & ~O_APPEND, mode & 0o7777);
    await this.own(path, caller);
    return this.addHandle(fh, (await fh.stat()).ino);
  }

  async read(fh: number, length: number, position: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.h(fh).read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  }

  async write(fh: number, data: Buffer, position: number): Promise<number> {
    const { bytesWritten } = await this.h(fh).write(data, 0, data.length, position);
    return bytesWritten;
  }

  async flush(fh: number): Promise<void> {
    this.h(fh);
  }

  async fsync(fh: number, datasync: boolean): Promise<void> {
    if (datasync) await this.h(fh).datasync();
    else await this.h(fh).sync();
  }

  async release(fh: number): Promise<void> {
    const entry = this.handles.get(fh);
    if (!entry) throw new FsError('EBADF');
    this.handles.delete(fh);
    await entry.fh.close();
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    await this.h(fh).truncate(size);
  }

  async mknod(path: string, mode: number, rdev: number, caller?: Caller): Promise<void> {
    this.check();
    const type = mode & S_IFMT;
    if (type === S_IFREG || type === 0) {
      const fh = await open(this.p(path), C.O_CREAT | C.O_EXCL | C.O_WRONLY, mode & 0o7777);
      await fh.close();
    } else if (type === S_IFIFO || type === S_IFSOCK || type === S_IFCHR || type === S_IFBLK) {
      // node:fs cannot make these; mkfifo(1) / mknod(1) can.
      const { execFileSync } = await import('node:child_process');
      const perm = (mode & 0o7777).toString(8);
      try {
        if (type === S_IFIFO) execFileSync('mkfifo', ['-m', perm, this.p(path)], { stdio: 'pipe' });
        else if (type === S_IFSOCK) throw new FsError('ENOTSUP');
        else execFileSync('mknod', ['-m', perm, this.p(path), type === S_IFCHR ? 'c' : 'b', String(rdev >> 8), String(rdev & 0xff)], { stdio: 'pipe' });
      } catch (err) {
        if (err instanceof FsError) throw err;
        await lstat(this.p(path)).then(
          () => {
            throw new FsError('EEXIST');
          },
          () => {
            throw new FsError('EIO', String(err));
          },
        );
      }
    } else {
      throw new FsError('EINVAL');
    }
    await this.own(path, caller);
  }

  async mkdir(path: string, mode: number, caller?: Caller): Promise<void> {
    this.check();
    await mkdir(this.p(path), mode & 0o7777);
    await this.own(path, caller);
  }

  async symlink(target: string, path: string, caller?: Caller): Promise<void> {
    this.check();
    await symlink(target, this.p(path));
    await this.own(path, caller);
  }

  async link(existingPath: string, newPath: string): Promise<void> {
    await link(this.p(existingPath), this.p(newPath));
  }

  async unlink(path: string): Promise<void> {
    this.check();
    await unlink(this.p(path));
  }

  async rmdir(path: string): Promise<void> {
    await rmdir(this.p(path));
  }

  async rename(from: string, to: string, flags = 0): Promise<void> {
    if (flags & RENAME_EXCHANGE) throw new FsError('ENOTSUP');
    if (flags & RENAME_NOREPLACE) {
      const exists = await lstat(this.p(to)).then(() => true, () => false);
      if (exists) throw new FsError('EEXIST');
    }
    await rename(this.p(from), this.p(to));
  }

  async truncate(path: string, size: number): Promise<void> {
    await truncate(this.p(path), size);
  }

  async chmod(path: string, mode: number): Promise<void> {
    await chmod(this.p(path), mode & 0o7777);
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    const st = await lstat(this.p(path));
    await lchown(this.p(path), uid === 0xffffffff ? st.uid : uid, gid === 0xffffffff ? st.gid : gid);
  }

  async utimens(path: string, atime: number, mtime: number): Promise<void> {
    await lutimes(this.p(path), atime / 1000, mtime / 1000);
  }

  private async xattrsOf(path: string, create: boolean): Promise<Map<string, Buffer> | undefined> {
    const ino = (await lstat(this.p(path))).ino;
    let map = this.xattrs.get(ino);
    if (!map && create) {
      map = new Map();
      this.xattrs.set(ino, map);
    }
    return map;
  }

  async setxattr(path: string, name: string, value: Buffer, flags: number): Promise<void> {
    if (!/^(user|trusted|security)\./.test(name)) throw new FsError('ENOTSUP');
    const map = (await this.xattrsOf(path, true))!;
    if (flags & XATTR_CREATE && map.has(name)) throw new FsError('EEXIST');
    if (flags & XATTR_REPLACE && !map.has(name)) throw new FsError('ENODATA');
    map.set(name, Buffer.from(value));
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    const value = (await this.xattrsOf(path, false))?.get(name);
    if (!value) throw new FsError('ENODATA');
    return value;
  }

  async listxattr(path: string): Promise<string[]> {
    return [...((await this.xattrsOf(path, false))?.keys() ?? [])];
  }

  async removexattr(path: string, name: string): Promise<void> {
    const map = await this.xattrsOf(path, false);
    if (!map?.delete(name)) throw new FsError('ENODATA');
  }

  async statfs(): Promise<StatFs> {
    const s = await statfs(this.root);
    return { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, namemax: 255 };
  }

  async syncAll(): Promise<void> {
    for (const { fh } of this.handles.values()) await fh.sync();
  }

  /** Closes every handle still open. */
  async close(): Promise<void> {
    for (const id of [...this.handles.keys()]) await this.release(id).catch(() => undefined);
  }
}
