/**
 * FaultProxy: a small HTTP proxy on 127.0.0.1:0 in front of a real server (Swift, or its S3 API), whose behaviour
 * a test scripts, to drive the unhappy paths of the real store clients:
 *
 *   const proxy = await FaultProxy.start('http://127.0.0.1:18080');
 *   proxy.hang()                     accept requests and never answer (until pass() or close())
 *   proxy.failNext(2, 503)           answer the next 2 requests with 503 (S3-style XML error for S3 requests)
 *   proxy.resetNext(1)               destroy the connection of the next request without an answer
 *   proxy.rejectToken(token, 1)      answer 401 to the next request carrying this X-Auth-Token (an expired token)
 *   proxy.pass()                     pass everything through again
 * and reads what happened: proxy.requests (method, path, status, injected), proxy.authRequests, tokensSeen.
 *
 * Requests are forwarded with their Host header unchanged, so S3 SigV4 signatures made for the proxy's address
 * stay valid; response headers naming the upstream origin (X-Storage-Url after TempAuth) are rewritten to the
 * proxy's, so that a Swift client keeps talking through the proxy after authenticating.
 *
 * Also: closedPort() gives a port with nothing listening (connection refused, a "stopped server").
 */

import http from 'node:http';
import net from 'node:net';
import type { Socket } from 'node:net';

export interface ProxyRecord {
  method: string;
  path: string;
  /** The status answered (0 when the request hung, was reset, or the upstream failed before answering). */
  status: number;
  /** True when the proxy answered (or hung, or reset) instead of the upstream. */
  injected: boolean;
  /** Which injection: 'hang' | 'status' | 'reset' | 'token'. */
  fault?: string;
  /** An S3 request (signed with SigV4). */
  s3: boolean;
  /** A TempAuth request (GET .../auth/v1.0). */
  auth: boolean;
}

interface StatusFault {
  remaining: number;
  status: number;
  s3Code: string | undefined;
  match: ((req: http.IncomingMessage) => boolean) | undefined;
}

export interface FailOptions {
  /** S3 error code for the XML body (default by status: ServiceUnavailable, InternalError, SlowDown for 503+slowDown). */
  s3Code?: string;
  /** Only requests this returns true for are failed (and counted). */
  match?: (req: http.IncomingMessage) => boolean;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'expect']);

export class FaultProxy {
  readonly requests: ProxyRecord[] = [];
  readonly tokensSeen = new Set<string>();
  private mode: 'pass' | 'hang' = 'pass';
  private statusFaults: StatusFault[] = [];
  private resets = 0;
  private readonly rejectedTokens = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private readonly upstream: URL;

  private constructor(
    private readonly server: http.Server,
    upstream: string,
    readonly port: number,
  ) {
    this.upstream = new URL(upstream);
  }

  /** Starts a proxy to `upstream` (an origin such as http://127.0.0.1:18080). */
  static async start(upstream: string): Promise<FaultProxy> {
    const server = http.createServer();
    // Answer "100 Continue" ourselves only when passing the request on; an injected answer needs no body.
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    const proxy = new FaultProxy(server, upstream, port);
    server.on('connection', (socket) => {
      proxy.sockets.add(socket);
      socket.on('close', () => proxy.sockets.delete(socket));
    });
    server.on('request', (req, res) => proxy.handle(req, res));
    return proxy;
  }

  /** http://127.0.0.1:PORT */
  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The same URL with the upstream's origin replaced by the proxy's (e.g. an auth URL). */
  via(url: string): string {
    const parsed = new URL(url);
    return `${this.origin}${parsed.pathname}${parsed.search}`;
  }

  pass(): this {
    this.mode = 'pass';
    this.statusFaults = [];
    this.resets = 0;
    this.rejectedTokens.clear();
    return this;
  }

  /** Every request from now on is accepted and never answered (until pass()). */
  hang(): this {
    this.mode = 'hang';
    return this;
  }

  /** The next `count` requests (matching `match`) get `status` with an error body, without reaching the upstream. */
  failNext(count: number, status: number, options: FailOptions = {}): this {
    this.statusFaults.push({ remaining: count, status, s3Code: options.s3Code, match: options.match });
    return this;
  }

  /** The connections of the next `count` requests are destroyed without an answer (a reset). */
  resetNext(count: number): this {
    this.resets += count;
    return this;
  }

  /** The next `times` requests carrying this token get 401 (as from an expired token). */
  rejectToken(token: string, times = 1): this {
    this.rejectedTokens.set(token, times);
    return this;
  }

  get authRequests(): number {
    return this.requests.filter((r) => r.auth).length;
  }

  /** Requests that reached the upstream (not injected). */
  get forwarded(): ProxyRecord[] {
    return this.requests.filter((r) => !r.injected);
  }

