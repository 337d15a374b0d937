/**
 * Authentication for the Swift store: TempAuth v1, Keystone v3 (password or application credential) or a
 * pre-issued token, giving a session = (token, storage URL, expiry).
 *
 * The session is cached and shared: concurrent callers wait on one in-flight authentication, a token close to
 * its expiry is refreshed proactively in the background, and a token the storage rejects (401) is renewed once
 * through renew(). Failures are StoreErrors: rejected credentials are Auth ("authentication failed for user X
 * at URL"), an auth server that refuses or fails is Unavailable, one that does not answer is Timeout. No key,
 * password, secret or token ever appears in a message or a log line.
 */

import type { Dispatcher } from 'undici';
import { StoreError, StoreErrorCode } from '../errors.js';
import {
  discard,
  header,
  raceSignal,
  readErrorText,
  safeUrl,
  silentLogger,
  statusError,
  transportError,
  type SwiftLogger,
} from './http.js';

export type KeystoneInterface = 'public' | 'internal' | 'admin';

export interface TempAuthSettings {
  type: 'tempauth';
  /** e.g. http://127.0.0.1:8080/auth/v1.0 */
  authUrl: string;
  /** account:user */
  user: string;
  key: string;
}

export interface KeystoneSettings {
  type: 'keystone';
  /** Keystone's URL, with or without the trailing /v3. */
  authUrl: string;
  username?: string;
  userId?: string;
  /** Default "Default" when neither userDomainName nor userDomainId is given. */
  userDomainName?: string;
  userDomainId?: string;
  password?: string;
  projectName?: string;
  projectId?: string;
  /** Default: the user's domain, else "Default". */
  projectDomainName?: string;
  projectDomainId?: string;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: string;
  /** Region of the object-store endpoint (matches `region_id` or `region`); default: the first one listed. */
  region?: string;
  /** Endpoint interface; default public. */
  interface?: KeystoneInterface;
}

/** A token issued elsewhere (OS_AUTH_TOKEN style); needs an explicit storage URL and cannot be renewed. */
export interface PreIssuedTokenSettings {
  type: 'token';
  token: string;
}

export type SwiftAuthSettings = TempAuthSettings | KeystoneSettings | PreIssuedTokenSettings;

export interface SwiftSession {
  token: string;
  /** e.g. http://127.0.0.1:8080/v1/AUTH_test (no trailing slash) */
  storageUrl: string;
  /** Epoch ms after which the token is no longer valid, when the server said. */
  expiresAt?: number;
}

export interface SwiftAuthOptions {
  settings: SwiftAuthSettings;
  /** Overrides the storage URL that authentication returns (OS_STORAGE_URL style). Required for 'token'. */
  storageUrl?: string;
  dispatcher: Dispatcher;
  /** Deadline of one authentication request. */
  timeoutMs: number;
  /** Refresh this long before expiry (capped at a quarter of the token's lifetime). Default 60 s. */
  refreshMarginMs?: number;
  logger?: SwiftLogger;
  /** Clock, for tests. */
  now?: () => number;
}

const USER_AGENT = 'swiftfs';
/** A token is treated as expired this long before its stated expiry (clock skew, request in flight). */
const EXPIRY_SKEW_MS = 2_000;
/** After a failed background refresh, wait this long before trying again in the background. */
const BACKGROUND_RETRY_MS = 5_000;

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

function checkUrl(url: string, what: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `${what} is not a valid URL`, { op: 'auth', cause });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new StoreError(StoreErrorCode.InvalidArgument, `${what} must be an http or https URL (got ${parsed.protocol})`, { op: 'auth' });
  }
  return parsed;
}

/** Replaces every occurrence of the given secrets in `text`. */
function redact(text: string, secrets: (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret !== undefined && secret.length >= 3) out = out.split(secret).join('***');
  }
  return out;
}

