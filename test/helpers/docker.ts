/**
 * Helpers for the Docker tests (test/docker): a private Docker engine (scripts/docker-engine.sh: its own data
 * and exec roots under a short temporary directory, the offline busybox test image), swiftfs plugin processes
 * in legacy mode (each a "host": its own socket name, state, mount root and cache), the docker CLI with
 * deadlines, and direct access to the test Swift to check what really reached the store.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import type { SwiftTestEnv } from './swift-env.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const engineScript = join(repoRoot, 'scripts', 'docker-engine.sh');
export const cliMain = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
export const TEST_IMAGE = 'swiftfs-test-busybox:latest';
export const DOCKER_CLI = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command with a deadline; never rejects. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 120_000, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : error.killed ? null : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + (error?.killed ? '\n(killed: timeout)' : ''), ms: Date.now() - started });
      },
    );
  });
}

/** Why Docker tests cannot run here, or undefined when they can. */
export function dockerUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'Docker tests need root';
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse';
  return undefined;
}

/** Skips the test (or fails it under CI) when Docker cannot run; returns false when skipped. */
export function requireDocker(t: TestContext): boolean {
  const why = dockerUnavailable();
  if (why === undefined) return true;
  if (process.env['CI'] === 'true') throw new Error(`Docker tests cannot run under CI: ${why}`);
  t.skip(why);
  return false;
}

/** Whether `swiftfs mount` is built (the FUSE door): the tests that need real mounts skip until it is. */
export async function mountCommandBuilt(): Promise<boolean> {
  const r = await run(process.execPath, [cliMain, 'mount', '--help'], { timeoutMs: 30_000 });
  return r.code === 0 && !/not yet built/.test(r.stdout + r.stderr);
}

export class DockerEngine {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;

  private constructor(dir: string) {
    this.dir = dir;
    this.env = { ...process.env, DOCKER_HOST: `unix://${dir}/docker.sock`, DOCKER_CONFIG: join(dir, 'cli-config') };
  }

  /** Starts a fresh private engine (installing docker.io/busybox-static when missing). */
  static async start(): Promise<DockerEngine> {
    // Short path: containerd's socket lives under the exec root and unix socket paths are limited.
    const dir = await mkdtemp('/tmp/sfdk-');
    const engine = new DockerEngine(dir);
    await engine.startAgain();
    return engine;
  }

  async startAgain(): Promise<void> {
    const r = await run('bash', [engineScript, 'start', this.dir], { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`docker-engine.sh start failed:\n${r.stdout}${r.stderr}`);
  }

  async stop(): Promise<void> {
    await run('bash', [engineScript, 'stop', this.dir], { timeoutMs: 60_000 });
  }

  /** Stops the engine and removes its directory (after unmounting what it left). */
  async destroy(): Promise<void> {
    await this.stop();
    await run('sh', ['-c', `grep -o " ${this.dir}[^ ]*" /proc/self/mountinfo | sort -r | while read m; do umount -l "$m"; done`], { timeoutMs: 30_000 });
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs the docker CLI against this engine. */
  docker(args: string[], timeoutMs = 120_000): Promise<RunResult> {
    return run(DOCKER_CLI, args, { timeoutMs, env: this.env });
  }

  /** Like docker() but throws with the output when the command fails. */
  async dockerOk(args: string[], timeoutMs = 120_000): Promise<string> {
    const r = await this.docker(args, timeoutMs);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}):\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }
}

export interface PluginHostOptions {
  /** Driver name (the socket's base name). */
  name: string;
  /** Directory for this "host": state, mounts, cache, log. */
  root: string;
  swift: SwiftTestEnv;
  /** Reach the test server through its S3 API (AWS_* variables) instead of Swift's (ST_*). */
  s3?: boolean;
  extraArgs?: string[];
}

