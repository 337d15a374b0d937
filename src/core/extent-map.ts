/**
 * ExtentMap: where the bytes of one regular file live. A sorted list of non-overlapping extents
 * `{off, len, ref}` (file range [off, off+len) is stored at `ref`); the gaps are holes (zeros). A later write
 * shadows what it overlaps, splitting extents at both ends; adjacent extents whose refs are contiguous in the
 * same source are merged, so the representation is canonical (it only depends on which file byte maps to which
 * stored byte, not on the history of writes).
 *
 * Storage is a list of chunks (each a sorted array of at most CHUNK_MAX extents), found by binary search, so
 * a file with hundreds of thousands of extents (a 1 GiB file written in random 4 KiB writes) costs O(log n +
 * CHUNK_MAX) per write instead of O(n).
 */

import type { DataRef, ExtentPiece } from './types.js';

export interface Extent {
  /** Offset in the file. */
  off: number;
  len: number;
  /** Where byte `off` of the file is stored; the next len-1 bytes follow it. */
  ref: DataRef;
}

const CHUNK_MAX = 512;

/** The ref of the byte `delta` bytes after `ref`. */
export function shiftRef(ref: DataRef, delta: number): DataRef {
  if (delta === 0) return ref;
  return 'obj' in ref ? { obj: ref.obj, off: ref.off + delta } : { wal: ref.wal, off: ref.off + delta };
}

/** A private copy of a ref (the map never shares ref objects with its callers, who may reuse theirs). */
function copyRef(ref: DataRef): DataRef {
  return 'obj' in ref ? { obj: ref.obj, off: ref.off } : { wal: ref.wal, off: ref.off };
}

/** Whether both refs point into the same object / the same WAL segment. */
export function sameSource(a: DataRef, b: DataRef): boolean {
  if ('obj' in a) return 'obj' in b && a.obj === b.obj;
  return 'wal' in b && a.wal === b.wal;
}

function isWal(ref: DataRef): boolean {
  return 'wal' in ref;
}

/** Whether `b` continues `a` seamlessly (adjacent in the file and in storage). */
function continues(a: Extent, b: Extent): boolean {
  return a.off + a.len === b.off && sameSource(a.ref, b.ref) && a.ref.off + a.len === b.ref.off;
}

/** Compact encoding used in snapshots: [off, len, objId | walNo, refOff, ...]. */
export type FlatExtents = (number | string)[];

export class ExtentMap {
  /** Non-empty chunks, each sorted; all extents of chunk i come before those of chunk i+1. */
  private chunks: Extent[][] = [];
  private n = 0;
  private walCount = 0;

  /** Number of extents. */
  get count(): number {
    return this.n;
  }

  /** Number of extents whose ref is a WAL ref (data not uploaded yet). */
  get walRefCount(): number {
    return this.walCount;
  }

  /** Maps [off, off+len) to `ref` (and the following bytes), shadowing what was there. */
  write(off: number, len: number, ref: DataRef): void {
    if (len <= 0) return;
    this.replace(off, off + len, { off, len, ref: copyRef(ref) });
  }

  /** Drops everything at or after `size`. */
  truncate(size: number): void {
    this.replace(size, Infinity, undefined);
  }

  /**
   * The pieces covering [off, min(off+len, size)), in order and without gaps: stored ranges and holes
   * (ref null).
   */
  pieces(off: number, len: number, size: number): ExtentPiece[] {
    const end = Math.min(off + len, size);
    const out: ExtentPiece[] = [];
    if (!(off < end)) return out;
    let pos = off;
    let [ci, i] = this.seek(off);
    const chunks = this.chunks;
    outer: for (; ci < chunks.length; ci++, i = 0) {
      const c = chunks[ci]!;
      for (; i < c.length; i++) {
        const e = c[i]!;
        if (e.off >= end) break outer;
        if (e.off > pos) {
          out.push({ off: pos, len: e.off - pos, ref: null });
          pos = e.off;
        }
        const stop = Math.min(e.off + e.len, end);
        if (stop > pos) {
          out.push({ off: pos, len: stop - pos, ref: copyRef(shiftRef(e.ref, pos - e.off)) });
          pos = stop;
        }
      }
    }
    if (pos < end) out.push({ off: pos, len: end - pos, ref: null });
    return out;
  }

