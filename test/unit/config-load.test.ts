/**
 * Loading the configuration: precedence (defaults ← file ← env ← flags ← per-volume), the OpenStack and AWS
 * variables defining the store `default`, a config file with several stores (YAML and JSON), clear errors
 * for bad values, lazy store problems, and the permission warning for a config file with secrets.
 */

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, resolveVolumeOptions, type Config, type S3StoreConfig, type SwiftStoreConfig } from '../../src/config/load.js';
import { resolveStoreName, storeConfig } from '../../src/config/resolve.js';

const dir = mkdtempSync(join(tmpdir(), 'swiftfs-config-test-'));
let fileCount = 0;
function configFile(text: string, extension = 'yaml', mode = 0o600): string {
  const path = join(dir, `config-${++fileCount}.${extension}`);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

const TEMPAUTH_ENV = { ST_AUTH: 'http://127.0.0.1:8080/auth/v1.0', ST_USER: 'test:tester', ST_KEY: 'testing' };

function swift(config: Config, name: string): SwiftStoreConfig {
  const store = storeConfig(config, name);
  assert.equal(store.kind, 'swift');
  return store as SwiftStoreConfig;
}

const MULTI = `
stores:
  home: { type: swift, auth: tempauth, auth-url: "http://a.example:8080/auth/v1.0", user: "acct:me", key: k3y-home, region: A }
  dr:   { type: swift, auth: keystone, auth-url: "https://keystone.example:5000/v3", username: demo, password: pw-dr-secret, project-name: vols, user-domain-name: Default, region: RegionTwo }
  s3a:  { type: s3, endpoint: "http://127.0.0.1:8080", access-key-id: "test:tester", secret-access-key: s3-secret-x }
default-store: home
retries: 6
volumes:
  defaults: { block-size: 1M, fsync: local, umask: 022 }
`;

describe('precedence', () => {
  it('uses the table defaults with nothing given', () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.volume.blockSize, 4 * 1024 * 1024);
    assert.equal(config.volume.fsync, 'remote');
    assert.equal(config.volume.commitInterval, 1000);
    assert.equal(config.volume.cacheDir, '/var/cache/swiftfs');
    assert.equal(config.global.logLevel, 'info');
    assert.deepEqual(config.stores, {});
    assert.equal(config.defaultStore, undefined);
    assert.equal(config.settings.volume['block-size']?.origin, 'default');
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.volume) && Object.isFrozen(config.settings.volume));
  });

  it('file over default, env over file, flag over env, per-volume over all', () => {
    const file = configFile('volumes:\n  defaults:\n    block-size: 1M\n    commit-interval: 2s\n    fsync: local\n    read-only: yes\n');
    const onlyFile = loadConfig({ env: {}, configFile: file });
    assert.equal(onlyFile.volume.blockSize, 1024 * 1024);
    assert.equal(onlyFile.volume.commitInterval, 2000);
    assert.equal(onlyFile.volume.readOnly, true);
    assert.match(onlyFile.settings.volume['block-size']!.origin, /^file .*config-\d+\.yaml \(volumes\.defaults\)$/);

    const env = { SWIFTFS_CONFIG: file, SWIFTFS_BLOCK_SIZE: '2M', SWIFTFS_COMMIT_INTERVAL: '3s' };
    const withEnv = loadConfig({ env });
    assert.equal(withEnv.volume.blockSize, 2 * 1024 * 1024);
    assert.equal(withEnv.volume.commitInterval, 3000);
    assert.equal(withEnv.volume.fsync, 'local', 'file value kept where env says nothing');
    assert.equal(withEnv.settings.volume['block-size']!.origin, 'env SWIFTFS_BLOCK_SIZE');

    // commander gives camelCase keys; a --no-read-only flag gives false.
    const withFlags = loadConfig({ env, flags: { blockSize: '8M', readOnly: false, unrelated: 'x' } });
    assert.equal(withFlags.volume.blockSize, 8 * 1024 * 1024);
    assert.equal(withFlags.volume.readOnly, false);
    assert.equal(withFlags.volume.commitInterval, 3000);
    assert.equal(withFlags.settings.volume['block-size']!.origin, 'flag --block-size');

    const perVolume = resolveVolumeOptions(withFlags, { 'block-size': '16M', 'read-only': '' });
    assert.equal(perVolume.blockSize, 16 * 1024 * 1024);
    assert.equal(perVolume.readOnly, true, 'a bare -o read-only means true');
    assert.equal(perVolume.commitInterval, 3000);
  });

  it('relative paths in a file are relative to the file; in env and flags, to the working directory', () => {
    const file = configFile('socket: run/plugin.sock\nvolumes: { defaults: { cache-dir: cache } }\n');
    const config = loadConfig({ env: {}, configFile: file, cwd: '/somewhere' });
    assert.equal(config.volume.cacheDir, join(dir, 'cache'));
    assert.equal(config.plugin.socket, join(dir, 'run/plugin.sock'));
    assert.equal(loadConfig({ env: { SWIFTFS_CACHE_DIR: 'c2' }, cwd: '/somewhere' }).volume.cacheDir, '/somewhere/c2');
    assert.equal(loadConfig({ env: {}, flags: { cacheDir: 'c3' }, cwd: '/elsewhere' }).volume.cacheDir, '/elsewhere/c3');
  });

  it('an explicit --config beats SWIFTFS_CONFIG', () => {
    const a = configFile('volumes: { defaults: { block-size: 1M } }\n');
    const b = configFile('volumes: { defaults: { block-size: 2M } }\n');
    assert.equal(loadConfig({ env: { SWIFTFS_CONFIG: a }, flags: { config: b } }).volume.blockSize, 2 * 1024 * 1024);
    assert.equal(loadConfig({ env: { SWIFTFS_CONFIG: a } }).configFile, a);
  });

  it('store tuning: store file value over top-level file value; env and flags over both', () => {
    const file = configFile('retries: 6\nstores:\n  a: { type: memory, retries: 2 }\n  b: { type: memory }\n');
    const fromFile = loadConfig({ env: {}, configFile: file });
    assert.equal(fromFile.stores['a']!.retries, 2);
    assert.equal(fromFile.stores['b']!.retries, 6);
    const fromEnv = loadConfig({ env: { SWIFTFS_RETRIES: '9' }, configFile: file });
    assert.equal(fromEnv.stores['a']!.retries, 9);
    assert.equal(fromEnv.stores['b']!.retries, 9);
    const fromFlag = loadConfig({ env: { SWIFTFS_RETRIES: '9' }, configFile: file, flags: { retries: '1', requestTimeout: '5s' } });
    assert.equal(fromFlag.stores['a']!.retries, 1);
    assert.equal(fromFlag.stores['b']!.requestTimeout, 5000);
  });

  it('the volumes\' log level follows the process level unless volumes.defaults sets one', () => {
    assert.equal(loadConfig({ env: { SWIFTFS_LOG_LEVEL: 'debug' } }).volume.logLevel, 'debug');
    const file = configFile('log-level: warn\nvolumes: { defaults: { log-level: error } }\n');
    const config = loadConfig({ env: {}, configFile: file });
    assert.equal(config.global.logLevel, 'warn');
    assert.equal(config.volume.logLevel, 'error');
    assert.equal(loadConfig({ env: {}, configFile: file, flags: { logLevel: 'trace' } }).volume.logLevel, 'trace');
  });
});