/** A legacy swiftfs plugin process, standing for one host. */
export class PluginHost {
  readonly name: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly mountRoot: string;
  readonly cacheDir: string;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PluginHostOptions) {
    this.name = opts.name;
    this.socket = `/run/docker/plugins/${opts.name}.sock`;
    this.stateDir = join(opts.root, 'state');
    this.mountRoot = join(opts.root, 'mnt');
    this.cacheDir = join(opts.root, 'cache');
    this.logFile = join(opts.root, 'plugin.log');
    mkdirSync(opts.root, { recursive: true });
  }

  /** The environment giving the plugin (and its mount processes) the test Swift, through TempAuth variables. */
  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(ST_|OS_|AWS_|SWIFTFS_(?!TEST))/.test(k)) env[k] = v;
    const sw = this.opts.swift;
    const store = this.opts.s3
      ? { AWS_ACCESS_KEY_ID: sw.s3AccessKey, AWS_SECRET_ACCESS_KEY: sw.s3Secret, AWS_ENDPOINT_URL: sw.s3Endpoint, AWS_REGION: 'us-east-1' }
      : { ST_AUTH: sw.authUrl, ST_USER: sw.user, ST_KEY: sw.key };
    return { ...env, ...store, SWIFTFS_LOG_LEVEL: 'debug' };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the plugin and waits until it answers on its socket. */
  async start(): Promise<void> {
    const log = openSync(this.logFile, 'a');
    const child = spawn(
      process.execPath,
      [cliMain, 'plugin', '--socket', this.socket, '--state-dir', this.stateDir, '--mount-root', this.mountRoot, '--cache-dir', this.cacheDir, ...(this.opts.extraArgs ?? [])],
      { stdio: ['ignore', log, log], env: this.env(), detached: true },
    );
    closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (await activates(this.socket)) return;
      if (child.exitCode !== null) throw new Error(`plugin ${this.name} exited at start (status ${child.exitCode}); see ${this.logFile}`);
      if (Date.now() > deadline) throw new Error(`plugin ${this.name} did not answer within 30 s; see ${this.logFile}`);
      await new Promise((r2) => setTimeout(r2, 200));
    }
  }

  /** Kills the plugin process (default SIGKILL: a crash). Its mount processes are not touched. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child?.exitCode === null) this.child.kill(signal);
    await this.exited;
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
  }
}

/** Whether a plugin answers /Plugin.Activate on `socket` (within 2 s). */
function activates(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest({ socketPath: socket, path: '/Plugin.Activate', method: 'POST', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('VolumeDriver')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** A unique, valid volume name (also a valid Swift container name). */
export function uniqueVolume(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A unique plugin (driver) name, so that tests never meet another engine's plugin in /run/docker/plugins. */
export function uniquePluginName(prefix = 'swiftfs-test'): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

// ------------------------------------------------------------------ reading the store directly

import { tmpdir } from 'node:os';
import { createSwiftStore } from '../../src/store/swift/swift-store.js';
import { createS3Store } from '../../src/store/s3/s3-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { Volume } from '../../src/core/volume.js';
import { O_RDONLY } from '../../src/core/types.js';

/** The S3 API of the test server. Close it after use. */
export function testS3Store(swift: SwiftTestEnv): ObjectStore {
  return createS3Store({ endpoint: swift.s3Endpoint, region: 'us-east-1', accessKeyId: swift.s3AccessKey, secretAccessKey: swift.s3Secret, forcePathStyle: true, requestTimeoutMs: 15_000 });
}

/** A Swift store on the test server (TempAuth). Close it after use. */
export function testSwiftStore(swift: SwiftTestEnv): ObjectStore {
  return createSwiftStore({ auth: { type: 'tempauth', authUrl: swift.authUrl, user: swift.user, key: swift.key }, requestTimeoutMs: 15_000 });
}

/**
 * Reads files of a volume straight from the store (read-only open through the core, with a throw-away cache):
 * what is there is what reached Swift, whatever the mount processes still hold locally.
 */
export async function readVolumeFiles(store: ObjectStore, container: string, paths: string[]): Promise<Map<string, Buffer | null>> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'swiftfs-docker-read-'));
  const out = new Map<string, Buffer | null>();
  const volume = await Volume.open(store, container, { cacheDir, readOnly: true });
  try {
    for (const path of paths) {
      try {
        const attr = await volume.getattr(path);
        const fh = await volume.open(path, O_RDONLY);
        try {
          out.set(path, attr.size === 0 ? Buffer.alloc(0) : await volume.read(fh, attr.size, 0));
        } finally {
          await volume.release(fh);
        }
      } catch {
        out.set(path, null);
      }
    }
  } finally {
    await volume.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
  return out;
}
