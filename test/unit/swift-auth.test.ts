/**
 * Unit tests of the Swift store's authentication (src/store/swift/auth.ts) against a fake TempAuth and a fake
 * Keystone v3 (./swift-fake-server.ts): token caching, one re-authentication on 401, wrong credentials, catalog
 * region/interface selection, application credentials, expiry refresh, shared concurrent authentication, and an
 * auth server that never answers.
 */

import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { Agent } from 'undici';
import { StoreError } from '../../src/store/errors.js';
import {
  SwiftAuth,
  keystoneRequestBody,
  keystoneTokensUrl,
  selectObjectStoreEndpoint,
  type KeystoneSettings,
} from '../../src/store/swift/auth.js';
import { createSwiftStore, type SwiftStore, type SwiftStoreOptions } from '../../src/store/swift/swift-store.js';
import { swiftOptionsFromEnv } from '../../src/store/swift/env.js';
import {
  APP_CRED_ID,
  APP_CRED_NAME,
  APP_CRED_SECRET,
  FakeSwift,
  KEYSTONE_PASSWORD,
  KEYSTONE_USER,
  TEMPAUTH_KEY,
  TEMPAUTH_USER,
} from './swift-fake-server.js';

const FAST_RETRY = { retries: 2, baseDelayMs: 5, maxDelayMs: 20, attemptTimeoutMs: 2_000 };

/** A logger that keeps every line, to check that no secret is ever logged. */
function recordingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (obj: object, msg?: string) => lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  return { lines, logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') } };
}

async function rejection(promise: Promise<unknown>): Promise<StoreError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

function assertNoSecret(err: StoreError, secrets: string[]): void {
  const seen = [err.message, String(err.stack), JSON.stringify(err), String((err as { cause?: unknown }).cause ?? '')].join('\n');
  for (const secret of secrets) assert.ok(!seen.includes(secret), `secret ${secret.slice(0, 4)}... leaked into the error`);
}