describe('stores from the environment', () => {
  it('ST_* define a TempAuth store named default', () => {
    const config = loadConfig({ env: TEMPAUTH_ENV });
    assert.equal(config.defaultStore, 'default');
    const store = swift(config, 'default');
    assert.deepEqual(store.auth, { type: 'tempauth', authUrl: TEMPAUTH_ENV.ST_AUTH, user: 'test:tester', key: 'testing' });
    assert.equal(store.requestTimeout, 30_000);
    assert.equal(store.retries, 4);
    assert.equal(config.settings.stores['default']!['key']!.origin, 'env ST_KEY');
  });

  it('OS_* define a Keystone v3 store, with region, interface, storage URL and project', () => {
    const config = loadConfig({
      env: {
        OS_AUTH_URL: 'https://keystone.example:5000/v3',
        OS_USERNAME: 'demo',
        OS_USER_DOMAIN_NAME: 'Default',
        OS_PASSWORD: 'hunter22',
        OS_PROJECT_NAME: 'vols',
        OS_PROJECT_DOMAIN_ID: 'default',
        OS_REGION_NAME: 'RegionTwo',
        OS_INTERFACE: 'internal',
        OS_STORAGE_URL: 'https://swift.example/v1/AUTH_x',
        AWS_REGION: 'eu-west-1', // not for a swift store
      },
    });
    const store = swift(config, 'default');
    assert.equal(store.region, 'RegionTwo');
    assert.equal(store.storageUrl, 'https://swift.example/v1/AUTH_x');
    assert.equal(store.auth.type, 'keystone');
    if (store.auth.type !== 'keystone') return;
    assert.equal(store.auth.authUrl, 'https://keystone.example:5000/v3');
    assert.equal(store.auth.username, 'demo');
    assert.equal(store.auth.userDomainName, 'Default');
    assert.equal(store.auth.password, 'hunter22');
    assert.equal(store.auth.projectName, 'vols');
    assert.equal(store.auth.projectDomainId, 'default');
    assert.equal(store.auth.interface, 'internal');
  });

  it('OS_* with an application credential, and OS_ENDPOINT_TYPE spellings', () => {
    const config = loadConfig({
      env: { OS_AUTH_URL: 'https://k/v3', OS_APPLICATION_CREDENTIAL_ID: 'ac1', OS_APPLICATION_CREDENTIAL_SECRET: 'acsecret', OS_ENDPOINT_TYPE: 'internalURL' },
    });
    const store = swift(config, 'default');
    assert.ok(store.auth.type === 'keystone' && store.auth.applicationCredentialId === 'ac1' && store.auth.applicationCredentialSecret === 'acsecret');
    assert.ok(store.auth.type === 'keystone' && store.auth.interface === 'internal');
  });

  it('OS_AUTH_TOKEN with OS_STORAGE_URL is a pre-issued token store', () => {
    const config = loadConfig({ env: { OS_STORAGE_URL: 'http://s/v1/AUTH_t', OS_AUTH_TOKEN: 'tok-12345' } });
    const store = swift(config, 'default');
    assert.deepEqual(store.auth, { type: 'token', token: 'tok-12345' });
    assert.equal(store.storageUrl, 'http://s/v1/AUTH_t');
  });

  it('both ST_AUTH and OS_AUTH_URL: decided by which credentials are set, else SWIFTFS_AUTH is asked for', () => {
    const both = { ...TEMPAUTH_ENV, OS_AUTH_URL: 'https://k/v3' };
    assert.equal(swift(loadConfig({ env: both }), 'default').auth.type, 'tempauth');
    const ambiguous = { ...both, OS_PASSWORD: 'p', OS_USERNAME: 'u', OS_PROJECT_ID: 'x' };
    const config = loadConfig({ env: ambiguous });
    assert.match(config.storeProblems['default']!, /SWIFTFS_AUTH/);
    assert.throws(() => storeConfig(config, 'default'), /SWIFTFS_AUTH/);
    const chosen = loadConfig({ env: { ...ambiguous, SWIFTFS_AUTH: 'keystone' } });
    const store = swift(chosen, 'default');
    assert.ok(store.auth.type === 'keystone' && store.auth.authUrl === 'https://k/v3', 'the keystone URL, not ST_AUTH');
  });

  it('AWS_* define an S3 store; AWS_ENDPOINT_URL_S3 beats AWS_ENDPOINT_URL; AWS_REGION beats AWS_DEFAULT_REGION', () => {
    const config = loadConfig({
      env: {
        AWS_ACCESS_KEY_ID: 'test:tester',
        AWS_SECRET_ACCESS_KEY: 'testing',
        AWS_SESSION_TOKEN: 'sess-token',
        AWS_ENDPOINT_URL: 'http://generic.example',
        AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:8080',
        AWS_REGION: 'eu-west-1',
        AWS_DEFAULT_REGION: 'us-west-2',
        OS_REGION_NAME: 'RegionTwo', // not for an s3 store
      },
    });
    const store = storeConfig(config, 'default') as S3StoreConfig;
    assert.equal(store.kind, 's3');
    assert.equal(store.endpoint, 'http://127.0.0.1:8080');
    assert.equal(store.region, 'eu-west-1');
    assert.equal(store.accessKeyId, 'test:tester');
    assert.equal(store.secretAccessKey, 'testing');
    assert.equal(store.sessionToken, 'sess-token');
    assert.equal(store.forcePathStyle, undefined, 'left to the store (path style with an endpoint)');
    const fallback = loadConfig({ env: { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'bbbb', AWS_DEFAULT_REGION: 'us-west-2' } });
    assert.equal((storeConfig(fallback, 'default') as S3StoreConfig).region, 'us-west-2');
    const noRegion = loadConfig({ env: { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'bbbb' } });
    assert.equal((storeConfig(noRegion, 'default') as S3StoreConfig).region, 'us-east-1');
  });

  it('Swift variables win over AWS ones unless SWIFTFS_STORE_TYPE says s3', () => {
    const env = { ...TEMPAUTH_ENV, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'bbbb' };
    assert.equal(storeConfig(loadConfig({ env }), 'default').kind, 'swift');
    assert.equal(storeConfig(loadConfig({ env: { ...env, SWIFTFS_STORE_TYPE: 's3' } }), 'default').kind, 's3');
  });

  it('a region alone defines no store; empty variables count as unset', () => {
    assert.deepEqual(Object.keys(loadConfig({ env: { AWS_REGION: 'eu-west-1', OS_REGION_NAME: 'R' } }).stores), []);
    assert.deepEqual(Object.keys(loadConfig({ env: { ST_AUTH: '', AWS_ACCESS_KEY_ID: '' } }).stores), []);
  });

  it('an incomplete environment store is a problem reported on use, naming the missing variable', () => {
    const config = loadConfig({ env: { ST_AUTH: 'http://x/auth/v1.0', ST_USER: 'a:b' } });
    assert.deepEqual(Object.keys(config.stores), []);
    assert.match(config.storeProblems['default']!, /key \(ST_KEY\)/);
    assert.ok(config.warnings.some((w) => /ST_KEY/.test(w)));
    assert.throws(() => storeConfig(config, resolveStoreName(config)), (err: unknown) => err instanceof ConfigError && /ST_KEY/.test(err.message));
    const keystone = loadConfig({ env: { OS_AUTH_URL: 'https://k/v3', OS_USERNAME: 'u', OS_PASSWORD: 'pppp' } });
    assert.match(keystone.storeProblems['default']!, /project-name \(OS_PROJECT_NAME\)/);
  });
});

