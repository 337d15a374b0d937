/**
 * How the plugin runs a volume's FUSE mount: the `MountRunner` interface, and small helpers about processes
 * and mounts on Linux (/proc) shared by its implementations.
 *
 * A mount runs in its own process (`swiftfs mount ... --foreground`, see ./mount-process.ts), not in the plugin:
 * a plugin crash or upgrade must not take the FUSE mounts of running containers with it (the ENOTCONN every
 * FUSE-in-plugin design gives). The plugin records each process (pid + start time, to survive pid reuse) and,
 * when it starts again, re-adopts the processes still alive.
 */

import { readFileSync } from 'node:fs';
import type { MountProcessRecord, VolumeRecord } from './state.js';

export interface StartMountRequest {
  record: VolumeRecord;
  /** The mount point (exists, empty, not mounted). */
  dir: string;
  /** The cache root given to the mount process (--cache-dir); the volume keeps its files in <cacheDir>/<uuid>. */
  cacheDir: string;
  /** Where the mount process's output goes. */
  logFile: string;
}

/** Figures a live mount reports, where it can. */
export interface MountStats {
  cacheBytes?: number;
  dirtyBytes?: number;
  /** 'ok', or what is wrong ("retrying: store unreachable (since ...)"). */
  health?: string;
  uploadsQueued?: number;
  /** ISO time of the last commit to the store. */
  lastCommitAt?: string;
  /** The mount daemon's state (mounted, flushing, ..., replicating: closed, waiting for its replicas). */
  state?: string;
  /** Where the mount replicates to, and each replica's lag (the daemon's regions status). */
  replication?: MountReplication;
}

/** The part of a mount daemon's regions status the plugin shows (src/region/replication.ts). */
export interface MountReplication {
  region: string;
  home: { region: string; container: string } | null;
  replicating: boolean;
  note?: string | undefined;
  replicas: {
    region: string;
    container: string;
    mode: string;
    state: string;
    lagSeconds: number;
    lagBytes: number;
    replicatedSeq: number;
    sourceSeq: number;
    lastSyncAt: string | null;
    lastError?: string | undefined;
  }[];
}

export type StopResult = 'done' | 'pending';

export interface MountRunner {
  /**
   * Starts the mount process and resolves once `dir` is mounted. Rejects with a user-facing Error (the mount
   * process's own explanation where it gave one, e.g. "volume in use by host X") if the process exits or the
   * signal fires first; in that case no process is left running.
   */
  start(request: StartMountRequest, signal: AbortSignal): Promise<MountProcessRecord>;
  /** Is this exact process (pid and start time) still running? */
  isAlive(proc: MountProcessRecord): boolean;
  /** Is `dir` (still) a FUSE mount point? (Says nothing about whether its daemon answers.) */
  isMounted(dir: string): Promise<boolean>;
  /**
   * Flushes everything to the store and unmounts: resolves 'done' once the process has exited after a clean
   * unmount, or 'pending' if that did not finish within `budgetMs` (the process keeps uploading; `waitExit`
   * follows it). Rejects if the process reported a failure.
   */
  stop(proc: MountProcessRecord, budgetMs: number): Promise<StopResult>;
  /** Resolves when the process has exited (polls for adopted processes). */
  waitExit(proc: MountProcessRecord, signal?: AbortSignal): Promise<void>;
  /** Detaches whatever is left at `dir` after its process died (a dead FUSE mount: ENOTCONN). */
  cleanupDeadMount(dir: string): Promise<void>;
  /** Stats of a live mount, if the process can tell (undefined otherwise). */
  stats(record: VolumeRecord, cacheDir: string): Promise<MountStats | undefined>;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or undefined if no such process. */
export function processStartTime(pid: number): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field 22 is rest[19].
  if (rest[0] === 'Z' || rest[0] === 'X') return undefined; // a zombie is dead
  return rest[19];
}

export function processAlive(proc: { pid: number; startTime: string }): boolean {
  return processStartTime(proc.pid) === proc.startTime;
}

/** Unescapes the octal escapes (\040 etc.) of /proc/self/mountinfo paths. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export interface MountInfoEntry {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** The mounts of this process's mount namespace. */
export function readMountInfo(): MountInfoEntry[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const fields = left.split(' ');
    const mountPoint = fields[4];
    const [fsType, source] = right.split(' ');
    if (mountPoint === undefined || fsType === undefined) continue;
    out.push({ mountPoint: unescapeMountPath(mountPoint), fsType, source: source ?? '' });
  }
  return out;
}

/** The topmost mount at exactly `dir`, if any. */
export function mountAt(dir: string): MountInfoEntry | undefined {
  let found: MountInfoEntry | undefined;
  for (const entry of readMountInfo()) if (entry.mountPoint === dir) found = entry;
  return found;
}
