/**
 * ProcessMountRunner: runs each volume's FUSE mount as its own `swiftfs mount URL DIR --foreground ...` process,
 * started detached (own session, output to a log file) so that it outlives a crash or restart of the plugin.
 *
 * - start: spawns the process with the volume's options as flags (credentials stay in the environment or the
 *   config file, never on the command line where `ps` shows them), then waits until DIR appears as a FUSE mount
 *   in /proc/self/mountinfo. If the process exits first, its last log lines are the error the user sees (e.g.
 *   "volume in use by host X"). On the deadline the process is killed: nothing is left half-mounted.
 * - stop: asks the process to flush and unmount (SIGTERM: the mount command's contract is "flush everything to
 *   the store, unmount, exit 0"), and waits for it to exit up to a budget; past it, 'pending' (it keeps going).
 * - re-adoption relies on pid + /proc start time (mount-runner.ts).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, fstatSync, readSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KIND_SCHEME, encodeStoreRef } from '../config/volume-url.js';
import { findOption } from '../config/options.js';
import type { MountReplication, MountRunner, MountStats, StartMountRequest, StopResult } from './mount-runner.js';
import { mountAt, processAlive, processStartTime } from './mount-runner.js';
import type { MountProcessRecord, VolumeRecord } from './state.js';

export interface ProcessRunnerConfig {
  /** argv prefix that runs the swiftfs CLI, e.g. [process.execPath, '/app/dist/src/cli/main.js']. */
  command: string[];
  /** Arguments added to every mount (e.g. ['--config', FILE]); put before the volume options. */
  extraArgs?: string[];
  /** Environment of mount processes (default: the plugin's own; it carries the store credentials). */
  env?: NodeJS.ProcessEnv;
  /** How often start() looks for the mount (ms). */
  pollMs?: number;
  /** Accept any filesystem type at DIR as "mounted" (tests with a stand-in mount command); default: fuse only. */
  anyFsType?: boolean;
  /**
   * How readiness is known. 'ipc' (default, the real command): the process is started with --notify-ipc and an
   * IPC channel and says `{type:'ready'}` once it serves the mount with its signal handlers in place (SIGTERM
   * then flushes), or `{type:'error', message}`. 'mountinfo': DIR appearing as a mount is enough (stand-ins).
   */
  readiness?: 'ipc' | 'mountinfo';
}

type ReadyMessage = { type: 'ready'; pid?: number } | { type: 'error'; message: string };

export interface MountCommandInput {
  record: VolumeRecord;
  dir: string;
  cacheDir: string;
}

/** The volume URL the mount command opens: swift://STORE/CONTAINER (the same volume `swiftfs mount` opens). */
export function volumeUrl(record: VolumeRecord): string {
  const scheme = KIND_SCHEME[record.location.backend];
  return `${scheme}://${encodeStoreRef(record.location.store)}/${encodeURIComponent(record.location.container)}`;
}

