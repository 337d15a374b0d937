/**
 * The gateways under test, each mounted on the same Swift: swiftfs, rclone mount (--vfs-cache-mode full) and
 * s3fs. Each knows how to mount a container, which processes to watch for memory, and how to tell that what
 * was written is really in the object store ("durable"), so that durable is compared with durable.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run, sh, waitFor } from './proc.js';
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
  /** Resolves once everything written so far is in the object store. */
  waitDurable(expected: ExpectedObject[]): Promise<void>;
  unmount(): Promise<void>;
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

async function isMounted(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts.split('\n').some((l) => l.split(' ')[1] === dir);
}

async function forceUnmount(dir: string): Promise<void> {
  if (await isMounted(dir)) await sh(`fusermount -uz '${dir}' || umount -l '${dir}'`, { allowFail: true });
}

function startDaemon(cmd: string, args: string[], env: NodeJS.ProcessEnv, logFile: string): ChildProcess {
  const child = spawn('bash', ['-c', `exec "$0" "$@" >>'${logFile}' 2>&1`, cmd, ...args], { env, stdio: 'ignore' });
  return child;
}

async function stopDaemon(child: ChildProcess, dir: string, timeoutMs = 600_000): Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  await sh(`fusermount -u '${dir}'`, { allowFail: true });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
  await forceUnmount(dir);
}

/** Waits until every expected object exists in the container with its size (for 1:1 gateways). */
async function waitObjects(session: SwiftSession, container: string, expected: ExpectedObject[], timeoutMs = 1_800_000): Promise<void> {
  if (expected.length === 1) {
    const [e] = expected;
    await waitFor(`${e!.path} in the store`, async () => (await headObject(session, container, e!.path)) === e!.size, timeoutMs, 200);
    return;
  }
  await waitFor(`${expected.length} objects in the store`, async () => {
    const listed = new Map((await listObjects(session, container)).map((o) => [o.name, o.bytes]));
    return expected.every((e) => listed.get(e.path) === e.size);
  }, timeoutMs, 500);
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
      child = startDaemon('rclone', ['mount', `bench:${ctx.container}`, ctx.dir, '--vfs-cache-mode', 'full', '--cache-dir', ctx.cacheDir, '--vfs-cache-max-size', ctx.cacheSize, '--log-level', 'NOTICE'], env, logFile);
      break;
    }
    case 's3fs': {
      const env = { ...baseEnv, AWS_ACCESS_KEY_ID: ctx.endpoint.user, AWS_SECRET_ACCESS_KEY: ctx.endpoint.key };
      child = startDaemon('s3fs', [ctx.container, ctx.dir, '-f', '-o', `url=${ctx.endpoint.s3Endpoint}`, '-o', 'use_path_request_style', '-o', 'dbglevel=warn'], env, logFile);
      break;
    }
    case 'swiftfs': {
      const env = { ...baseEnv, ST_AUTH: ctx.endpoint.authUrl, ST_USER: ctx.endpoint.user, ST_KEY: ctx.endpoint.key };
      const cli = join(ctx.repoRoot, 'dist/src/cli/main.js');
      child = startDaemon(process.execPath, [cli, 'mount', `swift://${ctx.container}`, ctx.dir, '--foreground', '--cache-dir', ctx.cacheDir, '--cache-size', ctx.cacheSize, '--fsync', ctx.fsync ?? 'remote', '--log-level', 'warn'], env, logFile);
      break;
    }
  }
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before mounting; see ${logFile}`))));
  await Promise.race([waitFor(`${name} mount on ${ctx.dir}`, () => isMounted(ctx.dir), 120_000, 100), exited]);
  exited.catch(() => undefined);
  ctx.log(`${name}: mounted ${ctx.container} on ${ctx.dir} (pid ${child.pid})`);

  const swiftfsDurable = async (): Promise<void> => {
    const cli = join(ctx.repoRoot, 'dist/src/cli/main.js');
    await waitFor('swiftfs: nothing dirty', async () => {
      const r = await run(process.execPath, [cli, 'status', '--json'], { allowFail: true });
      if (r.code !== 0) return false;
      const all = JSON.parse(r.stdout) as unknown;
      const mounts = (Array.isArray(all) ? all : ((all as { mounts?: unknown[] }).mounts ?? [])) as Record<string, unknown>[];
      const mine = mounts.find((m) => JSON.stringify(m).includes(ctx.dir));
      if (!mine) return false;
      const flat = JSON.stringify(mine);
      const dirty = /"dirtyBytes":\s*(\d+)/.exec(flat);
      const pending = /"pendingBatches":\s*(\d+)/.exec(flat);
      return dirty !== null && Number(dirty[1]) === 0 && (pending === null || Number(pending[1]) === 0);
    }, 1_800_000, 100);
  };

  return {
    name,
    dir: ctx.dir,
    pids: () => (child.pid ? [child.pid] : []),
    waitDurable: (expected) => (name === 'swiftfs' ? swiftfsDurable() : waitObjects(ctx.session, ctx.container, expected)),
    unmount: () => stopDaemon(child, ctx.dir),
  };
}
