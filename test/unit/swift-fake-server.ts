/**
 * A fake OpenStack endpoint for the Swift store's unit tests: TempAuth v1 (GET /auth/v1.0), Keystone v3
 * (POST /v3/auth/tokens, with a catalog of two regions) and a small in-memory Swift storage API, all on
 * node:http at 127.0.0.1:0. Tests steer it (revoke tokens, reject every token, hang the auth, inject faults)
 * and read what it saw (authentication counts, request paths, Keystone request bodies).
 */

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const TEMPAUTH_USER = 'test:tester';
export const TEMPAUTH_KEY = 'tempauth-secret-key-1234';
export const KEYSTONE_USER = 'alice';
export const KEYSTONE_PASSWORD = 'wonderland-secret-pw';
export const APP_CRED_ID = 'appcred-id-42';
export const APP_CRED_NAME = 'appcred-name';
export const APP_CRED_SECRET = 'appcred-secret-value';

interface StoredObject {
  body: Buffer;
  etag: string;
  meta: Record<string, string>;
  contentType: string;
}

/** A fault handler: return true when it answered the request itself. Removed after it fires once. */
export type Fault = (req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean;

/** Makes writeHead(status, headers).end(body) send Content-Length = the body's length unless headers give one. */
function announceLength(res: ServerResponse): void {
  const realWriteHead = res.writeHead.bind(res) as (status: number, headers?: Record<string, string>) => ServerResponse;
  const realWrite = res.write.bind(res) as (...args: unknown[]) => boolean;
  const realEnd = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  let pending: [number, Record<string, string>] | undefined;
  const flush = (length?: number) => {
    if (pending === undefined) return;
    const [status, headers] = pending;
    pending = undefined;
    if (length !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) headers['content-length'] = String(length);
    realWriteHead(status, headers);
  };
  const patched = res as unknown as Record<string, unknown>;
  patched['writeHead'] = (status: number, headers: Record<string, string> = {}) => {
    pending = [status, { ...headers }];
    return res;
  };
  patched['write'] = (...args: unknown[]) => {
    flush();
    return realWrite(...args);
  };
  patched['end'] = (...args: unknown[]) => {
    const chunk = args[0];
    flush(typeof chunk === 'string' || chunk instanceof Uint8Array ? Buffer.byteLength(chunk) : 0);
    return realEnd(...args);
  };
}

export class FakeSwift {
  port = 0;
  tempauthCount = 0;
  keystoneCount = 0;
  keystoneBodies: unknown[] = [];
  /** Every request: method, raw path (as sent), the account it addressed. */
  requests: { method: string; path: string; account?: string }[] = [];
  /** Tokens the storage accepts. */
  validTokens = new Set<string>();
  /** Answer 401 to every storage request. */
  rejectAllTokens = false;
  /** Never answer authentication requests. */
  hangAuth = false;
  /** Delay before answering an authentication. */
  authDelayMs = 0;
  /** TempAuth's X-Auth-Token-Expires (seconds); undefined: no header. */
  tempauthExpiresS: number | undefined = 86_400;
  /** Keystone's token lifetime. */
  keystoneLifetimeMs = 3_600_000;
  /** Behave like a cluster that ignores If-None-Match on PUT. */
  ignoreIfNoneMatch = false;
  /** One-shot fault injectors, tried in order before normal handling. */
  faults: Fault[] = [];
  /** Sockets opened to the server (to check connection reuse). */
  connections = 0;
  readonly containers = new Map<string, { meta: Record<string, string>; objects: Map<string, StoredObject> }>();

  private server: Server | undefined;
  private tokenSeq = 0;
  private readonly sockets = new Set<Socket>();

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get tempauthUrl(): string {
    return `${this.base}/auth/v1.0`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks)));
      req.on('error', () => {});
    });
    this.server.on('connection', (socket: Socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  revokeAll(): void {
    this.validTokens.clear();
  }

  private issueToken(): string {
    const token = `AUTH_tk-fake-${++this.tokenSeq}-${Math.random().toString(36).slice(2)}`;
    this.validTokens.add(token);
    return token;
  }

  private catalog(): unknown[] {
    const b = this.base;
    return [
      { type: 'identity', name: 'keystone', endpoints: [{ interface: 'public', region: 'RegionOne', region_id: 'RegionOne', url: `${b}/v3` }] },
      {
        type: 'object-store',
        name: 'swift',
        endpoints: [
          { interface: 'public', region: 'RegionOne', region_id: 'RegionOne', url: `${b}/v1/AUTH_r1pub` },
          { interface: 'internal', region: 'RegionOne', region_id: 'RegionOne', url: `${b}/v1/AUTH_r1int` },
          { interface: 'public', region: 'RegionTwo', region_id: 'RegionTwo', url: `${b}/v1/AUTH_r2pub` },
          { interface: 'admin', region: 'RegionTwo', region_id: 'RegionTwo', url: `${b}/v1/AUTH_r2adm` },
        ],
      },
    ];
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const url = new URL(req.url ?? '/', this.base);
    const path = req.url ?? '/';
    // The raw path: WHATWG URL parsing would collapse encoded dot segments (%2E%2E) that Swift keeps.
    const rawPath = path.split('?')[0]!;
    const storage = /^\/v1\/([^/?]+)/.exec(rawPath);
    this.requests.push({ method: req.method ?? '?', path, ...(storage ? { account: storage[1]! } : {}) });
    // Like Swift, announce the length of every answer (node omits it on HEAD, which closes keep-alive connections).
    announceLength(res);
    for (let i = 0; i < this.faults.length; i++) {
      if (this.faults[i]!(req, res, body)) {
        this.faults.splice(i, 1);
        return;
      }
    }
    if (url.pathname === '/auth/v1.0') return this.tempauth(req, res);
    if (/\/v3\/auth\/tokens$/.test(url.pathname) && req.method === 'POST') return this.keystone(req, res, body);
    if (storage) return this.storage(req, res, url, rawPath, body);
    res.writeHead(404).end('not found');
  }

  private tempauth(req: IncomingMessage, res: ServerResponse): void {
    this.tempauthCount++;
    if (this.hangAuth) return; // never answer
    setTimeout(() => {
      if (req.headers['x-auth-user'] !== TEMPAUTH_USER || req.headers['x-auth-key'] !== TEMPAUTH_KEY) {
        res.writeHead(401, { 'content-type': 'text/html' }).end('<html><h1>Unauthorized</h1></html>');
        return;
      }
      const token = this.issueToken();
      const headers: Record<string, string> = { 'x-auth-token': token, 'x-storage-token': token, 'x-storage-url': `${this.base}/v1/AUTH_test` };
      if (this.tempauthExpiresS !== undefined) headers['x-auth-token-expires'] = String(this.tempauthExpiresS);
      res.writeHead(200, headers).end();
    }, this.authDelayMs);
  }

  private keystone(_req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    this.keystoneCount++;
    if (this.hangAuth) return;
    let parsed: { auth?: { identity?: Record<string, unknown> } } = {};
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"code":400,"message":"bad json"}}');
      return;
    }
    this.keystoneBodies.push(parsed);
    setTimeout(() => {
      const identity = parsed.auth?.identity ?? {};
      const methods = identity['methods'] as string[] | undefined;
      let ok = false;
      if (methods?.[0] === 'password') {
        const user = (identity['password'] as { user?: { name?: string; password?: string } } | undefined)?.user;
        ok = user?.name === KEYSTONE_USER && user.password === KEYSTONE_PASSWORD;
      } else if (methods?.[0] === 'application_credential') {
        const cred = identity['application_credential'] as { id?: string; name?: string; secret?: string; user?: { name?: string } } | undefined;
        ok = cred?.secret === APP_CRED_SECRET && (cred.id === APP_CRED_ID || (cred.name === APP_CRED_NAME && cred.user?.name === KEYSTONE_USER));
      }
      if (!ok) {
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end('{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}');
        return;
      }
      const token = this.issueToken();
      const expires = new Date(Date.now() + this.keystoneLifetimeMs).toISOString();
      res
        .writeHead(201, { 'content-type': 'application/json', 'x-subject-token': token })
        .end(JSON.stringify({ token: { methods, expires_at: expires, catalog: this.catalog() } }));
    }, this.authDelayMs);
  }

  /** Stores an object as a PUT would (for faults that store and then drop the connection). */
  storeObject(container: string, key: string, body: Buffer): void {
    const etag = createHash('md5').update(body).digest('hex');
    this.containers.get(container)!.objects.set(key, { body, etag, meta: {}, contentType: 'application/octet-stream' });
  }

  private storage(req: IncomingMessage, res: ServerResponse, url: URL, rawPath: string, body: Buffer): void {
    const token = req.headers['x-auth-token'];
    if (this.rejectAllTokens || typeof token !== 'string' || !this.validTokens.has(token)) {
      res.writeHead(401, { 'content-type': 'text/html' }).end('<html><h1>Unauthorized</h1></html>');
      return;
    }
    const parts = rawPath.split('/').slice(3); // '', 'v1', account
    const container = parts[0] === undefined || parts[0] === '' ? undefined : decodeURIComponent(parts[0]);
    const key = parts.length > 1 ? parts.slice(1).map(decodeURIComponent).join('/') : undefined;
    const method = req.method ?? 'GET';
    if (container === undefined) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify([...this.containers.keys()].sort().map((name) => ({ name, count: 0, bytes: 0 }))));
      return;
    }
    if (key === undefined) {
      const c = this.containers.get(container);
      if (method === 'PUT') {
        if (c) return void res.writeHead(202).end();
        this.containers.set(container, { meta: {}, objects: new Map() });
        return void res.writeHead(201).end();
      }
      if (!c) return void res.writeHead(404).end('<html><h1>Not Found</h1></html>');
      if (method === 'HEAD') {
        return void res.writeHead(204, { 'x-container-object-count': String(c.objects.size), 'x-container-bytes-used': '0', 'x-storage-policy': 'Policy-0' }).end();
      }
      if (method === 'GET') {
        const prefix = url.searchParams.get('prefix') ?? '';
        const marker = url.searchParams.get('marker') ?? '';
        const limit = Number(url.searchParams.get('limit') ?? 10000);
        const names = [...c.objects.keys()].filter((k) => k.startsWith(prefix) && k > marker).sort().slice(0, limit);
        return void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify(names.map((name) => ({ name, bytes: c.objects.get(name)!.body.length, hash: c.objects.get(name)!.etag, last_modified: '2026-01-01T00:00:00.000000' }))));
      }
      if (method === 'DELETE') {
        if (c.objects.size > 0) return void res.writeHead(409).end('There was a conflict');
        this.containers.delete(container);
        return void res.writeHead(204).end();
      }
      return void res.writeHead(405).end();
    }
    const c = this.containers.get(container);
    if (!c) return void res.writeHead(404).end('<html><h1>Not Found</h1></html>');
    const obj = c.objects.get(key);
    if (method === 'PUT') {
      const etag = createHash('md5').update(body).digest('hex');
      if (typeof req.headers['etag'] === 'string' && req.headers['etag'] !== etag) return void res.writeHead(422).end('Unprocessable Entity');
      if (req.headers['if-none-match'] === '*' && obj && !this.ignoreIfNoneMatch) return void res.writeHead(412).end('Precondition Failed');
      const meta: Record<string, string> = {};
      for (const [h, v] of Object.entries(req.headers)) if (h.startsWith('x-object-meta-') && typeof v === 'string') meta[h] = v;
      c.objects.set(key, { body, etag, meta, contentType: String(req.headers['content-type'] ?? 'application/octet-stream') });
      return void res.writeHead(201, { etag }).end();
    }
    if (!obj) return void res.writeHead(404).end('<html><h1>Not Found</h1></html>');
    const headers: Record<string, string> = { etag: obj.etag, 'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT', 'content-type': obj.contentType, ...obj.meta };
    if (method === 'DELETE') {
      c.objects.delete(key);
      return void res.writeHead(204).end();
    }
    if (method === 'HEAD') return void res.writeHead(200, { ...headers, 'content-length': String(obj.body.length) }).end();
    if (method === 'GET') {
      const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers['range'] ?? ''));
      if (range) {
        const start = Number(range[1]);
        const end = Math.min(range[2] === '' ? obj.body.length - 1 : Number(range[2]), obj.body.length - 1);
        if (start >= obj.body.length) return void res.writeHead(416, { ...headers, 'content-range': `bytes */${obj.body.length}` }).end('Requested Range Not Satisfiable');
        return void res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${obj.body.length}` }).end(obj.body.subarray(start, end + 1));
      }
      return void res.writeHead(200, { ...headers, 'content-length': String(obj.body.length) }).end(obj.body);
    }
    res.writeHead(405).end();
  }
}
