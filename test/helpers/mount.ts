/**
 * Test harness for real FUSE mounts. A mount's daemon always runs in a CHILD process: a test process that
 * touched its own mount would deadlock (the FUSE handlers run on the same event loop the test blocks).
 *
 *  - startLocalMount(): a child (this file, run with --child-local) that mounts a LocalVolumeFs over a local
 *    directory through the real adapter and FuseMount (the FUSE door without the core).
 *  - startCliMount(): `swiftfs mount VOLUME DIR` (daemonised) as a user runs it; `unmount()` runs
 *    `swiftfs unmount DIR`.
 *  - sh(): runs a command with a deadline (tests never hang).
 *  - fuseAvailable(): whether this machine can mount FUSE at all (else FUSE tests skip, or fail under CI).
 */

import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (this file runs as dist/test/helpers/mount.js). */
export const repoRoot = join(here, '..', '..', '..');
export const cliMain = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export interface ShResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `cmd` with `args`; resolves (never rejects) with its outcome; killed after `timeoutMs`. */
export function sh(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; uid?: number; gid?: number } = {}): Promise<ShResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        encoding: 'utf8',
        ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
        ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string }) | null;
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout: String(stdout),
          stderr: String(stderr) + (e && typeof e.code !== 'number' && !e.signal ? String(e.message) : ''),
          ms: Date.now() - started,
        });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs a shell script (bash -c) with a deadline. */
export function bash(script: string, opts: Parameters<typeof sh>[2] = {}): Promise<ShResult> {
  return sh('bash', ['-c', script], opts);
}

/** Throws with the command's output unless it exited 0. */
export function ok(r: ShResult, what = 'command'): ShResult {
  if (r.code !== 0) throw new Error(`${what} failed (code ${r.code}, signal ${r.signal}, ${r.ms} ms)\nstdout: ${r.stdout.slice(-4000)}\nstderr: ${r.stderr.slice(-4000)}`);
  return r;
}

/** Why FUSE cannot be used here, or undefined when it can. */
export function fuseUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing';
  if (process.getuid?.() !== 0) return 'FUSE tests need root';
  if (!existsSync('/usr/bin/fusermount') && !existsSync('/bin/fusermount')) return 'fusermount is missing (apt-get install fuse3)';
  const libs = ['/usr/lib/x86_64-linux-gnu/libfuse.so.2', '/lib/x86_64-linux-gnu/libfuse.so.2', '/usr/lib/aarch64-linux-gnu/libfuse.so.2', '/lib/aarch64-linux-gnu/libfuse.so.2'];
  if (!libs.some((l) => existsSync(l))) return 'libfuse.so.2 is missing (apt-get install libfuse2)';
  return undefined;
}

/** For `test(name, { skip: skipFuse() }, ...)`: a skip reason, except under CI=true where missing FUSE fails. */
export function skipFuse(): string | false {
  const reason = fuseUnavailableReason();
  if (!reason) return false;
  if (process.env.CI === 'true') throw new Error(`FUSE tests cannot run: ${reason}`);
  return reason;
}

/** The mount id (first field of /proc/self/mountinfo) of the topmost mount at `dir`, or undefined. */
export function mountIdAt(dir: string): string | undefined {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  let found: string | undefined;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const mp = fields[4];
    if (mp && mp.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))) === dir) found = fields[0];
  }
  return found;
}

export async function isMounted(dir: string): Promise<boolean> {
  return mountIdAt(dir) !== undefined;
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, stepMs = 100): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A fresh temporary directory under /tmp (or `base`). */
export async function tempDir(prefix: string, base = tmpdir()): Promise<string> {
  await mkdir(base, { recursive: true });
  return mkdtemp(join(base, `${prefix}-`));
}

/** True when `dir` is a dead FUSE mount (ENOTCONN: its daemon is gone). Asked from a child, with a deadline. */
export async function probeDead(dir: string, quiet = false): Promise<boolean> {
  // A random name: the kernel answers the root's attributes from its cache even after the daemon died.
  const r = await sh('stat', ['-c', '%i', '--', `${dir}/.probe-${Date.now()}-${Math.random().toString(36).slice(2)}`], { timeoutMs: 10_000 });
  if (r.code !== 0 && /not connected|connection abort/i.test(r.stderr)) return true;
  if (!quiet) process.stderr.write(`# probeDead ${dir}: code ${r.code}, ${r.stdout.trim()} ${r.stderr.trim()}\n`);
  return false;
}

/** Detaches a leftover mount at `dir` (best effort). */
export async function forceUnmount(dir: string): Promise<void> {
  if (!(await isMounted(dir))) return;
  await sh('fusermount', ['-uz', dir], { timeoutMs: 10_000 });
  if (await isMounted(dir)) await sh('umount', ['-l', dir], { timeoutMs: 10_000 });
}

