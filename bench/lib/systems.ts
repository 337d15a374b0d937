/**
 * The gateways under test, each mounted on the same Swift: swiftfs, rclone mount (--vfs-cache-mode full) and
 * s3fs. Each knows how to mount a container, which processes to watch for memory, and how to tell that what
 * was written is really in the object store ("durable"), so that durable is compared with durable.
 *
 * The peers' settings are chosen as a user of a non-AWS, single-writer bucket would set them (see
 * GATEWAY_SETTINGS, recorded with every run); SWIFTFS_BENCH_{RCLONE,S3FS,SWIFTFS}_ARGS add arguments to try others.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { controlRequest, defaultRunDir, socketPath } from '../../src/fuse/control.js';
import { sh, waitFor } from './proc.js';
import { headObject, listObjects, type SwiftEndpoint, type SwiftSession } from './swift.js';

export type SystemName = 'swiftfs' | 'rclone' | 's3fs';

export interface ExpectedObject {
  /** Path relative to the mount root. */
  path: string;
  size: number;
}

export interface MountedSystem {
  name: SystemName;
  dir: string;
  pids(): number[];
  /** Resolves once everything written so far is in the object store; stops (Killed) when `signal` fires. */
  waitDurable(expected: ExpectedObject[], signal?: AbortSignal): Promise<void>;
  /** Unmounts and waits for the process to exit, at most `timeoutMs` (then kills it). */
  unmount(timeoutMs?: number): Promise<void>;
}

export interface MountContext {
  endpoint: SwiftEndpoint;
  session: SwiftSession;
  container: string;
  dir: string;
  cacheDir: string;
  cacheSize: string;
  repoRoot: string;
  /** swiftfs only: fsync mode. */
  fsync?: 'remote' | 'local';
  log: (line: string) => void;
}

/** Extra arguments from the environment (whitespace-separated), to try other settings without editing code. */
function extraArgs(name: SystemName): string[] {
  const value = process.env[`SWIFTFS_BENCH_${name.toUpperCase()}_ARGS`];
  return value ? value.split(/\s+/).filter((a) => a.length > 0) : [];
}

/**
 * Each gateway's settings, and why: written to machine.json with every run. Paths and credentials are left out
 * (the cache directory is per run, credentials come from the environment).
 */
export function gatewaySettings(): Record<SystemName, { args: string; why: string }> {
  const extra = (name: SystemName) => (extraArgs(name).length ? ` ${extraArgs(name).join(' ')} (from SWIFTFS_BENCH_${name.toUpperCase()}_ARGS)` : '');
  return {
    swiftfs: {
      args: `swiftfs mount swift://CONTAINER DIR --cache-size 1G --fsync remote|local${extra('swiftfs')}`,
      why: 'defaults (4 MiB blocks); fsync remote is the default durable mode, local is the second pass',
    },
    rclone: {
      args: `rclone mount --vfs-cache-mode full --vfs-cache-max-size 1G${extra('rclone')}`,
      why: 'the issue\'s mode; everything else rclone 1.60 defaults (--vfs-write-back 5s, --transfers 4, --checkers 8, Swift backend)',
    },
    s3fs: {
      args: `s3fs -o use_path_request_style,notsup_compat_dir,enable_noobj_cache,use_cache=DIR${extra('s3fs')}`,
      why:
        'path-style requests (a non-AWS endpoint); notsup_compat_dir and enable_noobj_cache, which s3fs\'s manual recommends ' +
        'for a bucket that only s3fs writes (without them each new file costs ~27 requests: untar was 2.3x slower); ' +
        'use_cache as the local cache the other gateways have',
    },
  };
}

async function isMounted(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts.split('\n').some((l) => l.split(' ')[1] === dir);
}

async function forceUnmount(dir: string): Promise<void> {
  if (await isMounted(dir)) await sh(`fusermount -uz '${dir}' || umount -l '${dir}'`, { allowFail: true, timeoutMs: 30_000 });
}

function startDaemon(cmd: string, args: string[], env: NodeJS.ProcessEnv, logFile: string): ChildProcess {
  return spawn('bash', ['-c', `exec "$0" "$@" >>'${logFile}' 2>&1`, cmd, ...args], { env, stdio: 'ignore' });
}

async function stopDaemon(child: ChildProcess, dir: string, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  await sh(`fusermount -u '${dir}'`, { allowFail: true, timeoutMs: 60_000 });
  const timer = setTimeout(() => {
    log(`${dir}: the gateway did not exit within ${timeoutMs / 1000} s of its unmount; killed`);
    child.kill('SIGKILL');
  }, timeoutMs);
  await exited;
  clearTimeout(timer);
  await forceUnmount(dir);
}

/** Waits until every expected object exists in the container with its size (for 1:1 gateways). */
async function waitObjects(session: SwiftSession, container: string, expected: ExpectedObject[], signal?: AbortSignal): Promise<void> {
  const timeoutMs = 3_600_000; // the workload's time cap (signal) is what bounds it
  if (expected.length === 1) {
    const [e] = expected;
    await waitFor(`${e!.path} in the store`, async () => (await headObject(session, container, e!.path)) === e!.size, timeoutMs, 200, signal);
    return;
  }
  await waitFor(`${expected.length} objects in the store`, async () => {
    const listed = new Map((await listObjects(session, container)).map((o) => [o.name, o.bytes]));
    return expected.every((e) => listed.get(e.path) === e.size);
  }, timeoutMs, 1000, signal); // a listing of thousands of objects costs the server CPU: not more often than this
}

