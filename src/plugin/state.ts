/**
 * The plugin's persisted state: which volumes this host knows, their location and options, the Docker mount IDs
 * holding each one, and the mount process serving it. It is what lets a restarted plugin answer Get without the
 * store, keep reference counts across restarts, re-adopt live mount processes and remount dead ones.
 *
 * Stored as one small JSON file, replaced atomically: written to a temporary file in the same directory,
 * fsync'd, renamed over the old one, and the directory fsync'd. A reader therefore sees the old or the new state,
 * never a torn one. Saves are serialised. The file holds no credentials.
 */

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const STATE_FILE_NAME = 'state.json';

/** Where a volume lives. No credentials: `store` names a configured store (or its endpoint), never a secret. */
export interface VolumeLocation {
  backend: 'swift' | 's3' | 'memory';
  /** Name of the configured store/profile the volume is in ('default' for the plugin's main store). */
  store: string;
  region?: string;
  /** Swift container or S3 bucket. */
  container: string;
}

/** A running `swiftfs mount` process. `startTime` (from /proc/PID/stat) guards against PID reuse. */
export interface MountProcessRecord {
  pid: number;
  startTime: string;
  dir: string;
  /** ISO time the process was started. */
  startedAt: string;
}

export interface VolumeRecord {
  name: string;
  uuid: string;
  /** RFC 3339. */
  createdAt: string;
  location: VolumeLocation;
  /** Validated per-volume options as given to Create (names canonical, values strings). */
  options: Record<string, string>;
  /** Fixed mount point of this volume on this host. */
  mountpoint: string;
  /** Docker mount ID -> number of Mount calls not yet matched by Unmount (the engine may reuse an ID). */
  mounts: Record<string, number>;
  /** The mount process while the volume is mounted. */
  process?: MountProcessRecord;
  /** A mount process still flushing after the last Unmount answered (background upload). */
  draining?: MountProcessRecord;
  /** Last problem seen (mount failure, store unreachable), shown in Status. */
  lastError?: string;
  /** ISO time this host first recorded the volume. */
  recordedAt: string;
}

/** A volume removed from Docker whose container is still being emptied in the background. */
export interface RemovalRecord {
  name: string;
  uuid: string;
  location: VolumeLocation;
  since: string;
  lastError?: string;
}

export interface PluginStateData {
  version: 1;
  volumes: Record<string, VolumeRecord>;
  removals: Record<string, RemovalRecord>;
}

export function emptyState(): PluginStateData {
  return { version: 1, volumes: {}, removals: {} };
}

/** Total of outstanding mount references of a volume. */
export function mountRefs(record: VolumeRecord): number {
  let total = 0;
  for (const count of Object.values(record.mounts)) total += count;
  return total;
}

export class StateFile {
  readonly path: string;
  data: PluginStateData;
  private saving: Promise<void> = Promise.resolve();
  private seq = 0;

  private constructor(path: string, data: PluginStateData) {
    this.path = path;
    this.data = data;
  }

  /** Loads the state file in `dir` (creating the directory); a missing file is an empty state. */
  static load(dir: string): StateFile {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, STATE_FILE_NAME);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new StateFile(path, emptyState());
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`plugin state file ${path} is not valid JSON; move it aside to start with an empty state`);
    }
    return new StateFile(path, normalise(parsed, path));
  }

  /** Writes the current state durably; concurrent calls are serialised and each sees the latest data. */
  save(): Promise<void> {
    const run = this.saving.then(() => this.writeNow());
    this.saving = run.catch(() => undefined);
    return run;
  }

  private writeNow(): void {
    const text = `${JSON.stringify(this.data, null, 2)}\n`;
    const tmp = `${this.path}.tmp-${process.pid}-${++this.seq}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dirFd = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }
}

function normalise(value: unknown, path: string): PluginStateData {
  if (typeof value !== 'object' || value === null) throw new Error(`plugin state file ${path} has an unexpected shape`);
  const v = value as Partial<PluginStateData>;
  if (v.version !== 1) throw new Error(`plugin state file ${path} has unknown version ${String(v.version)}`);
  const volumes: Record<string, VolumeRecord> = {};
  for (const [name, rec] of Object.entries(v.volumes ?? {})) {
    volumes[name] = { ...rec, mounts: { ...(rec.mounts ?? {}) }, options: { ...(rec.options ?? {}) } };
  }
  return { version: 1, volumes, removals: { ...(v.removals ?? {}) } };
}