/** Who is authenticating, for messages: never a secret. */
export function describeIdentity(settings: SwiftAuthSettings): string {
  switch (settings.type) {
    case 'tempauth':
      return `user ${settings.user}`;
    case 'token':
      return 'a pre-issued token';
    case 'keystone': {
      if (settings.applicationCredentialSecret !== undefined) {
        return `application credential ${settings.applicationCredentialId ?? settings.applicationCredentialName ?? '?'}`;
      }
      const domain = settings.userDomainName ?? settings.userDomainId ?? 'Default';
      return settings.username !== undefined ? `user ${settings.username} (domain ${domain})` : `user id ${settings.userId ?? '?'}`;
    }
  }
}

/** The Keystone v3 token URL for an auth URL given with or without /v3. */
export function keystoneTokensUrl(authUrl: string): string {
  const base = trimSlash(authUrl);
  if (/\/v3\/auth\/tokens$/.test(base)) return base;
  if (/\/v3$/.test(base)) return `${base}/auth/tokens`;
  return `${base}/v3/auth/tokens`;
}

/** The JSON body of a Keystone v3 token request. Throws InvalidArgument for incomplete settings. */
export function keystoneRequestBody(s: KeystoneSettings): object {
  const invalid = (msg: string) => new StoreError(StoreErrorCode.InvalidArgument, `keystone settings: ${msg}`, { op: 'auth' });
  const userDomain = s.userDomainId !== undefined ? { id: s.userDomainId } : { name: s.userDomainName ?? 'Default' };
  if (s.applicationCredentialSecret !== undefined) {
    let credential: Record<string, unknown>;
    if (s.applicationCredentialId !== undefined) {
      credential = { id: s.applicationCredentialId, secret: s.applicationCredentialSecret };
    } else if (s.applicationCredentialName !== undefined) {
      let user: Record<string, unknown>;
      if (s.userId !== undefined) user = { id: s.userId };
      else if (s.username !== undefined) user = { name: s.username, domain: userDomain };
      else throw invalid('an application credential given by name needs username (with its domain) or userId');
      credential = { name: s.applicationCredentialName, secret: s.applicationCredentialSecret, user };
    } else {
      throw invalid('applicationCredentialSecret needs applicationCredentialId or applicationCredentialName');
    }
    // An application credential is scoped to its project already: no scope in the request.
    return { auth: { identity: { methods: ['application_credential'], application_credential: credential } } };
  }
  if (s.password === undefined) throw invalid('give password (with username or userId) or an application credential');
  let user: Record<string, unknown>;
  if (s.userId !== undefined) user = { id: s.userId, password: s.password };
  else if (s.username !== undefined) user = { name: s.username, domain: userDomain, password: s.password };
  else throw invalid('password authentication needs username or userId');
  const auth: Record<string, unknown> = { identity: { methods: ['password'], password: { user } } };
  if (s.projectId !== undefined) {
    auth['scope'] = { project: { id: s.projectId } };
  } else if (s.projectName !== undefined) {
    const projectDomain =
      s.projectDomainId !== undefined
        ? { id: s.projectDomainId }
        : s.projectDomainName !== undefined
          ? { name: s.projectDomainName }
          : userDomain;
    auth['scope'] = { project: { name: s.projectName, domain: projectDomain } };
  }
  return { auth };
}

interface CatalogEndpoint {
  interface?: string;
  region?: string | null;
  region_id?: string | null;
  url?: string;
}
interface CatalogEntry {
  type?: string;
  name?: string;
  endpoints?: CatalogEndpoint[];
}

/**
 * Picks the object-store endpoint from a Keystone catalog by region and interface. Throws InvalidArgument
 * naming what the catalog offers when nothing matches.
 */