describe('config file with several stores', () => {
  for (const [format, text] of [
    ['yaml', MULTI],
    [
      'json',
      JSON.stringify({
        stores: {
          home: { type: 'swift', auth: 'tempauth', 'auth-url': 'http://a.example:8080/auth/v1.0', user: 'acct:me', key: 'k3y-home', region: 'A' },
          dr: { type: 'swift', auth: 'keystone', 'auth-url': 'https://keystone.example:5000/v3', username: 'demo', password: 'pw-dr-secret', 'project-name': 'vols', 'user-domain-name': 'Default', region: 'RegionTwo' },
          s3a: { type: 's3', endpoint: 'http://127.0.0.1:8080', 'access-key-id': 'test:tester', 'secret-access-key': 's3-secret-x' },
        },
        'default-store': 'home',
        retries: 6,
        volumes: { defaults: { 'block-size': '1M', fsync: 'local', umask: '022' } },
      }),
    ],
  ] as const) {
    it(`reads stores, default store and volume defaults (${format})`, () => {
      const config = loadConfig({ env: {}, configFile: configFile(text, format) });
      assert.deepEqual(Object.keys(config.stores).sort(), ['dr', 'home', 's3a']);
      assert.deepEqual(config.storeProblems, {});
      assert.equal(config.defaultStore, 'home');
      assert.equal(swift(config, 'home').auth.type, 'tempauth');
      assert.equal(swift(config, 'home').region, 'A');
      assert.equal(swift(config, 'dr').auth.type, 'keystone');
      assert.equal((config.stores['s3a'] as S3StoreConfig).secretAccessKey, 's3-secret-x');
      assert.equal(config.stores['home']!.retries, 6);
      assert.equal(config.volume.blockSize, 1024 * 1024);
      assert.equal(config.volume.fsync, 'local');
      assert.equal(config.volume.umask, 0o22, 'umask stays octal');
      assert.equal(config.warnings.length, 0);
    });
  }

  it('the environment adds the store `default` beside the file\'s stores, without touching them', () => {
    const config = loadConfig({ env: { ...TEMPAUTH_ENV, OS_PASSWORD: 'must-not-leak-into-dr' }, configFile: configFile(MULTI) });
    assert.deepEqual(Object.keys(config.stores).sort(), ['default', 'dr', 'home', 's3a']);
    const dr = swift(config, 'dr');
    assert.ok(dr.auth.type === 'keystone' && dr.auth.password === 'pw-dr-secret');
    assert.equal(config.defaultStore, 'home', 'default-store still wins');
  });

  it('resolves a store by name or by region', () => {
    const config = loadConfig({ env: {}, configFile: configFile(MULTI) });
    assert.equal(resolveStoreName(config, 'dr'), 'dr');
    assert.equal(resolveStoreName(config, 'RegionTwo'), 'dr');
    assert.equal(resolveStoreName(config, 'A'), 'home');
    assert.equal(resolveStoreName(config), 'home');
    assert.throws(() => resolveStoreName(config, 'Mars'), /no store or region named "Mars" \(stores: dr, home, s3a\)/);
  });

  it('several stores and no default: asks to name one', () => {
    const config = loadConfig({ env: {}, configFile: configFile('stores:\n  a: { type: memory }\n  b: { type: memory }\n') });
    assert.equal(config.defaultStore, undefined);
    assert.throws(() => resolveStoreName(config), /several stores are configured \(a, b\)/);
    assert.throws(() => resolveStoreName(loadConfig({ env: {} })), /no store is configured: .*ST_AUTH/);
  });

  it('warns when a file holding secrets is readable by others, not when it holds none', () => {
    const open = loadConfig({ env: {}, configFile: configFile(MULTI, 'yaml', 0o644) });
    assert.ok(open.warnings.some((w) => /readable by others \(mode 0644\): chmod 600/.test(w)));
    assert.equal(loadConfig({ env: {}, configFile: configFile('volumes: {defaults: {fsync: local}}\n', 'yaml', 0o644) }).warnings.length, 0);
    assert.equal(loadConfig({ env: {}, configFile: configFile(MULTI, 'yaml', 0o600) }).warnings.length, 0);
  });
});