/** Command-line arguments (after the CLI prefix) that mount `record` at `dir`. */
export function mountArgs(input: MountCommandInput, extraArgs: readonly string[] = [], notifyIpc = false): string[] {
  // --allow-other: containers run as any user (postgres is uid 999); permissions are still checked (the mount
  // uses default_permissions).
  const args = ['mount', volumeUrl(input.record), input.dir, '--foreground', ...(notifyIpc ? ['--notify-ipc'] : []), '--cache-dir', input.cacheDir, '--no-create', '--allow-other', ...extraArgs];
  for (const [name, value] of Object.entries(input.record.options).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const spec = findOption(name);
    if (spec === undefined || spec.secret || name === 'store' || name === 'create' || name === 'storage-policy' || name === 'block-size') continue;
    if (spec.type === 'bool') args.push(value === 'false' || value === '0' || value === 'no' ? `--no-${name}` : `--${name}`);
    else args.push(`--${name}`, value);
  }
  return args;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The text of a file from byte `offset` on, at most its last `max` bytes ('' if unreadable). */
function readFrom(path: string, offset: number, max = 8192): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const start = Math.max(offset, size - max, 0);
    const buf = Buffer.alloc(Math.max(0, size - start));
    readSync(fd, buf, 0, buf.length, start);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The error a mount process explained before exiting, from the tail of its log: the message of the last
 * error-level JSON line (pino), else the last non-empty line.
 */
export function explainExit(logText: string): string | undefined {
  const lines = logText.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: number | string; msg?: string; err?: { message?: string } | string };
      const level = typeof entry.level === 'number' ? entry.level : entry.level === 'error' || entry.level === 'fatal' ? 50 : 30;
      if (level >= 50) {
        const detail = typeof entry.err === 'string' ? entry.err : entry.err?.message;
        return [entry.msg, detail].filter((x) => x !== undefined && x !== '').join(': ');
      }
    } catch {
      // not JSON
    }
  }
  // A crash: node prints the stack and then "Node.js vX.Y.Z"; the error is the last "SomethingError: ..." line.
  const plain = lines.filter((l) => !l.startsWith('{') && !/^Node\.js v\d/.test(l) && !/^at /.test(l));
  const errorLine = [...plain].reverse().find((l) => /^[A-Za-z]*Error\b|^Error:|^swiftfs/.test(l));
  const last = errorLine ?? plain[plain.length - 1];
  if (last === undefined) return undefined;
  return last.length > 500 ? `${last.slice(0, 500)}...` : last;
}

function fuseType(fsType: string): boolean {
  return fsType === 'fuse' || fsType.startsWith('fuse.') || fsType === 'fuseblk';
}