  /** Forgets the recorded requests. */
  clearRecords(): void {
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.agent.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = req.url ?? '/';
    const authorization = req.headers.authorization ?? '';
    const s3 = authorization.startsWith('AWS4-') || /[?&]X-Amz-/i.test(path);
    const auth = !s3 && /\/auth\/v1\.0|\/v1\.0$|\/auth$/.test(path.split('?')[0]!);
    const record: ProxyRecord = { method: req.method ?? 'GET', path, status: 0, injected: false, s3, auth };
    this.requests.push(record);
    const token = headerValue(req.headers['x-auth-token']);
    if (token) this.tokensSeen.add(token);

    if (this.mode === 'hang') {
      record.injected = true;
      record.fault = 'hang';
      req.resume(); // read the body, answer never
      return;
    }
    if (this.resets > 0) {
      this.resets--;
      record.injected = true;
      record.fault = 'reset';
      req.socket.destroy();
      return;
    }
    const fault = this.statusFaults.find((f) => f.remaining > 0 && (f.match === undefined || f.match(req)));
    if (fault) {
      fault.remaining--;
      this.statusFaults = this.statusFaults.filter((f) => f.remaining > 0);
      record.injected = true;
      record.fault = 'status';
      this.answer(req, res, record, fault.status, s3, fault.s3Code);
      return;
    }
    if (token !== undefined && (this.rejectedTokens.get(token) ?? 0) > 0) {
      this.rejectedTokens.set(token, this.rejectedTokens.get(token)! - 1);
      record.injected = true;
      record.fault = 'token';
      this.answer(req, res, record, 401, false, undefined);
      return;
    }
    this.forward(req, res, record);
  }

  /** Drains the request body, then answers with `status` and an error body in the API's style. */
  private answer(req: http.IncomingMessage, res: http.ServerResponse, record: ProxyRecord, status: number, s3: boolean, s3Code: string | undefined): void {
    const send = () => {
      if (res.headersSent || res.destroyed) return;
      record.status = status;
      const text = http.STATUS_CODES[status] ?? 'Error';
      let body: string;
      let type: string;
      if (s3) {
        const code = s3Code ?? (status === 503 ? 'ServiceUnavailable' : status === 500 ? 'InternalError' : status === 401 || status === 403 ? 'AccessDenied' : text.replace(/\s+/g, ''));
        body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected by the fault proxy</Message><RequestId>fault-proxy</RequestId></Error>`;
        type = 'application/xml';
      } else {
        body = `<html><h1>${text}</h1><p>injected by the fault proxy</p></html>`;
        type = 'text/html; charset=UTF-8';
      }
      const payload = req.method === 'HEAD' ? '' : body;
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...(status === 503 ? { 'retry-after': '0' } : {}) });
      res.end(payload);
    };
    req.on('end', send);
    req.on('error', () => undefined);
    req.resume();
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, record: ProxyRecord): void {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    if (req.headers['transfer-encoding'] !== undefined && req.headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
    const upstreamReq = http.request(
      {
        host: this.upstream.hostname,
        port: this.upstream.port,
        method: req.method,
        path: req.url,
        headers,
        agent: this.agent,
      },
      (upstreamRes) => {
        record.status = upstreamRes.statusCode ?? 0;
        const responseHeaders: http.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(upstreamRes.headers)) {
          if (value === undefined || HOP_BY_HOP.has(name)) continue;
          responseHeaders[name] = Array.isArray(value) ? value.map((v) => this.rewrite(v)) : this.rewrite(value);
        }
        if (upstreamRes.headers['transfer-encoding'] !== undefined && upstreamRes.headers['content-length'] === undefined && req.method !== 'HEAD') {
          responseHeaders['transfer-encoding'] = 'chunked';
        }
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, responseHeaders);
        upstreamRes.pipe(res);
        upstreamRes.on('error', () => res.destroy());
      },
    );
    upstreamReq.on('error', () => {
      if (!res.headersSent) {
        record.status = 502;
        res.writeHead(502, { 'content-type': 'text/plain', 'content-length': 11 });
        res.end('bad gateway');
      } else {
        res.destroy();
      }
    });
    req.on('error', () => upstreamReq.destroy());
    req.pipe(upstreamReq);
  }

  private rewrite(value: string): string {
    return value.split(this.upstream.origin).join(this.origin);
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** A port on 127.0.0.1 where nothing listens (was bound, then closed): connections are refused. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Sends memcached's flush_all to 127.0.0.1:port (drops every TempAuth token of that Swift). */
export function flushMemcached(port: number, timeoutMs = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`memcached on port ${port} did not answer flush_all within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write('flush_all\r\n'));
    socket.on('data', (data) => {
      answer += data.toString('latin1');
      if (answer.includes('\r\n')) {
        clearTimeout(timer);
        socket.end();
        if (answer.startsWith('OK')) resolve();
        else reject(new Error(`memcached answered ${JSON.stringify(answer.trim())} to flush_all`));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