export function selectObjectStoreEndpoint(catalog: unknown, region: string | undefined, iface: KeystoneInterface): { url: string; region?: string } {
  const entries = Array.isArray(catalog) ? (catalog as CatalogEntry[]) : [];
  const endpoints = entries.filter((e) => e?.type === 'object-store').flatMap((e) => (Array.isArray(e.endpoints) ? e.endpoints : []));
  const regionOf = (e: CatalogEndpoint) => e.region_id ?? e.region ?? undefined;
  const matches = endpoints.filter(
    (e) => e.interface === iface && typeof e.url === 'string' && (region === undefined || regionOf(e) === region || e.region === region),
  );
  const chosen = matches[0];
  if (chosen !== undefined) {
    const r = regionOf(chosen);
    return r === undefined || r === null ? { url: chosen.url! } : { url: chosen.url!, region: r };
  }
  if (endpoints.length === 0) {
    const types = [...new Set(entries.map((e) => e?.type).filter((t): t is string => typeof t === 'string'))];
    throw new StoreError(
      StoreErrorCode.InvalidArgument,
      `the Keystone catalog has no object-store service (services: ${types.length > 0 ? types.join(', ') : 'none'}); give the storage URL explicitly`,
      { op: 'auth' },
    );
  }
  const byRegion = new Map<string, Set<string>>();
  for (const e of endpoints) {
    const r = regionOf(e) ?? '(no region)';
    if (!byRegion.has(r)) byRegion.set(r, new Set());
    if (typeof e.interface === 'string') byRegion.get(r)!.add(e.interface);
  }
  const available = [...byRegion].map(([r, ifaces]) => `${r} (${[...ifaces].join(', ')})`).join('; ');
  const wanted = region === undefined ? `interface "${iface}"` : `region "${region}" and interface "${iface}"`;
  throw new StoreError(StoreErrorCode.InvalidArgument, `no object-store endpoint for ${wanted} in the Keystone catalog; available: ${available}`, {
    op: 'auth',
  });
}

export class SwiftAuth {
  /** Where and as whom, for descriptions: no secrets. */
  readonly identity: string;
  readonly authUrl: string | undefined;
  /** How many authentication requests were made (for tests and metrics). */
  authentications = 0;

  private readonly settings: SwiftAuthSettings;
  private readonly storageUrlOverride: string | undefined;
  private readonly dispatcher: Dispatcher;
  private readonly timeoutMs: number;
  private readonly refreshMarginMs: number;
  private readonly logger: SwiftLogger;
  private readonly now: () => number;
  private current: SwiftSession | undefined;
  private inflight: Promise<SwiftSession> | undefined;
  private backgroundFailedAt = -Infinity;
  private closed = false;

  constructor(options: SwiftAuthOptions) {
    this.settings = options.settings;
    this.dispatcher = options.dispatcher;
    this.timeoutMs = options.timeoutMs;
    this.refreshMarginMs = options.refreshMarginMs ?? 60_000;
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    this.identity = describeIdentity(options.settings);
    if (options.storageUrl !== undefined) {
      checkUrl(options.storageUrl, 'the storage URL');
      this.storageUrlOverride = trimSlash(options.storageUrl);
    }
    if (this.settings.type === 'token') {
      if (this.storageUrlOverride === undefined) {
        throw new StoreError(StoreErrorCode.InvalidArgument, 'a pre-issued token needs an explicit storage URL', { op: 'auth' });
      }
      this.authUrl = undefined;
      this.current = { token: this.settings.token, storageUrl: this.storageUrlOverride };
    } else {
      checkUrl(this.settings.authUrl, 'the auth URL');
      this.authUrl = safeUrl(this.settings.authUrl);
      if (this.settings.type === 'keystone') keystoneRequestBody(this.settings); // fail early on incomplete settings
    }
  }

  /** A valid session: the cached one, or a fresh one (one shared authentication for concurrent callers). */
  async session(signal?: AbortSignal): Promise<SwiftSession> {
    const current = this.current;
    if (current !== undefined) {
      if (current.expiresAt === undefined) return current;
      const remaining = current.expiresAt - this.now();
      if (remaining > this.marginFor(current) ) return current;
      if (remaining > EXPIRY_SKEW_MS) {
        // Close to expiry but still valid: refresh in the background, keep using this one meanwhile.
        if (this.inflight === undefined && this.now() - this.backgroundFailedAt >= BACKGROUND_RETRY_MS) {
          this.refresh().catch((err: unknown) => {
            this.backgroundFailedAt = this.now();
            this.logger.warn({ err: errorSummary(err), authUrl: this.authUrl }, 'swift: background token refresh failed');
          });
        }
        return current;
      }
    }
    return raceSignal(this.refresh(), signal);
  }

