/**
 * The mount registry and each mount daemon's control socket.
 *
 * Every running `swiftfs mount` daemon registers itself in the run directory (root: /run/swiftfs/mounts,
 * others: $XDG_RUNTIME_DIR/swiftfs/mounts or /tmp/swiftfs-UID/mounts):
 *
 *   <id>.json   {pid, startTime, mountpoint, volume, store, socket, logFile, startedAt}
 *   <id>.sock   HTTP+JSON on a unix socket (mode 0600):
 *                 GET  /status              the daemon's status (MountStatus)
 *                 POST /unmount[?lazy=1]    flush everything, unmount, close the volume, wait (bounded) for
 *                                           the replicas, exit. The answer is a stream of JSON lines ({state,
 *                                           dirtyBytes, replicas, ...} every 500 ms) ending with
 *                                           {state: "done"} or {state: "error", message}.
 *
 * `<id>` is derived from the mount point (sha256, 16 hex digits), so the socket of a mount point is known
 * without reading anything. `swiftfs status`, `swiftfs unmount` and the plugin use `listMounts` / `controlRequest`.
 * A registration whose process is gone (pid + /proc start time) is stale: readers ignore it and remove it.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';

/** What a daemon registers. */
export interface MountRegistration {
  pid: number;
  /** /proc/PID/stat start time (clock ticks since boot): tells a live daemon from a reused pid. */
  startTime: string;
  mountpoint: string;
  /** The volume address as resolved (swift://STORE/CONTAINER). */
  volume: string;
  store: string;
  socket: string;
  logFile: string | null;
  startedAt: string;
}

/** The default run directory for this user. */
export function defaultRunDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (env['SWIFTFS_RUN_DIR']) return env['SWIFTFS_RUN_DIR'];
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return '/run/swiftfs/mounts';
  if (env['XDG_RUNTIME_DIR']) return join(env['XDG_RUNTIME_DIR'], 'swiftfs', 'mounts');
  return `/tmp/swiftfs-${uid}/mounts`;
}

export function mountId(mountpoint: string): string {
  return createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
}

export function socketPath(runDir: string, mountpoint: string): string {
  return join(runDir, `${mountId(mountpoint)}.sock`);
}

export function registrationPath(runDir: string, mountpoint: string): string {
  return join(runDir, `${mountId(mountpoint)}.json`);
}

export function defaultLogFile(runDir: string, mountpoint: string): string {
  return join(runDir, `${mountId(mountpoint)}.log`);
}

/** Field 22 of /proc/PID/stat, or undefined when there is no such (live) process. */
export function processStartTime(pid: number): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
  return rest[19];
}

export function isAlive(reg: Pick<MountRegistration, 'pid' | 'startTime'>): boolean {
  return processStartTime(reg.pid) === reg.startTime;
}