  /**
   * After the data of a write (file range [off, off+len), stored at `from`) moved to `to`: every extent
   * still holding bytes of that write (file range inside [off, off+len), ref inside from's range at the same
   * relative position) now points at `to` instead. Returns how many bytes were rebased.
   */
  rebase(off: number, len: number, from: DataRef, to: DataRef): number {
    if (len <= 0) return 0;
    to = copyRef(to);
    const end = off + len;
    const moves: Extent[] = [];
    let [ci, i] = this.seek(off);
    const chunks = this.chunks;
    outer: for (; ci < chunks.length; ci++, i = 0) {
      const c = chunks[ci]!;
      for (; i < c.length; i++) {
        const e = c[i]!;
        if (e.off >= end) break outer;
        if (!sameSource(e.ref, from)) continue;
        // Same relative position: the extent's bytes came from this write.
        if (e.ref.off - e.off !== from.off - off) continue;
        const s = Math.max(e.off, off);
        const t = Math.min(e.off + e.len, end);
        if (t > s) moves.push({ off: s, len: t - s, ref: shiftRef(to, s - off) });
      }
    }
    let bytes = 0;
    for (const m of moves) {
      this.replace(m.off, m.off + m.len, m);
      bytes += m.len;
    }
    return bytes;
  }

  /** Adds every object id this map refers to. */
  collectObjects(into: Set<string>): void {
    for (const c of this.chunks) for (const e of c) if ('obj' in e.ref) into.add(e.ref.obj);
  }

  /** All extents, in order (copies). */
  all(): Extent[] {
    const out: Extent[] = [];
    for (const c of this.chunks) for (const e of c) out.push({ off: e.off, len: e.len, ref: copyRef(e.ref) });
    return out;
  }

  /** Offset just past the last extent (0 when empty). */
  get end(): number {
    const last = this.chunks[this.chunks.length - 1];
    if (!last) return 0;
    const e = last[last.length - 1]!;
    return e.off + e.len;
  }

  toFlat(): FlatExtents {
    const out: FlatExtents = new Array(this.n * 4);
    let k = 0;
    for (const c of this.chunks) {
      for (const e of c) {
        out[k++] = e.off;
        out[k++] = e.len;
        if ('obj' in e.ref) out[k++] = e.ref.obj;
        else out[k++] = e.ref.wal;
        out[k++] = e.ref.off;
      }
    }
    return out;
  }

  /** Rebuilds a map from toFlat() output (trusted: sorted, non-overlapping, already merged). */
  static fromFlat(flat: FlatExtents): ExtentMap {
    const m = new ExtentMap();
    let chunk: Extent[] = [];
    for (let k = 0; k + 3 < flat.length; k += 4) {
      const src = flat[k + 2]!;
      const refOff = flat[k + 3] as number;
      const ref: DataRef = typeof src === 'string' ? { obj: src, off: refOff } : { wal: src, off: refOff };
      if (chunk.length >= CHUNK_MAX / 2) {
        m.chunks.push(chunk);
        chunk = [];
      }
      chunk.push({ off: flat[k] as number, len: flat[k + 1] as number, ref });
      m.n++;
      if (isWal(ref)) m.walCount++;
    }
    if (chunk.length > 0) m.chunks.push(chunk);
    return m;
  }

  /** Checks the invariants (for tests): sorted, non-overlapping, positive lengths, merged, counters. */
  checkInvariants(): void {
    let prev: Extent | undefined;
    let n = 0;
    let wal = 0;
    for (const c of this.chunks) {
      if (c.length === 0 || c.length > CHUNK_MAX) throw new Error(`bad chunk size ${c.length}`);
      for (const e of c) {
        if (!(e.len > 0) || e.off < 0) throw new Error(`bad extent ${JSON.stringify(e)}`);
        if (prev && prev.off + prev.len > e.off) throw new Error(`overlap ${JSON.stringify(prev)} ${JSON.stringify(e)}`);
        if (prev && continues(prev, e)) throw new Error(`unmerged ${JSON.stringify(prev)} ${JSON.stringify(e)}`);
        prev = e;
        n++;
        if (isWal(e.ref)) wal++;
      }
    }
    if (n !== this.n || wal !== this.walCount) throw new Error(`bad counters n=${this.n}/${n} wal=${this.walCount}/${wal}`);
  }

  // ---- internals ----