describe('swift auth: TempAuth', () => {
  let fake: FakeSwift;
  let store: SwiftStore | undefined;
  const stores: SwiftStore[] = [];
  const open = (extra: Partial<SwiftStoreOptions> = {}) => {
    const s = createSwiftStore({ auth: { type: 'tempauth', authUrl: fake.tempauthUrl, user: TEMPAUTH_USER, key: TEMPAUTH_KEY }, retry: FAST_RETRY, ...extra });
    stores.push(s);
    return s;
  };

  beforeEach(async () => {
    fake = await new FakeSwift().start();
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    store = undefined;
    await fake.stop();
  });

  it('authenticates once and reuses the token for many calls', async () => {
    store = open();
    await store.createContainer('c');
    for (let i = 0; i < 10; i++) await store.put('c', `k${i}`, Buffer.from(`v${i}`));
    const page = await store.list('c');
    assert.equal(page.objects.length, 10);
    assert.equal((await store.get('c', 'k3')).body.toString(), 'v3');
    assert.equal(fake.tempauthCount, 1);
    assert.equal(store.authentications, 1);
    // Every storage request went to the storage URL TempAuth returned.
    assert.ok(fake.requests.filter((r) => r.account !== undefined).every((r) => r.account === 'AUTH_test'));
  });

  it('re-authenticates exactly once on a 401 and then succeeds', async () => {
    store = open();
    await store.createContainer('c');
    assert.equal(fake.tempauthCount, 1);
    fake.revokeAll(); // the cached token is now rejected
    await store.put('c', 'k', Buffer.from('x'));
    assert.equal(fake.tempauthCount, 2);
    assert.equal((await store.get('c', 'k')).body.toString(), 'x');
    assert.equal(fake.tempauthCount, 2);
  });

  it('concurrent 401s share one re-authentication', async () => {
    store = open();
    await store.createContainer('c');
    fake.revokeAll();
    fake.authDelayMs = 50;
    await Promise.all(Array.from({ length: 12 }, (_, i) => store!.put('c', `k${i}`, Buffer.from('y'))));
    assert.equal(fake.tempauthCount, 2);
  });

  it('a second 401 after the re-authentication is an Auth error (and no endless loop)', async () => {
    const { lines, logger } = recordingLogger();
    store = open({ logger });
    await store.createContainer('c');
    fake.rejectAllTokens = true;
    const err = await rejection(store.head('c', 'missing'));
    assert.equal(err.code, 'Auth');
    assert.equal(err.status, 401);
    assert.equal(fake.tempauthCount, 2, 'one initial authentication and exactly one renewal');
    const tokens = [...fake.validTokens];
    assert.ok(tokens.length >= 1);
    assertNoSecret(err, [...tokens, TEMPAUTH_KEY]);
    for (const line of lines) for (const secret of [...tokens, TEMPAUTH_KEY]) assert.ok(!line.includes(secret), 'a secret reached the log');
  });

  it('wrong credentials: Auth error naming the user and URL, never the key', async () => {
    const wrongKey = 'not-the-right-key-987';
    const s = createSwiftStore({ auth: { type: 'tempauth', authUrl: fake.tempauthUrl, user: TEMPAUTH_USER, key: wrongKey }, retry: FAST_RETRY });
    stores.push(s);
    const err = await rejection(s.head('c', 'k'));
    assert.equal(err.code, 'Auth');
    assert.match(err.message, /authentication failed for user test:tester at http:\/\/127\.0\.0\.1:\d+\/auth\/v1\.0/);
    assertNoSecret(err, [wrongKey]);
    assert.equal(fake.tempauthCount, 1, 'Auth is not retried');
  });

  it('refreshes a token after it expires', async () => {
    fake.tempauthExpiresS = 1;
    store = open();
    await store.createContainer('c');
    await store.head('c', 'missing').catch(() => {});
    assert.equal(fake.tempauthCount, 1);
    await new Promise((r) => setTimeout(r, 1_100));
    await store.put('c', 'k', Buffer.from('z'));
    assert.equal(fake.tempauthCount, 2);
  });

  it('concurrent first calls share one authentication', async () => {
    fake.authDelayMs = 100;
    store = open();
    await Promise.all(Array.from({ length: 20 }, (_, i) => store!.createContainer(`c${i}`)));
    assert.equal(fake.tempauthCount, 1);
  });

  it('an auth server that never answers gives Timeout within the deadline', async () => {
    fake.hangAuth = true;
    const s = open({ retry: { retries: 1, baseDelayMs: 10, maxDelayMs: 10, attemptTimeoutMs: 300 } });
    const started = Date.now();
    const err = await rejection(s.head('c', 'k'));
    const elapsed = Date.now() - started;
    assert.equal(err.code, 'Timeout');
    assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
    assert.ok(elapsed >= 250, `gave up too early (${elapsed} ms)`);
  });

  it('an auth server that refuses connections gives Unavailable', async () => {
    const port = fake.port;
    await fake.stop();
    const s = createSwiftStore({ auth: { type: 'tempauth', authUrl: `http://127.0.0.1:${port}/auth/v1.0`, user: TEMPAUTH_USER, key: TEMPAUTH_KEY }, retry: { ...FAST_RETRY, retries: 1 } });
    stores.push(s);
    const err = await rejection(s.head('c', 'k'));
    assert.equal(err.code, 'Unavailable');
    assertNoSecret(err, [TEMPAUTH_KEY]);
    fake = await new FakeSwift().start(); // for afterEach
  });

  it('a storage URL override replaces the one TempAuth returns', async () => {
    store = open({ storageUrl: `${fake.base}/v1/AUTH_other/` });
    await store.createContainer('c');
    assert.deepEqual(fake.requests.filter((r) => r.account !== undefined).map((r) => r.account), ['AUTH_other']);
  });
});

