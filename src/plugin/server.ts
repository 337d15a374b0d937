/**
 * The HTTP side of the Docker volume plugin: an express 5 app serving every endpoint of the protocol on a unix
 * socket, translating requests into calls on a VolumeDriver and its errors into `{"Err": "..."}`.
 *
 * - Bodies are read raw and parsed as JSON whatever the Content-Type (the engine sends none).
 * - A failing call answers HTTP 500 with `{"Err": message}` (as docker/go-plugins-helpers does); the engine reads
 *   the message from the body. Unknown paths answer 404 (the engine treats a 404 on Capabilities as "local").
 * - The socket: a stale socket file is removed first (but never a live one: if something answers on it, we refuse
 *   to start), it is created with mode 0660 (never world-writable: access to it means root on the host), or it is
 *   taken from systemd socket activation (LISTEN_FDS).
 * - Requests are logged with their method, volume name, duration and error; option VALUES are never logged.
 */

import express, { type Request, type Response } from 'express';
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { Server } from 'node:http';
import { dirname } from 'node:path';
import {
  Endpoint,
  PLUGIN_MEDIA_TYPE,
  ProtocolError,
  parseBody,
  parseCreate,
  parseMount,
  parseName,
  type WireVolume,
} from './protocol.js';

/** What the HTTP layer needs from the driver. Every method rejects with an Error whose message is for the user. */
export interface VolumeDriver {
  create(name: string, opts: Record<string, string>): Promise<void>;
  remove(name: string): Promise<void>;
  /** Returns the mount point. */
  mount(name: string, id: string): Promise<string>;
  unmount(name: string, id: string): Promise<void>;
  /** The mount point, or '' when not mounted. */
  path(name: string): Promise<string>;
  /** Rejects (e.g. "no such volume") when the volume does not exist. */
  get(name: string): Promise<WireVolume>;
  list(): Promise<WireVolume[]>;
  scope(): 'global' | 'local';
}

/** Minimal logger (pino's Logger satisfies it). */
export interface PluginLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export const silentLogger: PluginLogger = { info() {}, warn() {}, error() {}, debug() {} };

/** Largest request body accepted (real requests are well under 1 KiB). */
const BODY_LIMIT = '256kb';

export function createPluginApp(driver: VolumeDriver, log: PluginLogger = silentLogger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(express.raw({ type: () => true, limit: BODY_LIMIT }));

  type Handler = (body: Record<string, unknown>) => Promise<object>;
  const handlers = new Map<string, Handler>([
    [Endpoint.Activate, async () => ({ Implements: ['VolumeDriver'] })],
    [Endpoint.Capabilities, async () => ({ Capabilities: { Scope: driver.scope() } })],
    [
      Endpoint.Create,
      async (body) => {
        const { name, opts } = parseCreate(body);
        await driver.create(name, opts);
        return { Err: '' };
      },
    ],
    [
      Endpoint.Remove,
      async (body) => {
        await driver.remove(parseName(body).name);
        return { Err: '' };
      },
    ],
    [
      Endpoint.Mount,
      async (body) => {
        const { name, id } = parseMount(body);
        return { Mountpoint: await driver.mount(name, id), Err: '' };
      },
    ],
    [
      Endpoint.Unmount,
      async (body) => {
        const { name, id } = parseMount(body);
        await driver.unmount(name, id);
        return { Err: '' };
      },
    ],
    [Endpoint.Path, async (body) => ({ Mountpoint: await driver.path(parseName(body).name), Err: '' })],
    [Endpoint.Get, async (body) => ({ Volume: await driver.get(parseName(body).name), Err: '' })],
    [Endpoint.List, async () => ({ Volumes: await driver.list(), Err: '' })],
  ]);

  app.use(async (req: Request, res: Response) => {
    const handler = req.method === 'POST' ? handlers.get(req.path) : undefined;
    if (handler === undefined) {
      send(res, 404, { Err: `unknown endpoint ${req.method} ${req.path}` });
      return;
    }
    const started = Date.now();
    let name: unknown;
    try {
      const body = parseBody(Buffer.isBuffer(req.body) ? req.body : undefined);
      name = body['Name'];
      const answer = await handler(body);
      log.info({ call: req.path, name: typeof name === 'string' ? name : undefined, ms: Date.now() - started }, 'plugin call');
      send(res, 200, answer);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // A mistake in the request (bad name, bad option) is the user's: warn; anything else is ours: error.
      const userMistake = err instanceof ProtocolError || (err instanceof Error && /^(ConfigError|VolumeUrlError)$/.test(err.name));
      // The engine asks Get about a name before every Create: "no such volume" is an ordinary answer.
      const ordinary = /^no such volume: /.test(err instanceof Error ? err.message : '');
      const level = ordinary ? 'debug' : userMistake ? 'warn' : 'error';
      log[level]({ call: req.path, name: typeof name === 'string' ? name.slice(0, 300) : undefined, ms: Date.now() - started, err: message }, 'plugin call failed');
      send(res, 500, { Err: message || 'unknown error' });
    }
  });

  // Errors raised before our handler (body too large, aborted request).
  app.use((err: unknown, _req: Request, res: Response, _next: express.NextFunction) => {
    const status = typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number' ? err.status : 500;
    const message = status === 413 ? 'request body too large' : err instanceof Error ? err.message : 'bad request';
    send(res, status >= 400 && status < 600 ? status : 500, { Err: message });
  });
  return app;
}