  /**
   * Called after the storage rejected `rejected` with 401: authenticates again unless someone already did, and
   * returns the new session. A pre-issued token cannot be renewed: Auth.
   */
  async renew(rejected: SwiftSession, signal?: AbortSignal): Promise<SwiftSession> {
    if (this.settings.type === 'token') {
      throw new StoreError(StoreErrorCode.Auth, 'the storage rejected the pre-issued token (401) and it cannot be renewed', { op: 'auth', status: 401 });
    }
    const current = this.current;
    if (current !== undefined && current.token !== rejected.token) return current;
    if (current !== undefined) this.current = undefined;
    return raceSignal(this.refresh(), signal);
  }

  /** Forgets the session; later calls fail. */
  close(): void {
    this.closed = true;
    this.current = undefined;
  }

  private marginFor(session: SwiftSession): number {
    if (session.expiresAt === undefined) return 0;
    const lifetime = session.expiresAt - (session as SessionWithIssue).issuedAt!;
    return Math.max(0, Math.min(this.refreshMarginMs, lifetime / 4));
  }

  private refresh(): Promise<SwiftSession> {
    if (this.inflight !== undefined) return this.inflight;
    const started = this.authenticate().then(
      (session) => {
        if (!this.closed) this.current = session;
        return session;
      },
    );
    this.inflight = started.finally(() => {
      if (this.inflight === wrapped) this.inflight = undefined;
    });
    const wrapped = this.inflight;
    return wrapped;
  }

  private async authenticate(): Promise<SessionWithIssue> {
    if (this.closed) throw new StoreError(StoreErrorCode.Internal, 'the swift store is closed', { op: 'auth' });
    this.authentications++;
    const settings = this.settings;
    const signal = AbortSignal.timeout(this.timeoutMs);
    const started = this.now();
    let session: SessionWithIssue;
    try {
      if (settings.type === 'tempauth') session = await this.tempAuth(settings, signal);
      else if (settings.type === 'keystone') session = await this.keystone(settings, signal);
      else throw new StoreError(StoreErrorCode.Auth, 'a pre-issued token cannot be renewed', { op: 'auth' });
    } catch (err) {
      const error = this.authFailure(err, signal);
      this.logger.warn({ authUrl: this.authUrl, identity: this.identity, code: error.code }, 'swift: authentication failed');
      throw error;
    }
    this.logger.debug(
      { authUrl: this.authUrl, identity: this.identity, ms: this.now() - started, expiresInS: session.expiresAt === undefined ? undefined : Math.round((session.expiresAt - this.now()) / 1000) },
      'swift: authenticated',
    );
    return session;
  }

  /** Classifies an authentication failure; never lets a secret through. */
  private authFailure(err: unknown, signal: AbortSignal): StoreError {
    const where = `authentication at ${this.authUrl ?? '?'}`;
    let error: StoreError;
    if (err instanceof StoreError) error = err;
    else if (signal.aborted) {
      error = new StoreError(StoreErrorCode.Timeout, `swift ${where}: no answer within ${this.timeoutMs} ms`, { op: 'auth', cause: err });
    } else error = transportError(err, { op: 'auth' }, where);
    const secrets = this.secrets();
    const message = redact(error.message, secrets);
    if (message === error.message) return error;
    return new StoreError(error.code, message, { op: 'auth', ...(error.status === undefined ? {} : { status: error.status }) });
  }

  private secrets(): (string | undefined)[] {
    const s = this.settings;
    if (s.type === 'tempauth') return [s.key];
    if (s.type === 'keystone') return [s.password, s.applicationCredentialSecret];
    return [s.token];
  }