interface VolumeStatusFields {
  dirtyBytes?: number;
  pendingEntries?: number;
  uploadsQueued?: number;
  uploadsActive?: number;
}

export async function mountSystem(name: SystemName, ctx: MountContext): Promise<MountedSystem> {
  await forceUnmount(ctx.dir);
  await mkdir(ctx.dir, { recursive: true });
  await rm(ctx.cacheDir, { recursive: true, force: true });
  await mkdir(ctx.cacheDir, { recursive: true });
  const logFile = join(ctx.cacheDir, '..', `${name}.log`);
  const baseEnv = { ...process.env };
  delete baseEnv.AWS_CA_BUNDLE; // rclone's S3 backend fails with it set (environment.md)
  let child: ChildProcess;
  switch (name) {
    case 'rclone': {
      const env = {
        ...baseEnv,
        RCLONE_CONFIG_BENCH_TYPE: 'swift',
        RCLONE_CONFIG_BENCH_AUTH: ctx.endpoint.authUrl,
        RCLONE_CONFIG_BENCH_USER: ctx.endpoint.user,
        RCLONE_CONFIG_BENCH_KEY: ctx.endpoint.key,
      };
      const args = ['mount', `bench:${ctx.container}`, ctx.dir, '--vfs-cache-mode', 'full', '--cache-dir', ctx.cacheDir, '--vfs-cache-max-size', ctx.cacheSize, '--log-level', 'NOTICE', ...extraArgs('rclone')];
      child = startDaemon('rclone', args, env, logFile);
      break;
    }
    case 's3fs': {
      const env = { ...baseEnv, AWS_ACCESS_KEY_ID: ctx.endpoint.user, AWS_SECRET_ACCESS_KEY: ctx.endpoint.key };
      const s3cache = join(ctx.cacheDir, 's3fs');
      await mkdir(s3cache, { recursive: true });
      const opts = [`url=${ctx.endpoint.s3Endpoint}`, 'use_path_request_style', 'notsup_compat_dir', 'enable_noobj_cache', `use_cache=${s3cache}`, 'dbglevel=warn'];
      child = startDaemon('s3fs', [ctx.container, ctx.dir, '-f', ...opts.flatMap((o) => ['-o', o]), ...extraArgs('s3fs')], env, logFile);
      break;
    }
    case 'swiftfs': {
      // UV_THREADPOOL_SIZE set as the mount command would: then the daemon is the very process started (no
      // wrapper), so its memory is what is sampled.
      const env = { ...baseEnv, UV_THREADPOOL_SIZE: baseEnv.UV_THREADPOOL_SIZE ?? '64', ST_AUTH: ctx.endpoint.authUrl, ST_USER: ctx.endpoint.user, ST_KEY: ctx.endpoint.key };
      const cli = join(ctx.repoRoot, 'dist/src/cli/main.js');
      const args = [cli, 'mount', `swift://${ctx.container}`, ctx.dir, '--foreground', '--cache-dir', ctx.cacheDir, '--cache-size', ctx.cacheSize, '--fsync', ctx.fsync ?? 'remote', '--log-level', 'warn', ...extraArgs('swiftfs')];
      child = startDaemon(process.execPath, args, env, logFile);
      break;
    }
  }
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before mounting; see ${logFile}`))));
  await Promise.race([waitFor(`${name} mount on ${ctx.dir}`, () => isMounted(ctx.dir), 120_000, 100), exited]);
  exited.catch(() => undefined);
  ctx.log(`${name}: mounted ${ctx.container} on ${ctx.dir} (pid ${child.pid})`);

  // swiftfs: asked on the mount's control socket (no process per poll, which would take CPU from the gateway).
  const control = socketPath(defaultRunDir(), ctx.dir);
  const swiftfsDurable = (signal?: AbortSignal): Promise<void> =>
    waitFor('swiftfs: nothing dirty', async () => {
      const status = await controlRequest<{ volumeStatus?: VolumeStatusFields }>(control, 'GET', '/status', { timeoutMs: 10_000 }).catch(() => undefined);
      const v = status?.volumeStatus;
      return v !== undefined && v.dirtyBytes === 0 && v.pendingEntries === 0 && (v.uploadsQueued ?? 0) === 0 && (v.uploadsActive ?? 0) === 0;
    }, 3_600_000, 50, signal);

  return {
    name,
    dir: ctx.dir,
    pids: () => (child.pid ? [child.pid] : []),
    waitDurable: (expected, signal) => (name === 'swiftfs' ? swiftfsDurable(signal) : waitObjects(ctx.session, ctx.container, expected, signal)),
    unmount: (timeoutMs = 180_000) => stopDaemon(child, ctx.dir, timeoutMs, ctx.log),
  };
}