function send(res: Response, status: number, body: object): void {
  res.status(status).set('Content-Type', PLUGIN_MEDIA_TYPE).send(JSON.stringify(body));
}

export interface ListenOptions {
  /** Unix socket path, e.g. /run/docker/plugins/swiftfs.sock. */
  socketPath: string;
  /** File mode of the socket; default 0o660. World-writable modes are refused. */
  mode?: number;
  /** Group id to own the socket (e.g. the docker group); default: unchanged. */
  gid?: number;
  /** Use systemd socket activation when LISTEN_FDS/LISTEN_PID say so (default true). */
  socketActivation?: boolean;
}

/** Is something listening on this unix socket? */
function socketIsLive(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = createConnection(path);
    const timer = setTimeout(() => {
      conn.destroy();
      resolve(true); // connected but silent, or slow: treat as live (never delete someone's socket)
    }, timeoutMs);
    conn.once('connect', () => {
      clearTimeout(timer);
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Starts serving `app` on the socket. Resolves with the http.Server once listening. */
export async function listenPlugin(app: express.Express, options: ListenOptions): Promise<Server> {
  const mode = options.mode ?? 0o660;
  if ((mode & 0o002) !== 0) throw new Error(`refusing socket mode ${mode.toString(8)}: it would be world-writable`);
  const env = process.env;
  if (options.socketActivation !== false && env['LISTEN_FDS'] === '1' && env['LISTEN_PID'] === String(process.pid)) {
    delete env['LISTEN_FDS'];
    delete env['LISTEN_PID'];
    delete env['LISTEN_FDNAMES'];
    return new Promise((resolve, reject) => {
      const server = app.listen({ fd: 3 }, () => resolve(server));
      server.once('error', reject);
    });
  }
  const path = options.socketPath;
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  let existing: ReturnType<typeof lstatSync> | undefined;
  try {
    existing = lstatSync(path);
  } catch {
    existing = undefined;
  }
  if (existing !== undefined) {
    if (!existing.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    if (await socketIsLive(path)) throw new Error(`another process is already serving ${path}`);
    unlinkSync(path);
  }
  // Create the socket with no world access from the first instant (umask), then set the exact mode.
  const oldMask = process.umask(0o777 & ~mode);
  try {
    const server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(path, () => resolve(s));
      s.once('error', reject);
    });
    chmodSync(path, mode);
    if (options.gid !== undefined) chownSync(path, process.getuid?.() ?? 0, options.gid);
    return server;
  } finally {
    process.umask(oldMask);
  }
}

/** Stops accepting and closes idle connections; resolves when closed (or after `graceMs`). */
export function closeServer(server: Server, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