  private async tempAuth(s: TempAuthSettings, signal: AbortSignal): Promise<SessionWithIssue> {
    const url = new URL(s.authUrl);
    const res = await this.dispatcher.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: 'GET',
      headers: { 'x-auth-user': s.user, 'x-auth-key': s.key, 'user-agent': USER_AGENT },
      signal,
    });
    const issuedAt = this.now();
    if (res.statusCode === 401 || res.statusCode === 403) {
      await discard(res.body);
      throw new StoreError(StoreErrorCode.Auth, `authentication failed for user ${s.user} at ${safeUrl(s.authUrl)} (HTTP ${res.statusCode})`, {
        op: 'auth',
        status: res.statusCode,
      });
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      const detail = redact(await readErrorText(res.body), [s.key]);
      throw statusError(res.statusCode, { op: 'auth' }, detail, `authentication at ${safeUrl(s.authUrl)}`);
    }
    await discard(res.body);
    const token = header(res.headers, 'x-auth-token') ?? header(res.headers, 'x-storage-token');
    const storageUrl = this.storageUrlOverride ?? header(res.headers, 'x-storage-url');
    if (token === undefined || token.length === 0 || storageUrl === undefined) {
      throw new StoreError(StoreErrorCode.Internal, `authentication at ${safeUrl(s.authUrl)} answered without ${token === undefined ? 'X-Auth-Token' : 'X-Storage-Url'}`, {
        op: 'auth',
      });
    }
    checkUrl(storageUrl, 'the storage URL returned by authentication');
    const expiresIn = Number(header(res.headers, 'x-auth-token-expires'));
    const session: SessionWithIssue = { token, storageUrl: trimSlash(storageUrl), issuedAt };
    if (Number.isFinite(expiresIn) && expiresIn > 0) session.expiresAt = issuedAt + expiresIn * 1000;
    return session;
  }

  private async keystone(s: KeystoneSettings, signal: AbortSignal): Promise<SessionWithIssue> {
    const tokensUrl = keystoneTokensUrl(s.authUrl);
    const url = new URL(tokensUrl);
    const secrets = [s.password, s.applicationCredentialSecret];
    const res = await this.dispatcher.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'user-agent': USER_AGENT },
      body: JSON.stringify(keystoneRequestBody(s)),
      signal,
    });
    const issuedAt = this.now();
    if (res.statusCode === 401 || res.statusCode === 403) {
      await discard(res.body);
      throw new StoreError(StoreErrorCode.Auth, `authentication failed for ${this.identity} at ${safeUrl(tokensUrl)} (HTTP ${res.statusCode})`, {
        op: 'auth',
        status: res.statusCode,
      });
    }
    if (res.statusCode === 404) {
      await discard(res.body);
      throw new StoreError(StoreErrorCode.InvalidArgument, `no Keystone v3 token API at ${safeUrl(tokensUrl)} (HTTP 404); check the auth URL`, {
        op: 'auth',
        status: 404,
      });
    }
    if (res.statusCode !== 201 && res.statusCode !== 200) {
      const detail = redact(await readErrorText(res.body), secrets);
      throw statusError(res.statusCode, { op: 'auth' }, detail, `authentication at ${safeUrl(tokensUrl)}`);
    }
    const token = header(res.headers, 'x-subject-token');
    let parsed: { token?: { expires_at?: string; catalog?: unknown } };
    try {
      parsed = (await res.body.json()) as typeof parsed;
    } catch (cause) {
      throw new StoreError(StoreErrorCode.Internal, `authentication at ${safeUrl(tokensUrl)} answered with a body that is not JSON`, { op: 'auth', cause });
    }
    if (token === undefined || token.length === 0) {
      throw new StoreError(StoreErrorCode.Internal, `authentication at ${safeUrl(tokensUrl)} answered without X-Subject-Token`, { op: 'auth' });
    }
    let storageUrl = this.storageUrlOverride;
    if (storageUrl === undefined) {
      const endpoint = selectObjectStoreEndpoint(parsed.token?.catalog, s.region, s.interface ?? 'public');
      checkUrl(endpoint.url, 'the object-store URL in the catalog');
      storageUrl = endpoint.url;
    }
    const session: SessionWithIssue = { token, storageUrl: trimSlash(storageUrl), issuedAt };
    const expiresAt = Date.parse(parsed.token?.expires_at ?? '');
    if (Number.isFinite(expiresAt)) {
      // Keystone's clock, not ours: express it as a lifetime from now.
      session.expiresAt = issuedAt + Math.max(0, expiresAt - Date.now());
    }
    return session;
  }
}

interface SessionWithIssue extends SwiftSession {
  issuedAt: number;
}

function errorSummary(err: unknown): { code?: string; message: string } {
  if (err instanceof StoreError) return { code: err.code, message: err.message };
  return { message: err instanceof Error ? err.message : String(err) };
}