  /** Position of the first extent that ends after `off` (or the end of the last chunk). */
  private seek(off: number): [number, number] {
    const chunks = this.chunks;
    if (chunks.length === 0) return [0, 0];
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (chunks[mid]![0]!.off <= off) lo = mid;
      else hi = mid - 1;
    }
    const c = chunks[lo]!;
    let a = 0;
    let b = c.length;
    while (a < b) {
      const m = (a + b) >> 1;
      const e = c[m]!;
      if (e.off + e.len > off) b = m;
      else a = m + 1;
    }
    if (a === c.length && lo + 1 < chunks.length) return [lo + 1, 0];
    return [lo, a];
  }

  /**
   * Removes everything in [off, end), keeping the parts of straddling extents outside it, and puts `middle`
   * (which must lie within [off, end)) in the gap; then merges with neighbours where seamless.
   */
  private replace(off: number, end: number, middle: Extent | undefined): void {
    const chunks = this.chunks;
    if (chunks.length === 0) {
      if (middle) {
        chunks.push([{ off: middle.off, len: middle.len, ref: middle.ref }]);
        this.n = 1;
        this.walCount = isWal(middle.ref) ? 1 : 0;
      }
      return;
    }
    let [ci, i] = this.seek(off);
    const c = chunks[ci]!;
    // Remove the overlapped extents (they start in chunk ci at i, and may continue into later chunks).
    let first: Extent | undefined;
    let last: Extent | undefined;
    let emptied = false;
    for (let cj = ci, j = i; cj < chunks.length; cj++, j = 0) {
      const cc = chunks[cj]!;
      let k = j;
      while (k < cc.length && cc[k]!.off < end) k++;
      const reachedChunkEnd = k === cc.length;
      if (k > j) {
        if (!first) first = cc[j];
        last = cc[k - 1];
        for (let q = j; q < k; q++) this.dropCount(cc[q]!);
        if (j === 0 && reachedChunkEnd) cc.length = 0;
        else cc.splice(j, k - j);
        if (cc.length === 0) emptied = true;
      }
      if (!reachedChunkEnd) break;
    }
    // The new run: left remainder, middle, right remainder.
    const run: Extent[] = [];
    if (first && first.off < off) run.push({ off: first.off, len: off - first.off, ref: first.ref });
    if (middle) run.push({ off: middle.off, len: middle.len, ref: middle.ref });
    if (last && last.off + last.len > end) {
      run.push({ off: end, len: last.off + last.len - end, ref: shiftRef(last.ref, end - last.off) });
    }
    // Merge with the predecessor.
    if (run.length > 0) {
      const head = run[0]!;
      if (i > 0) {
        const pred = c[i - 1]!;
        if (continues(pred, head)) {
          c.splice(i - 1, 1);
          i--;
          this.dropCount(pred);
          run[0] = { off: pred.off, len: pred.len + head.len, ref: pred.ref };
        }
      } else if (ci > 0) {
        const pc = chunks[ci - 1]!;
        const pred = pc[pc.length - 1]!;
        if (continues(pred, head)) {
          pc.pop();
          this.dropCount(pred);
          if (pc.length === 0) emptied = true;
          run[0] = { off: pred.off, len: pred.len + head.len, ref: pred.ref };
        }
      }
      // Merge with the successor.
      const tail = run[run.length - 1]!;
      let succChunk: Extent[] | undefined;
      let succIndex = 0;
      if (i < c.length) {
        succChunk = c;
        succIndex = i;
      } else {
        for (let cj = ci + 1; cj < chunks.length; cj++) {
          if (chunks[cj]!.length > 0) {
            succChunk = chunks[cj];
            break;
          }
        }
      }
      if (succChunk) {
        const succ = succChunk[succIndex]!;
        if (continues(tail, succ)) {
          succChunk.splice(succIndex, 1);
          this.dropCount(succ);
          if (succChunk.length === 0 && succChunk !== c) emptied = true;
          run[run.length - 1] = { off: tail.off, len: tail.len + succ.len, ref: tail.ref };
        }
      }
      // Merge inside the run (e.g. a remainder and the middle when rewriting the same bytes).
      for (let k = run.length - 1; k > 0; k--) {
        const a = run[k - 1]!;
        const b = run[k]!;
        if (continues(a, b)) {
          run[k - 1] = { off: a.off, len: a.len + b.len, ref: a.ref };
          run.splice(k, 1);
        }
      }
      for (const e of run) {
        this.n++;
        if (isWal(e.ref)) this.walCount++;
      }
      if (run.length === 1) c.splice(i, 0, run[0]!);
      else c.splice(i, 0, ...run);
    }
    if (c.length === 0) emptied = true;
    if (emptied) this.chunks = chunks.filter((x) => x.length > 0);
    if (c.length > CHUNK_MAX) {
      const at = this.chunks.indexOf(c);
      const half = c.length >> 1;
      this.chunks.splice(at + 1, 0, c.splice(half));
    }
  }

  private dropCount(e: Extent): void {
    this.n--;
    if (isWal(e.ref)) this.walCount--;
  }
}
