/**
 * From configuration to ObjectStore: the options handed to the Swift and S3 stores, descriptions without
 * secrets, shared in-process memory stores, and errors for missing or incomplete stores.
 */

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, type S3StoreConfig, type SwiftStoreConfig } from '../../src/config/load.js';
import { describeStore, openStore, resetMemoryStores, s3StoreOptions, swiftStoreOptions } from '../../src/store/open.js';

const dir = mkdtempSync(join(tmpdir(), 'swiftfs-open-test-'));
const file = join(dir, 'stores.yaml');
writeFileSync(
  file,
  `stores:
  ta:  { type: swift, auth: tempauth, auth-url: "http://127.0.0.1:1/auth/v1.0", user: "test:tester", key: ta-key-secret, retries: 2, request-timeout: 5s, connections: 8 }
  ks:  { type: swift, auth: keystone, auth-url: "https://k.example/v3", username: demo, user-domain-name: Default, password: ks-pw-secret, project-name: vols, project-domain-id: default, region: RegionTwo, interface: internal, storage-url: "https://s.example/v1/AUTH_p" }
  ac:  { type: swift, auth: keystone, auth-url: "https://k.example/v3", application-credential-id: ac-id, application-credential-secret: ac-secret-x }
  tok: { type: swift, auth: token, storage-url: "http://s.example/v1/AUTH_t", auth-token: tok-secret-x }
  s3:  { type: s3, endpoint: "http://127.0.0.1:1", access-key-id: "test:tester", secret-access-key: s3-secret-x, session-token: s3-session-x, region: eu-west-1 }
  aws: { type: s3, access-key-id: AKIAEXAMPLE, secret-access-key: aws-secret-x, force-path-style: false }
  m:   { type: memory }
  broken: { type: swift, auth: tempauth, auth-url: "http://x/auth/v1.0", user: "a:b" }
default-store: m
`,
);
chmodSync(file, 0o600);
const config = loadConfig({ env: {}, configFile: file });
const SECRETS = ['ta-key-secret', 'ks-pw-secret', 'ac-secret-x', 'tok-secret-x', 's3-secret-x', 's3-session-x', 'aws-secret-x'];

describe('store options from the configuration', () => {
  it('TempAuth, with the tuning', () => {
    const options = swiftStoreOptions(config.stores['ta'] as SwiftStoreConfig);
    assert.deepEqual(options.auth, { type: 'tempauth', authUrl: 'http://127.0.0.1:1/auth/v1.0', user: 'test:tester', key: 'ta-key-secret' });
    assert.equal(options.requestTimeoutMs, 5000);
    assert.deepEqual(options.retry, { retries: 2 });
    assert.equal(options.connections, 8);
    assert.equal(options.storageUrl, undefined);
  });

  it('Keystone password and application credential, region and interface', () => {
    const ks = swiftStoreOptions(config.stores['ks'] as SwiftStoreConfig);
    assert.deepEqual(ks.auth, {
      type: 'keystone',
      authUrl: 'https://k.example/v3',
      interface: 'internal',
      username: 'demo',
      userDomainName: 'Default',
      password: 'ks-pw-secret',
      projectName: 'vols',
      projectDomainId: 'default',
      region: 'RegionTwo',
    });
    assert.equal(ks.storageUrl, 'https://s.example/v1/AUTH_p');
    assert.deepEqual(swiftStoreOptions(config.stores['ac'] as SwiftStoreConfig).auth, {
      type: 'keystone',
      authUrl: 'https://k.example/v3',
      interface: 'public',
      applicationCredentialId: 'ac-id',
      applicationCredentialSecret: 'ac-secret-x',
    });
  });

  it('pre-issued token with its storage URL', () => {
    const options = swiftStoreOptions(config.stores['tok'] as SwiftStoreConfig);
    assert.deepEqual(options.auth, { type: 'token', token: 'tok-secret-x' });
    assert.equal(options.storageUrl, 'http://s.example/v1/AUTH_t');
  });

  it('S3 with an endpoint, and AWS', () => {
    const s3 = s3StoreOptions(config.stores['s3'] as S3StoreConfig);
    assert.equal(s3.endpoint, 'http://127.0.0.1:1');
    assert.equal(s3.region, 'eu-west-1');
    assert.equal(s3.accessKeyId, 'test:tester');
    assert.equal(s3.secretAccessKey, 's3-secret-x');
    assert.equal(s3.sessionToken, 's3-session-x');
    assert.equal(s3.forcePathStyle, undefined);
    assert.equal(s3.requestTimeoutMs, 30_000);
    const aws = s3StoreOptions(config.stores['aws'] as S3StoreConfig);
    assert.equal(aws.endpoint, undefined);
    assert.equal(aws.region, 'us-east-1');
    assert.equal(aws.forcePathStyle, false);
  });
});

describe('describeStore', () => {
  it('says what each store is without any secret', () => {
    const lines = Object.values(config.stores).map(describeStore);
    const text = lines.join('\n');
    for (const secret of SECRETS) assert.ok(!text.includes(secret), `${secret} in ${text}`);
    assert.match(text, /^ta: swift tempauth test:tester at http:\/\/127\.0\.0\.1:1\/auth\/v1\.0$/m);
    assert.match(text, /^ks: swift keystone user demo project vols at https:\/\/k\.example\/v3, internal endpoint, storage https:\/\/s\.example\/v1\/AUTH_p, region RegionTwo$/m);
    assert.match(text, /^ac: swift keystone application credential ac-id/m);
    assert.match(text, /^tok: swift pre-issued token/m);
    assert.match(text, /^s3: s3 http:\/\/127\.0\.0\.1:1\/ \(access key test:tester, session token, region eu-west-1\)$/m);
    assert.match(text, /^aws: s3 AWS/m);
    assert.match(text, /^m: memory/m);
  });
});

describe('openStore', () => {
  it('opens the default store, by name, or by region; memory stores are shared in the process', async () => {
    resetMemoryStores();
    const a = await openStore(config);
    const b = await openStore(config, 'm');
    await a.createContainer('shared');
    await a.put('shared', 'k', Buffer.from('hello'));
    assert.equal((await b.get('shared', 'k')).body.toString(), 'hello');
    await a.close();
    assert.equal((await b.get('shared', 'k')).body.toString(), 'hello', 'closing one handle leaves the shared store open');
    assert.equal((await b.capabilities()).kind, 'memory');
  });

  it('creates Swift and S3 stores without contacting them, described without secrets', async () => {
    for (const name of ['ta', 'ks', 'tok', 's3', 'RegionTwo']) {
      const store = await openStore(config, name);
      assert.equal(typeof store.description, 'string');
      for (const secret of SECRETS) assert.ok(!store.description.includes(secret), `${name}: ${store.description}`);
      await store.close();
    }
  });

  it('refuses a missing or incomplete store with a ConfigError', async () => {
    await assert.rejects(() => openStore(config, 'nope'), (err: unknown) => err instanceof ConfigError && /no store or region named "nope"/.test(err.message));
    await assert.rejects(() => openStore(config, 'broken'), (err: unknown) => err instanceof ConfigError && /store broken: swift tempauth store needs key/.test(err.message));
    await assert.rejects(() => openStore(loadConfig({ env: {} })), (err: unknown) => err instanceof ConfigError && /no store is configured/.test(err.message));
  });
});