export async function writeRegistration(runDir: string, reg: MountRegistration): Promise<void> {
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  const file = registrationPath(runDir, reg.mountpoint);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(reg, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export async function removeRegistration(runDir: string, mountpoint: string, pid: number = process.pid): Promise<void> {
  const file = registrationPath(runDir, mountpoint);
  try {
    const reg = JSON.parse(await readFile(file, 'utf8')) as MountRegistration;
    if (reg.pid !== pid) return; // someone else's by now
  } catch {
    return;
  }
  await unlink(file).catch(() => undefined);
  await unlink(socketPath(runDir, mountpoint)).catch(() => undefined);
}

/** Registrations of live daemons (stale ones are removed on the way). */
export async function listMounts(runDir: string): Promise<MountRegistration[]> {
  let names: string[];
  try {
    names = await readdir(runDir);
  } catch {
    return [];
  }
  const out: MountRegistration[] = [];
  for (const name of names) {
    // A registration a daemon died while writing (<id>.json.<pid>.tmp): remove it once that pid is gone.
    const tmp = /\.json\.(\d+)\.tmp$/.exec(name);
    if (tmp && processStartTime(Number(tmp[1])) === undefined) await unlink(join(runDir, name)).catch(() => undefined);
    if (!name.endsWith('.json')) continue;
    let reg: MountRegistration;
    try {
      reg = JSON.parse(await readFile(join(runDir, name), 'utf8')) as MountRegistration;
    } catch {
      continue;
    }
    if (isAlive(reg)) out.push(reg);
    else {
      await unlink(join(runDir, name)).catch(() => undefined);
      await unlink(reg.socket).catch(() => undefined);
    }
  }
  return out.sort((a, b) => (a.mountpoint < b.mountpoint ? -1 : 1));
}

/** The live registration for `mountpoint`, if any. */
export async function findMount(runDir: string, mountpoint: string): Promise<MountRegistration | undefined> {
  try {
    const reg = JSON.parse(await readFile(registrationPath(runDir, mountpoint), 'utf8')) as MountRegistration;
    return reg.mountpoint === mountpoint && isAlive(reg) ? reg : undefined;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ client

export class ControlError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ControlError';
  }
}

/**
 * One request to a daemon's control socket. `onLine` receives each JSON line of a streamed answer; the
 * promise resolves with the last one (or the whole JSON body). Rejects ControlError when nobody answers in
 * `timeoutMs` (for a stream: between two lines).
 */
export function controlRequest<T = unknown>(socket: string, method: 'GET' | 'POST', path: string, opts: { timeoutMs?: number; onLine?: (line: T) => void } = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: { accept: 'application/json' } }, (res) => {
      res.setEncoding('utf8');
      let buffer = '';
      let last: T | undefined;
      const take = (line: string): void => {
        if (line.trim() === '') return;
        try {
          last = JSON.parse(line) as T;
        } catch {
          return;
        }
        opts.onLine?.(last);
      };
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          take(buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
        }
      });
      res.on('end', () => {
        take(buffer);
        if (res.statusCode && res.statusCode >= 400 && last === undefined) reject(new ControlError(`control socket answered HTTP ${res.statusCode}`));
        else if (last === undefined) reject(new ControlError('empty answer from the control socket'));
        else resolve(last);
      });
      res.on('error', (err) => reject(new ControlError(`control socket: ${err.message}`, { cause: err })));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(new ControlError(`control socket ${socket}: ${err.message}`, { cause: err })));
    req.end();
  });
}

// ------------------------------------------------------------------ server

export interface UnmountProgress {
  /** replicating: the volume is closed; the daemon waits (bounded) for its replicas to hold the final commit. */
  state: 'flushing' | 'unmounting' | 'closing' | 'replicating' | 'done' | 'error' | 'busy';
  dirtyBytes?: number;
  uploadsQueued?: number;
  uploadsActive?: number;
  /** While replicating: each replica's lag. */
  replicas?: { replica: string; lagSeconds: number; lagBytes: number }[];
  message?: string;
}

export interface ControlHandlers {
  status(): unknown;
  /** Starts (or joins) the unmount; `progress` is called until it settles. Resolves when done. */
  unmount(lazy: boolean, progress: (p: UnmountProgress) => void): Promise<void>;
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}

/** Serves the control API on `socket` (replacing a stale socket file). */
export async function startControlServer(socket: string, handlers: ControlHandlers): Promise<Server> {
  await unlink(socket).catch(() => undefined);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://control');
    if (req.method === 'GET' && url.pathname === '/status') {
      try {
        sendJson(res, 200, handlers.status());
      } catch (err) {
        sendJson(res, 500, { error: (err as Error).message });
      }
      return;
    }
    if (req.method === 'POST' && url.pathname === '/unmount') {
      const lazy = url.searchParams.get('lazy') === '1';
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      const write = (p: UnmountProgress): void => {
        if (!res.writableEnded) res.write(`${JSON.stringify(p)}\n`);
      };
      handlers.unmount(lazy, write).then(
        () => {
          write({ state: 'done' });
          res.end();
        },
        (err: unknown) => {
          const busy = (err as { busy?: boolean }).busy === true;
          write({ state: busy ? 'busy' : 'error', message: err instanceof Error ? err.message : String(err) });
          res.end();
        },
      );
      return;
    }
    sendJson(res, 404, { error: 'unknown request: GET /status, POST /unmount' });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // /unmount streams for as long as the flush takes
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(socket, 0o600).catch(() => undefined);
  server.unref();
  return server;
}