/** Runs `argv` and resolves with its exit code (or rejects on spawn failure / deadline). */
function run(argv: string[], timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${argv[0]} timed out`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code ?? -1);
    });
  });
}

export class ProcessMountRunner implements MountRunner {
  /** Children this plugin instance started (exit codes known); adopted processes are polled instead. */
  private readonly children = new Map<number, { child: ChildProcess; exited: Promise<number | null> }>();

  constructor(private readonly config: ProcessRunnerConfig) {
    if (config.command.length === 0) throw new Error('ProcessMountRunner: empty command');
  }

  async start(request: StartMountRequest, signal: AbortSignal): Promise<MountProcessRecord> {
    const existing = mountAt(request.dir);
    if (existing !== undefined) {
      throw new Error(`${request.dir} is already a mount point (${existing.fsType}); refusing to mount over it`);
    }
    const ipc = (this.config.readiness ?? 'ipc') === 'ipc';
    const argv = [...this.config.command, ...mountArgs(request, this.config.extraArgs, ipc)];
    const logFd = openSync(request.logFile, 'a', 0o600);
    const logStart = fstatSync(logFd).size; // before the child can write
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), {
        detached: true,
        stdio: ipc ? ['ignore', logFd, logFd, 'ipc'] : ['ignore', logFd, logFd],
        // The mount command runs its FUSE daemon in-process only when UV_THREADPOOL_SIZE is already set (libuv
        // sizes its pool at first use); otherwise it would fork a child and our pid would be a wrapper.
        env: { UV_THREADPOOL_SIZE: '64', ...(this.config.env ?? process.env) },
        cwd: '/',
      });
    } finally {
      closeSync(logFd);
    }
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : null)));
      child.once('error', () => resolve(-1));
    });
    child.unref();
    const pid = child.pid;
    if (pid === undefined) {
      const code = await exited;
      throw new Error(`could not start the mount command ${argv[0]} (exit ${String(code)})`);
    }
    this.children.set(pid, { child, exited });
    void exited.then(() => this.children.delete(pid));
    let done = false;
    void exited.then(() => (done = true));
    let message: ReadyMessage | undefined;
    if (ipc) {
      child.on('message', (msg: ReadyMessage) => {
        message ??= msg;
        if (child.connected) child.disconnect();
      });
    }
    const pollMs = this.config.pollMs ?? 50;
    for (;;) {
      if (message?.type === 'error') {
        await this.kill(pid, exited);
        await this.cleanupDeadMount(request.dir);
        throw new Error(message.message);
      }
      const at = mountAt(request.dir);
      const mounted = at !== undefined && (this.config.anyFsType || fuseType(at.fsType));
      if (mounted && (!ipc || message?.type === 'ready')) break;
      if (done) {
        const code = await exited;
        const log = readFrom(request.logFile, logStart);
        const why = explainExit(log) ?? `the mount process exited with status ${String(code)}`;
        await this.cleanupDeadMount(request.dir); // it may have died after mounting
        throw new Error(why);
      }
      if (signal.aborted) {
        if (child.connected) child.disconnect();
        await this.kill(pid, exited);
        await this.cleanupDeadMount(request.dir);
        throw signal.reason instanceof Error ? signal.reason : new Error('mount aborted');
      }
      await sleep(pollMs);
    }
    const startTime = processStartTime(pid);
    if (startTime === undefined) throw new Error('the mount process vanished right after mounting');
    return { pid, startTime, dir: request.dir, startedAt: new Date().toISOString() };
  }

  private async kill(pid: number, exited: Promise<unknown>): Promise<void> {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const gone = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
    if (!gone) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await Promise.race([exited, sleep(2000)]);
    }
  }

  isAlive(proc: MountProcessRecord): boolean {
    return processAlive(proc);
  }

  async isMounted(dir: string): Promise<boolean> {
    // mountinfo only: a stat would also catch a dead FUSE mount, but it can block on a busy (live) daemon, and a
    // live daemon must never be taken for dead. A dead daemon is found by its pid instead.
    const at = mountAt(dir);
    return at !== undefined && (this.config.anyFsType === true || fuseType(at.fsType));
  }

  async stop(proc: MountProcessRecord, budgetMs: number): Promise<StopResult> {
    if (!processAlive(proc)) {
      await this.cleanupDeadMount(proc.dir);
      return 'done';
    }
    process.kill(proc.pid, 'SIGTERM');
    const deadline = Date.now() + budgetMs;
    const ours = this.children.get(proc.pid);
    if (ours !== undefined) {
      const code = await Promise.race([ours.exited, sleep(budgetMs).then(() => 'pending' as const)]);
      if (code === 'pending') return 'pending';
      await this.cleanupDeadMount(proc.dir);
      if (code !== 0) throw new Error(`the mount process exited with status ${String(code)} while flushing; its unsent changes stay in the cache and are sent at the next mount`);
      return 'done';
    }
    while (Date.now() < deadline) {
      if (!processAlive(proc)) {
        await this.cleanupDeadMount(proc.dir);
        return 'done';
      }
      await sleep(100);
    }
    return 'pending';
  }

  async waitExit(proc: MountProcessRecord, signal?: AbortSignal): Promise<void> {
    while (processAlive(proc)) {
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
      await sleep(200);
    }
    await this.cleanupDeadMount(proc.dir);
  }

  async cleanupDeadMount(dir: string): Promise<void> {
    for (let i = 0; i < 4 && mountAt(dir) !== undefined; i++) {
      const attempts = [
        ['fusermount', '-u', '-z', dir],
        ['fusermount3', '-u', '-z', dir],
        ['umount', '-l', dir],
      ];
      for (const argv of attempts) {
        try {
          if ((await run(argv, 10_000)) === 0) break;
        } catch {
          // try the next tool
        }
      }
    }
  }

  /** Asks the mount process's control socket (src/fuse/control.ts) for its status; else measures the cache. */
  async stats(record: VolumeRecord, cacheDir: string): Promise<MountStats | undefined> {
    try {
      const { controlRequest, defaultRunDir, socketPath } = await import('../fuse/control.js');
      const status = await controlRequest<{ volumeStatus?: ControlVolumeStatus; state?: string; regions?: ControlRegionsStatus | null }>(socketPath(defaultRunDir(), record.mountpoint), 'GET', '/status', { timeoutMs: 1500 });
      const v = status.volumeStatus;
      if (v !== undefined && typeof v.dirtyBytes === 'number') {
        const replication = replicationFromRegions(status.regions);
        return { ...statsFromVolumeStatus(v), ...(status.state !== undefined ? { state: status.state } : {}), ...(replication ? { replication } : {}) };
      }
    } catch {
      // not answering (starting, stopping, or an older mount command): fall back to the cache's size
    }
    const cacheBytes = await diskUsage(cacheDir, 20_000);
    return cacheBytes === undefined ? undefined : { cacheBytes };
  }
}

/** The part of the core's VolumeStatus (src/core/volume.ts) the plugin shows. */
export interface ControlVolumeStatus {
  dirtyBytes: number;
  uploadsQueued?: number;
  lastCommitAt?: number | null;
  readOnlyReason?: string | null;
  health?: { state: string; lastError?: string; failingSince?: number };
  cache?: { diskBytes?: number; walBytes?: number };
}

/** The part of the daemon's regions status (RegionServicesStatus, src/region/replication.ts) the plugin reads. */
export interface ControlRegionsStatus {
  region: string;
  home: { region: string; container: string } | null;
  replicating: boolean;
  note?: string;
  replicas: { mode: string; target: { region: string; container: string }; state: string; lagSeconds: number; lagBytes: number; replicatedSeq: number; sourceSeq: number; lastSyncAt: number | null; lastError?: string }[];
}

/** What `docker volume inspect` shows of a mount's replication. */
export function replicationFromRegions(r: ControlRegionsStatus | null | undefined): MountReplication | undefined {
  if (r === null || r === undefined || typeof r.region !== 'string') return undefined;
  return {
    region: r.region,
    home: r.home,
    replicating: r.replicating,
    ...(r.note !== undefined ? { note: r.note } : {}),
    replicas: (r.replicas ?? []).map((st) => ({
      region: st.target.region,
      container: st.target.container,
      mode: st.mode,
      state: st.state,
      lagSeconds: Math.round(st.lagSeconds * 10) / 10,
      lagBytes: st.lagBytes,
      replicatedSeq: st.replicatedSeq,
      sourceSeq: st.sourceSeq,
      lastSyncAt: st.lastSyncAt ? new Date(st.lastSyncAt).toISOString() : null,
      ...(st.lastError ? { lastError: st.lastError } : {}),
    })),
  };
}

export function statsFromVolumeStatus(v: ControlVolumeStatus): MountStats {
  const h = v.health;
  let health = 'ok';
  if (v.readOnlyReason) health = `read-only: ${v.readOnlyReason}`;
  else if (h !== undefined && h.state !== 'ok') {
    health = `${h.state}${h.lastError ? `: ${h.lastError}` : ''}${h.failingSince ? ` (since ${new Date(h.failingSince).toISOString()})` : ''}`;
  }
  const cacheBytes = (v.cache?.diskBytes ?? 0) + (v.cache?.walBytes ?? 0);
  return {
    dirtyBytes: v.dirtyBytes,
    cacheBytes,
    health,
    ...(v.uploadsQueued !== undefined ? { uploadsQueued: v.uploadsQueued } : {}),
    ...(v.lastCommitAt ? { lastCommitAt: new Date(v.lastCommitAt).toISOString() } : {}),
  };
}

/** Bytes used by the files under `dir` (allocated blocks), visiting at most `maxEntries`; undefined if unreadable. */
export async function diskUsage(dir: string, maxEntries: number): Promise<number | undefined> {
  let total = 0;
  let seen = 0;
  const stack = [dir];
  try {
    while (stack.length > 0 && seen < maxEntries) {
      const current = stack.pop()!;
      const entries = await readdir(current, { withFileTypes: true });
      for (const entry of entries) {
        if (++seen > maxEntries) break;
        const path = join(current, entry.name);
        if (entry.isDirectory()) stack.push(path);
        else if (entry.isFile()) {
          const s = await stat(path);
          total += s.blocks * 512;
        }
      }
    }
  } catch {
    return seen === 0 ? undefined : total;
  }
  return total;
}