// ------------------------------------------------------------------ a mount of a local directory, in a child

export interface LocalMountOptions {
  /** Directory the mount passes through to. */
  backing: string;
  mountpoint: string;
  allowOther?: boolean;
  readOnly?: boolean;
  umask?: number;
  /** Owner of everything created through the mount (--uid/--gid); unset: the creating process. */
  uid?: number;
  gid?: number;
  /** libfuse's debug output (every request and the INIT negotiation) on the child's stderr. */
  debug?: boolean;
}

export interface ChildMount {
  readonly child: ChildProcess;
  readonly mountpoint: string;
  /** SIGTERM, then waits for a clean exit (the child unmounts). Resolves the exit code. */
  stop(): Promise<number | null>;
  /** kill -9: leaves a dead mount behind (ENOTCONN), as a crash does. */
  kill9(): Promise<void>;
  /** The adapter's counters, asked over IPC. */
  stats(): Promise<Record<string, unknown>>;
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export async function startLocalMount(opts: LocalMountOptions, timeoutMs = 20_000): Promise<ChildMount> {
  const child = fork(fileURLToPath(import.meta.url), ['--child-local', JSON.stringify(opts)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '32' },
  });
  const pending = new Map<number, (v: Record<string, unknown>) => void>();
  let seq = 0;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('local mount child: not ready in time')), timeoutMs);
    child.on('message', (msg: { type: string; error?: string; id?: number; stats?: Record<string, unknown> }) => {
      if (msg.type === 'ready') {
        clearTimeout(timer);
        resolve();
      } else if (msg.type === 'error') {
        clearTimeout(timer);
        reject(new Error(`local mount child: ${msg.error}`));
      } else if (msg.type === 'stats' && msg.id !== undefined) {
        pending.get(msg.id)?.(msg.stats ?? {});
        pending.delete(msg.id);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`local mount child exited with ${code} before it was ready`));
    });
  });
  await ready;
  return {
    child,
    mountpoint: opts.mountpoint,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exitOf(child), new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 30_000)))]);
      clearTimeout(timer);
      if (code === 'timeout') {
        child.kill('SIGKILL');
        await forceUnmount(opts.mountpoint);
        throw new Error('local mount child did not stop within 30 s');
      }
      return code;
    },
    async kill9() {
      child.kill('SIGKILL');
      await exitOf(child);
    },
    stats() {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('stats: no answer')), 10_000);
        pending.set(id, (v) => {
          clearTimeout(timer);
          resolve(v);
        });
        child.send({ type: 'stats', id });
      });
    },
  };
}