describe('errors name the option, the value and the source', () => {
  const expectError = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
      assert.match(err.message, pattern);
      return true;
    });

  it('bad values from env, flags and file', () => {
    expectError(() => loadConfig({ env: { SWIFTFS_BLOCK_SIZE: '4X' } }), /^block-size: "4X" is not valid \(from env SWIFTFS_BLOCK_SIZE\): expected a size such as 4M/);
    expectError(() => loadConfig({ env: {}, flags: { commitInterval: '1000' } }), /^commit-interval: "1000" is not valid \(from flag --commit-interval\): expected a duration with a unit/);
    expectError(() => loadConfig({ env: { SWIFTFS_FSYNC: 'cloud' } }), /fsync: "cloud" is not valid .*one of remote, local/);
    expectError(() => loadConfig({ env: { SWIFTFS_BLOCK_SIZE: '1K' } }), /block-size: "1K" is not valid .*between 64K and 64M/);
    expectError(() => loadConfig({ env: { SWIFTFS_RETRIES: '99' } }), /retries: "99" .*between 0 and 20/);
    expectError(() => loadConfig({ env: { SWIFTFS_METRICS_LISTEN: 'localhost:99999' } }), /metrics-listen: .*HOST:PORT/);
    expectError(() => loadConfig({ env: { SWIFTFS_READ_ONLY: 'perhaps' } }), /read-only: "perhaps" .*true or false/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('volumes: {defaults: {umask: 0999}}\n') }), /umask: "0999" is not valid \(from file .*\): expected an octal number/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('stores:\n  a: { type: swift, auth-url: "ftp://x" }\n') }), /auth-url: "ftp:\/\/x" is not valid .*http/);
  });

  it('a URL with credentials in it is refused without echoing them', () => {
    assert.throws(
      () => loadConfig({ env: { ST_AUTH: 'http://user:pa55word@x/auth/v1.0', ST_USER: 'a:b', ST_KEY: 'kkkk' } }),
      (err: unknown) => err instanceof ConfigError && /without user:password/.test(err.message),
    );
  });

  it('a bad secret value is reported without the value', () => {
    const file = configFile('stores:\n  a: { type: s3, access-key-id: a, secret-access-key: [no-list] }\n');
    assert.throws(
      () => loadConfig({ env: {}, configFile: file }),
      (err: unknown) => err instanceof ConfigError && /secret-access-key: its value is not valid/.test(err.message) && !err.message.includes('no-list'),
    );
  });

  it('unknown and misplaced keys in the file, with suggestions', () => {
    expectError(() => loadConfig({ env: {}, configFile: configFile('stores:\n  a: { type: swift, pasword: x }\n') }), /stores\.a\.pasword: not a store option \(did you mean password\?\)/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('cache-size: 1G\n') }), /cache-size is a volume option: put it under volumes\.defaults/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('password: x\n') }), /password belongs to a store: put it under stores\.NAME/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('log-levle: debug\n') }), /unknown option log-levle \(did you mean log-level\?\)/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('volumes: { pg: {} }\n') }), /only volumes\.defaults/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('stores:\n  "bad name": { type: memory }\n') }), /store name "bad name"/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('- a\n- b\n') }), /expected a map of options/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('default-store: nowhere\nstores: { a: { type: memory } }\n') }), /default-store: no store named "nowhere" .*stores: a/);
  });

  it('options that do not apply to the store kind or auth are refused', () => {
    expectError(() => loadConfig({ env: {}, configFile: configFile('stores:\n  a: { type: s3, access-key-id: a, secret-access-key: bbbb, password: x }\n') }), /store a: password does not apply to a s3 store/);
    expectError(() => loadConfig({ env: {}, configFile: configFile('stores:\n  a: { type: swift, auth: tempauth, auth-url: "http://x", user: "a:b", key: kkkk, password: x }\n') }), /store a: password does not apply to Swift tempauth auth/);
  });

  it('a syntax error in YAML names the line but never quotes it (it may hold a secret)', () => {
    const file = configFile('stores:\n  a: { type: swift, key: "unclosed-secret-value\n');
    assert.throws(
      () => loadConfig({ env: {}, configFile: file }),
      (err: unknown) => err instanceof ConfigError && /not valid YAML at line \d+/.test(err.message) && !err.message.includes('unclosed-secret-value'),
    );
    const json = configFile('{"stores": {"a": {"key": "json-secret-x"}', 'json');
    assert.throws(() => loadConfig({ env: {}, configFile: json }), (err: unknown) => err instanceof ConfigError && /not valid JSON/.test(err.message) && !err.message.includes('json-secret-x'));
  });

  it('a missing config file, and cross-option rules', () => {
    expectError(() => loadConfig({ env: {}, configFile: join(dir, 'nope.yaml') }), /config file .*nope\.yaml: not found/);
    expectError(() => loadConfig({ env: { SWIFTFS_CACHE_SIZE: '32M', SWIFTFS_BLOCK_SIZE: '16M' } }), /cache-size \(32M\) must be at least 4 × block-size \(16M\)/);
    expectError(() => loadConfig({ env: { SWIFTFS_DIRTY_LIMIT: '1M' } }), /dirty-limit \(1M\) must be at least block-size \(4M\)/);
  });
});