describe('swift auth: Keystone v3', () => {
  let fake: FakeSwift;
  const stores: SwiftStore[] = [];
  const keystone = (extra: Partial<KeystoneSettings> = {}): KeystoneSettings => ({
    type: 'keystone',
    authUrl: `${fake.base}/v3`,
    username: KEYSTONE_USER,
    password: KEYSTONE_PASSWORD,
    userDomainName: 'Default',
    projectName: 'proj',
    projectDomainName: 'Default',
    ...extra,
  });
  const open = (auth: KeystoneSettings, extra: Partial<SwiftStoreOptions> = {}) => {
    const s = createSwiftStore({ auth, retry: FAST_RETRY, ...extra });
    stores.push(s);
    return s;
  };
  const accountsUsed = () => [...new Set(fake.requests.filter((r) => r.account !== undefined).map((r) => r.account))];

  before(async () => {
    fake = await new FakeSwift().start();
  });
  after(async () => {
    await fake.stop();
  });
  beforeEach(() => {
    fake.requests = [];
    fake.keystoneBodies = [];
    fake.keystoneCount = 0;
    fake.keystoneLifetimeMs = 3_600_000;
    fake.rejectAllTokens = false;
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  it('password auth with project scope: body, token, default public endpoint of the first region', async () => {
    const store = open(keystone());
    await store.createContainer('c');
    await store.head('c', 'x').catch(() => {});
    assert.equal(fake.keystoneCount, 1);
    assert.deepEqual(fake.keystoneBodies[0], {
      auth: {
        identity: { methods: ['password'], password: { user: { name: KEYSTONE_USER, domain: { name: 'Default' }, password: KEYSTONE_PASSWORD } } },
        scope: { project: { name: 'proj', domain: { name: 'Default' } } },
      },
    });
    assert.deepEqual(accountsUsed(), ['AUTH_r1pub']);
  });

  it('accepts the auth URL without /v3', async () => {
    const store = open(keystone({ authUrl: `${fake.base}/` }));
    await store.createContainer('c');
    assert.equal(fake.keystoneCount, 1);
    assert.equal(keystoneTokensUrl('http://k:5000'), 'http://k:5000/v3/auth/tokens');
    assert.equal(keystoneTokensUrl('http://k:5000/identity/v3/'), 'http://k:5000/identity/v3/auth/tokens');
  });

  it('selects the endpoint by region and interface', async () => {
    await open(keystone({ region: 'RegionTwo' })).createContainer('c');
    assert.deepEqual(accountsUsed(), ['AUTH_r2pub']);
    fake.requests = [];
    await open(keystone({ region: 'RegionOne', interface: 'internal' })).createContainer('c');
    assert.deepEqual(accountsUsed(), ['AUTH_r1int']);
    fake.requests = [];
    await open(keystone({ region: 'RegionTwo', interface: 'admin' })).createContainer('c');
    assert.deepEqual(accountsUsed(), ['AUTH_r2adm']);
  });

  it('an unknown region or interface fails clearly, listing what the catalog offers', async () => {
    const err = await rejection(open(keystone({ region: 'RegionThree' })).createContainer('c'));
    assert.equal(err.code, 'InvalidArgument');
    assert.match(err.message, /region "RegionThree"/);
    assert.match(err.message, /RegionOne \(public, internal\)/);
    assert.match(err.message, /RegionTwo \(public, admin\)/);
    const err2 = await rejection(open(keystone({ region: 'RegionOne', interface: 'admin' })).createContainer('c'));
    assert.equal(err2.code, 'InvalidArgument');
    assert.match(err2.message, /interface "admin"/);
    // Pure function too: a catalog without object-store.
    assert.throws(() => selectObjectStoreEndpoint([{ type: 'identity', endpoints: [] }], undefined, 'public'), /no object-store service \(services: identity\)/);
  });

  it('application credential by id: the body has no scope and no password', async () => {
    const store = open({ type: 'keystone', authUrl: `${fake.base}/v3`, applicationCredentialId: APP_CRED_ID, applicationCredentialSecret: APP_CRED_SECRET });
    await store.createContainer('c');
    assert.deepEqual(fake.keystoneBodies[0], {
      auth: { identity: { methods: ['application_credential'], application_credential: { id: APP_CRED_ID, secret: APP_CRED_SECRET } } },
    });
  });

  it('application credential by name with its user', async () => {
    const store = open({
      type: 'keystone',
      authUrl: `${fake.base}/v3`,
      applicationCredentialName: APP_CRED_NAME,
      username: KEYSTONE_USER,
      userDomainName: 'users',
      applicationCredentialSecret: APP_CRED_SECRET,
    });
    await store.createContainer('c');
    assert.deepEqual(fake.keystoneBodies[0], {
      auth: {
        identity: {
          methods: ['application_credential'],
          application_credential: { name: APP_CRED_NAME, secret: APP_CRED_SECRET, user: { name: KEYSTONE_USER, domain: { name: 'users' } } },
        },
      },
    });
    assert.throws(
      () => keystoneRequestBody({ type: 'keystone', authUrl: 'http://x', applicationCredentialName: 'n', applicationCredentialSecret: 's' }),
      /needs username/,
    );
  });

  it('wrong password: Auth error naming the user, not the password', async () => {
    const wrong = 'a-wrong-password-xyz';
    const err = await rejection(open(keystone({ password: wrong })).createContainer('c'));
    assert.equal(err.code, 'Auth');
    assert.match(err.message, /authentication failed for user alice \(domain Default\) at http:\/\/127\.0\.0\.1:\d+\/v3\/auth\/tokens/);
    assertNoSecret(err, [wrong]);
    const err2 = await rejection(open({ type: 'keystone', authUrl: `${fake.base}/v3`, applicationCredentialId: APP_CRED_ID, applicationCredentialSecret: 'bad-secret-123' }).createContainer('c'));
    assert.equal(err2.code, 'Auth');
    assert.match(err2.message, new RegExp(`application credential ${APP_CRED_ID}`));
    assertNoSecret(err2, ['bad-secret-123']);
  });

  it('refreshes proactively before expiry, in the background, keeping the old token meanwhile', async () => {
    let now = 1_000_000;
    const agent = new Agent();
    try {
      const auth = new SwiftAuth({ settings: keystone(), dispatcher: agent, timeoutMs: 2_000, refreshMarginMs: 60_000, now: () => now });
      const first = await auth.session();
      assert.equal(fake.keystoneCount, 1);
      now += 10 * 60_000;
      assert.equal((await auth.session()).token, first.token, 'well before expiry: cached');
      assert.equal(fake.keystoneCount, 1);
      // Keystone issued one hour; 30 s before expiry we are inside the 60 s margin but the token is still valid.
      now = 1_000_000 + 3_600_000 - 30_000;
      const during = await auth.session();
      assert.equal(during.token, first.token, 'the still-valid token is used while the refresh runs');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(fake.keystoneCount, 2);
      const renewed = await auth.session();
      assert.notEqual(renewed.token, first.token);
      // Past the expiry of a token: the caller waits for a fresh one.
      now += 3_600_000 + 1_000;
      const later = await auth.session();
      assert.equal(fake.keystoneCount, 3);
      assert.notEqual(later.token, renewed.token);
    } finally {
      await agent.close();
    }
  });

  it('a storage call after the token expired authenticates again (short-lived token)', async () => {
    fake.keystoneLifetimeMs = 2_500; // the refresh margin is a quarter of it
    const store = open(keystone());
    await store.createContainer('c');
    assert.equal(fake.keystoneCount, 1);
    await new Promise((r) => setTimeout(r, 2_600));
    await store.createContainer('c');
    assert.equal(fake.keystoneCount, 2);
  });

  it('a pre-issued token with a storage URL: no authentication; a 401 is Auth', async () => {
    const token = [...fake.validTokens][0] ?? 'none';
    const store = open({ type: 'token', token } as never, { storageUrl: `${fake.base}/v1/AUTH_tok` });
    stores.push(store);
    await store.createContainer('c');
    assert.equal(fake.keystoneCount, 0);
    assert.deepEqual(accountsUsed(), ['AUTH_tok']);
    fake.rejectAllTokens = true;
    const err = await rejection(store.createContainer('c'));
    assert.equal(err.code, 'Auth');
    assertNoSecret(err, [token]);
    assert.throws(() => createSwiftStore({ auth: { type: 'token', token: 'x' } }), /needs an explicit storage URL/);
  });
});

describe('swift auth: options from the environment', () => {
  it('reads TempAuth with a prefix and suffix', () => {
    const opts = swiftOptionsFromEnv({ SWIFTFS_TEST_ST_AUTH_B: 'http://h/auth/v1.0', SWIFTFS_TEST_ST_USER_B: 'a:b', SWIFTFS_TEST_ST_KEY_B: 'k' }, { prefix: 'SWIFTFS_TEST_', suffix: '_B' });
    assert.deepEqual(opts, { auth: { type: 'tempauth', authUrl: 'http://h/auth/v1.0', user: 'a:b', key: 'k' } });
  });
  it('reads Keystone in the OS_* spellings', () => {
    const opts = swiftOptionsFromEnv({
      OS_AUTH_URL: 'https://k:5000/v3',
      OS_USERNAME: 'u',
      OS_PASSWORD: 'p',
      OS_PROJECT_NAME: 'pr',
      OS_USER_DOMAIN_NAME: 'd',
      OS_REGION_NAME: 'R2',
      OS_ENDPOINT_TYPE: 'internalURL',
      OS_STORAGE_URL: 'https://s/v1/AUTH_x',
    });
    assert.deepEqual(opts, {
      auth: { type: 'keystone', authUrl: 'https://k:5000/v3', username: 'u', password: 'p', projectName: 'pr', userDomainName: 'd', region: 'R2', interface: 'internal' },
      storageUrl: 'https://s/v1/AUTH_x',
    });
    assert.equal(swiftOptionsFromEnv({}), undefined);
    assert.throws(() => swiftOptionsFromEnv({ ST_AUTH: 'http://x' }), /ST_USER/);
  });
});
