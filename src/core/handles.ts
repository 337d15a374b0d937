/**
 * Open file handles of a mounted volume: numbers from 1 (below 2^32, reused only after release), the open flags
 * and the per-handle read state used to detect sequential reads (readahead).
 */

import { FsError } from './errors.js';
import { O_ACCMODE, O_APPEND, O_RDONLY, O_RDWR, O_WRONLY } from './types.js';

export interface Handle {
  readonly fh: number;
  readonly ino: number;
  readonly flags: number;
  readonly readable: boolean;
  readonly writable: boolean;
  readonly append: boolean;
  /** End of the last read (for sequential detection). */
  lastReadEnd: number;
  /** Consecutive sequential reads. */
  sequentialReads: number;
  /** Readahead issued up to this file offset. */
  readaheadUntil: number;
}

const MAX_HANDLE = 0xffffffff;

export class HandleTable {
  private readonly handles = new Map<number, Handle>();
  private readonly perInode = new Map<number, number>();
  private next = 1;

  open(ino: number, flags: number): Handle {
    const acc = flags & O_ACCMODE;
    if (acc !== O_RDONLY && acc !== O_WRONLY && acc !== O_RDWR) throw new FsError('EINVAL', 'invalid open access mode', { syscall: 'open' });
    if (this.handles.size >= MAX_HANDLE - 1) throw new FsError('EMLINK', 'too many open handles', { syscall: 'open' });
    let fh = this.next;
    while (this.handles.has(fh)) fh = fh >= MAX_HANDLE - 1 ? 1 : fh + 1;
    this.next = fh >= MAX_HANDLE - 1 ? 1 : fh + 1;
    const h: Handle = {
      fh,
      ino,
      flags,
      readable: acc === O_RDONLY || acc === O_RDWR,
      writable: acc === O_WRONLY || acc === O_RDWR,
      append: (flags & O_APPEND) !== 0,
      lastReadEnd: -1,
      sequentialReads: 0,
      readaheadUntil: 0,
    };
    this.handles.set(fh, h);
    this.perInode.set(ino, (this.perInode.get(ino) ?? 0) + 1);
    return h;
  }

  /** The handle, or EBADF. */
  get(fh: number, syscall?: string): Handle {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF', `bad file handle ${fh}`, syscall ? { syscall } : {});
    return h;
  }

  /** Forgets a handle (EBADF if unknown) and returns it. */
  close(fh: number): Handle {
    const h = this.get(fh, 'release');
    this.handles.delete(fh);
    const n = (this.perInode.get(h.ino) ?? 1) - 1;
    if (n > 0) this.perInode.set(h.ino, n);
    else this.perInode.delete(h.ino);
    return h;
  }

  /** Open handles on an inode. */
  countFor(ino: number): number {
    return this.perInode.get(ino) ?? 0;
  }

  get size(): number {
    return this.handles.size;
  }

  all(): Handle[] {
    return [...this.handles.values()];
  }
}