describe('per-volume options (docker volume create -o)', () => {
  const config = loadConfig({ env: TEMPAUTH_ENV });
  it('accepts volume options and rejects the others clearly', () => {
    const options = resolveVolumeOptions(config, { fsync: 'local', 'close-sync': 'true', umask: '077', 'log-level': 'debug', 'block-size': '1M', store: 'default' });
    assert.equal(options.fsync, 'local');
    assert.equal(options.closeSync, true);
    assert.equal(options.umask, 0o77);
    assert.equal(options.logLevel, 'debug');
    assert.equal(options.store, 'default');
    assert.throws(() => resolveVolumeOptions(config, { 'cache-dir': '/tmp/x' }), /cache-dir: cannot be set per volume \(it is a mount option: set it with --cache-dir or SWIFTFS_CACHE_DIR\)/);
    assert.throws(() => resolveVolumeOptions(config, { password: 'x' }), /password: cannot be set per volume/);
    assert.throws(() => resolveVolumeOptions(config, { fsyncc: 'local' }), /fsyncc: unknown option \(did you mean fsync\?\)/);
    assert.throws(() => resolveVolumeOptions(config, { fsync: '' }), /fsync: needs a value/);
    assert.throws(() => resolveVolumeOptions(config, { 'block-size': 'big' }), /block-size: "big" is not valid \(from volume option block-size\)/);
  });
});