/** The child side: mounts a LocalVolumeFs at the mount point, answers stats requests, unmounts on SIGTERM. */
async function childLocalMain(opts: LocalMountOptions): Promise<void> {
  const { LocalVolumeFs } = await import('./local-volume-fs.js');
  const { createFuseAdapter } = await import('../../src/fuse/adapter.js');
  const { FuseMount, prepareMountpoint } = await import('../../src/fuse/mount.js');
  const lines: string[] = [];
  const log = {
    error: (o: unknown, m?: string) => lines.push(`ERROR ${m ?? ''} ${JSON.stringify(o)}`),
    warn: (o: unknown, m?: string) => lines.push(`WARN ${m ?? ''} ${JSON.stringify(o)}`),
    info: () => undefined,
    debug: () => undefined,
  };
  const fs = new LocalVolumeFs(opts.backing);
  const adapter = createFuseAdapter({
    fs,
    log: log as never,
    caller: { uid: process.getuid!(), gid: process.getgid!() },
    owner: { uid: opts.uid, gid: opts.gid },
    umask: opts.umask ?? 0,
  });
  try {
    await prepareMountpoint(opts.mountpoint, log as never, async () => false);
    const mount = await FuseMount.mount(adapter.ops, { mountpoint: opts.mountpoint, fsname: 'local:test', allowOther: opts.allowOther === true, readOnly: opts.readOnly === true, debug: opts.debug === true }, log as never);
    let stopping = false;
    const stop = async (): Promise<void> => {
      if (stopping) return;
      stopping = true;
      try {
        await mount.unmount({ lazyIfBusy: true });
        await fs.close();
      } finally {
        for (const l of lines) process.stderr.write(`[local-mount] ${l}\n`);
        process.exit(0);
      }
    };
    process.on('SIGTERM', () => void stop());
    process.on('SIGINT', () => void stop());
    process.on('message', (msg: { type: string; id: number }) => {
      if (msg.type === 'stats') process.send?.({ type: 'stats', id: msg.id, stats: { ...adapter.stats(), log: lines } });
    });
    process.send?.({ type: 'ready' });
  } catch (err) {
    process.send?.({ type: 'error', error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
}

// ------------------------------------------------------------------ `swiftfs mount` as a user runs it

export interface CliMount {
  mountpoint: string;
  /** `swiftfs unmount MOUNTPOINT`: resolves its result. */
  unmount(timeoutMs?: number): Promise<ShResult>;
  /** The daemon's pid (from `swiftfs status --json`). */
  pid(): Promise<number | undefined>;
}

/** The `swiftfs` command line (node + the built CLI). */
export function swiftfs(args: string[], opts: Parameters<typeof sh>[2] = {}): Promise<ShResult> {
  return sh(process.execPath, [cliMain, ...args], { timeoutMs: 180_000, ...opts });
}

export async function startCliMount(volume: string, mountpoint: string, args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<CliMount> {
  ok(await swiftfs(['mount', volume, mountpoint, ...args], { env }), `swiftfs mount ${volume} ${mountpoint}`);
  if (!(await isMounted(mountpoint))) throw new Error(`swiftfs mount returned 0 but ${mountpoint} is not mounted`);
  return {
    mountpoint,
    unmount: (timeoutMs = 300_000) => swiftfs(['unmount', mountpoint], { env, timeoutMs }),
    async pid() {
      const r = await swiftfs(['status', '--json'], { env, timeoutMs: 30_000 });
      try {
        const list = JSON.parse(r.stdout) as { mountpoint: string; pid: number }[];
        return list.find((m) => m.mountpoint === mountpoint)?.pid;
      } catch {
        return undefined;
      }
    },
  };
}

/** Starts `swiftfs mount --foreground` as a plain child (for kill -9 tests); resolves once mounted. */
export async function startForegroundMount(volume: string, mountpoint: string, args: string[] = [], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, [cliMain, 'mount', volume, mountpoint, '--foreground', ...args], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    // A dead mount may be there (the daemon replaces it; mount ids get reused): wait for one that answers.
    await waitFor(`${mountpoint} to be mounted`, async () => {
      if (child.exitCode !== null) throw new Error(`swiftfs mount --foreground exited with ${child.exitCode}`);
      return (await isMounted(mountpoint)) && !(await probeDead(mountpoint, true));
    }, timeoutMs, 200);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return child;
}

// ------------------------------------------------------------------ environment for mounts of the test Swift

/**
 * The environment a `swiftfs` process needs to reach the test Swift (TempAuth through ST_*), with nothing
 * else of the caller's swiftfs/OpenStack/AWS settings leaking in, and its own run directory (so tests never
 * see or disturb real mounts).
 */
/** The directories and environment of a test file's `swiftfs` CLI mounts (cliFixture in before(), removeCliFixture in after()). */
export interface CliFixture {
  mountpoint: string;
  cacheDir: string;
  runDir: string;
  env: NodeJS.ProcessEnv;
}

/** A mount point, a cache directory and a run directory named after `name`, and the environment for `swift`. */
export async function cliFixture(name: string, swift: { authUrl: string; user: string; key: string }): Promise<CliFixture> {
  const mountpoint = await tempDir(`swiftfs-${name}-mnt`);
  const cacheDir = await tempDir(`swiftfs-${name}-cache`);
  const runDir = await tempDir(`swiftfs-${name}-run`);
  return { mountpoint, cacheDir, runDir, env: swiftfsEnv(swift, runDir) };
}

/** Unmounts whatever is still mounted (lazily, then by force) and removes the fixture's directories. */
export async function removeCliFixture(f: CliFixture): Promise<void> {
  await swiftfs(['unmount', '--lazy', f.mountpoint], { env: f.env, timeoutMs: 120_000 });
  await forceUnmount(f.mountpoint);
  for (const d of [f.mountpoint, f.cacheDir, f.runDir]) await rm(d, { recursive: true, force: true });
}

export function swiftfsEnv(swift: { authUrl: string; user: string; key: string }, runDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(SWIFTFS_|OS_|ST_|AWS_)/.test(k) && !k.startsWith('SWIFTFS_TEST_')) continue;
    env[k] = v;
  }
  return { ...env, ST_AUTH: swift.authUrl, ST_USER: swift.user, ST_KEY: swift.key, SWIFTFS_RUN_DIR: runDir, SWIFTFS_LOG_LEVEL: 'info', ...extra };
}

/** For describe(..., { skip }): a reason to skip when the test Swift is not configured (a failure under CI). */
export function skipWithoutSwift(): string | false {
  const missing = ['SWIFTFS_TEST_ST_AUTH', 'SWIFTFS_TEST_ST_USER', 'SWIFTFS_TEST_ST_KEY'].filter((v) => !process.env[v]);
  if (missing.length === 0) return false;
  const why = `needs the test Swift: ${missing.join(', ')} not set (start one with scripts/swift-saio.sh and eval its "env" output)`;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${why}`);
  return why;
}

export { rm, pathToFileURL };

if (process.argv[2] === '--child-local' && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  void childLocalMain(JSON.parse(process.argv[3] ?? '{}') as LocalMountOptions);
}
