/**
 * The volume address grammar (swift://[STORE/]CONTAINER, swift://CONTAINER@REGION, STORE@REGION, s3://[STORE/]BUCKET,
 * mem://NAME, bare NAME), its rejects, and resolving an address to a store of the configuration.
 */

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { resolveVolume } from '../../src/config/resolve.js';
import { VolumeUrlError, checkS3BucketName, checkSwiftContainerName, formatVolumeUrl, parseVolumeUrl } from '../../src/config/volume-url.js';

describe('parseVolumeUrl', () => {
  it('reads each form', () => {
    assert.deepEqual(parseVolumeUrl('swift://pgdata'), { scheme: 'swift', store: undefined, container: 'pgdata' });
    assert.deepEqual(parseVolumeUrl('swift://dr/pgdata'), { scheme: 'swift', store: 'dr', container: 'pgdata' });
    assert.deepEqual(parseVolumeUrl('SWIFT://RegionTwo/pg'), { scheme: 'swift', store: 'RegionTwo', container: 'pg' });
    assert.deepEqual(parseVolumeUrl('s3://my-bucket.v2'), { scheme: 's3', store: undefined, container: 'my-bucket.v2' });
    assert.deepEqual(parseVolumeUrl('s3://s3a/my-bucket'), { scheme: 's3', store: 's3a', container: 'my-bucket' });
    assert.deepEqual(parseVolumeUrl('mem://t1'), { scheme: 'mem', store: undefined, container: 't1' });
    assert.deepEqual(parseVolumeUrl('pgdata'), { scheme: undefined, store: undefined, container: 'pgdata' });
  });

  it('percent-decodes URL segments, takes bare names literally, and formats back', () => {
    assert.equal(parseVolumeUrl('swift://my%20data').container, 'my data');
    assert.equal(parseVolumeUrl('swift://h/caf%C3%A9').container, 'café');
    assert.equal(parseVolumeUrl('swift://50%25').container, '50%');
    assert.equal(parseVolumeUrl('a b').container, 'a b');
    for (const text of ['swift://dr/my%20data', 's3://bucket-1', 'mem://x', 'swift://caf%C3%A9']) {
      assert.equal(formatVolumeUrl(parseVolumeUrl(text)), text);
    }
  });

  it('accepts a 256-byte Swift container name and refuses 257 bytes', () => {
    assert.equal(parseVolumeUrl(`swift://${'a'.repeat(256)}`).container.length, 256);
    assert.throws(() => parseVolumeUrl(`swift://${'a'.repeat(257)}`), /257 bytes long; Swift allows at most 256/);
    // multi-byte characters count in bytes
    assert.throws(() => parseVolumeUrl(`swift://${encodeURIComponent('é'.repeat(129))}`), /258 bytes/);
  });

  it('reads NAME@REGION (the volume in a region) and STORE@REGION (a Keystone store in another catalog region)', () => {
    assert.deepEqual(parseVolumeUrl('swift://data@dr'), { scheme: 'swift', store: 'dr', container: 'data' });
    assert.deepEqual(parseVolumeUrl('swift://pg@os@RegionTwo'), { scheme: 'swift', store: 'os@RegionTwo', container: 'pg' });
    assert.deepEqual(parseVolumeUrl('swift://os@RegionTwo/pg'), { scheme: 'swift', store: 'os@RegionTwo', container: 'pg' });
    assert.deepEqual(parseVolumeUrl('s3://my-bucket@dr'), { scheme: 's3', store: 'dr', container: 'my-bucket' });
    // A literal "@" in a container name is %-encoded; a bare name is taken literally.
    assert.deepEqual(parseVolumeUrl('swift://a%40b'), { scheme: 'swift', store: undefined, container: 'a@b' });
    assert.deepEqual(parseVolumeUrl('swift://dr/a%40b'), { scheme: 'swift', store: 'dr', container: 'a@b' });
    assert.deepEqual(parseVolumeUrl('a@b'), { scheme: undefined, store: undefined, container: 'a@b' });
    // Formatting puts the store before "/" and keeps its "@"; it reads back the same.
    assert.equal(formatVolumeUrl(parseVolumeUrl('swift://data@dr')), 'swift://dr/data');
    assert.equal(formatVolumeUrl(parseVolumeUrl('swift://os@RegionTwo/pg')), 'swift://os@RegionTwo/pg');
    assert.equal(formatVolumeUrl(parseVolumeUrl('swift://dr/a%40b')), 'swift://dr/a%40b');
    assert.deepEqual(parseVolumeUrl(formatVolumeUrl(parseVolumeUrl('swift://pg@os@RegionTwo'))), parseVolumeUrl('swift://os@RegionTwo/pg'));
  });

  const rejects: [string, RegExp][] = [
    ['swift://dr/pg@dr', /region is given twice/],
    ['swift://@dr', /container name before "@" is empty/],
    ['swift://pg@', /region after "@" is empty/],
    ['swift://pg@a@b@c', /must be a store name or region, or STORE@REGION/],
    ['swift://a@b@c/pg', /must be a store name or region, or STORE@REGION/],
    ['swift://pg@b%20d', /region "b d" must be/],
    ['swift://os@/pg', /must be a store name or region/],
    ['', /empty/],
    ['   ', /empty/],
    ['swift://', /container name is empty/],
    ['swift:///pg', /store name before "\/" is empty/],
    ['swift://dr/', /empty \(no trailing "\/"\)/],
    ['swift://a/b/c', /too many "\/"/],
    ['swift:pg', /expected swift:\/\/CONTAINER/],
    ['ftp://pg', /unknown scheme ftp/],
    ['swift://..', /not allowed/],
    ['swift://.', /not allowed/],
    ['swift://dr/..', /not allowed/],
    ['swift://a%2Fb', /must not contain "\/"/],
    ['swift://a%00b', /control characters/],
    ['swift://a\u0001b', /control characters/],
    ['pg\ndata', /control characters/],
    ['swift://%zz', /bad %-escape/],
    ['swift://b%20d/x', /store "b d" must be/],
    ['swift://pg?x=1', /"\?" and "#"/],
    ['a/b', /cannot contain "\/"/],
    ['s3://ab', /3 to 63/],
    ['s3://' + 'a'.repeat(64), /3 to 63/],
    ['s3://My-Bucket', /lowercase/],
    ['s3://my_bucket', /lowercase/],
    ['s3://-bucket', /start and end/],
    ['s3://bucket-', /start and end/],
    ['s3://my..bucket', /".."/],
    ['s3://my.-bucket', /"-" next to "."/],
    ['s3://192.168.1.10', /IP address/],
    ['s3://xn--bucket', /xn--/],
    ['s3://bucket-s3alias', /-s3alias/],
  ];
  for (const [input, pattern] of rejects) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseVolumeUrl(input), (err: unknown) => err instanceof VolumeUrlError && pattern.test(err.message));
    });
  }

  it('checks names by kind', () => {
    assert.doesNotThrow(() => checkSwiftContainerName('Any name: with spaces & UPPER'));
    assert.throws(() => checkS3BucketName('Any name'), VolumeUrlError);
    assert.throws(() => checkSwiftContainerName('\ud800'), /UTF-8/);
  });
});

describe('resolveVolume', () => {
  const dir = mkdtempSync(join(tmpdir(), 'swiftfs-url-test-'));
  const path = join(dir, 'c.yaml');
  writeFileSync(
    path,
    `stores:
  home: { type: swift, auth: tempauth, auth-url: "http://a/auth/v1.0", user: "a:b", key: kkkk, region: A }
  dr:   { type: swift, auth: tempauth, auth-url: "http://b/auth/v1.0", user: "a:b", key: kkkk, region: RegionTwo }
  s3a:  { type: s3, endpoint: "http://c", access-key-id: a, secret-access-key: ssss }
default-store: home
`,
  );
  chmodSync(path, 0o600);
  const config = loadConfig({ env: {}, configFile: path });

  it('uses the store the address names, by name or region', () => {
    assert.equal(resolveVolume(config, 'swift://dr/pg').store.name, 'dr');
    assert.equal(resolveVolume(config, 'swift://RegionTwo/pg').store.name, 'dr');
    assert.equal(resolveVolume(config, 'swift://RegionTwo/pg').url, 'swift://dr/pg');
  });

  it('then the volume option store, then the default store', () => {
    assert.equal(resolveVolume(config, 'swift://pg').store.name, 'home');
    assert.equal(resolveVolume(config, 'pg').store.name, 'home');
    assert.equal(resolveVolume(config, 'pg', { store: 'dr' }).store.name, 'dr');
    assert.equal(resolveVolume(config, 'swift://home/pg', { store: 'dr' }).store.name, 'home', 'the address wins');
  });

  it('with a scheme whose kind the default store is not, takes the only store of that kind', () => {
    const resolved = resolveVolume(config, 's3://my-bucket');
    assert.equal(resolved.store.name, 's3a');
    assert.equal(resolved.url, 's3://s3a/my-bucket');
  });

  it('refuses a store of the wrong kind, an unknown store, and a name invalid for the store', () => {
    assert.throws(() => resolveVolume(config, 's3://home/my-bucket'), (err: unknown) => err instanceof ConfigError && /store home is a swift store, not s3 \(write swift:\/\/home\/my-bucket/.test(err.message));
    assert.throws(() => resolveVolume(config, 'swift://mars/pg'), /no store or region named "mars"/);
    assert.throws(() => resolveVolume(config, 'Bad_Bucket', { store: 's3a' }), (err: unknown) => err instanceof VolumeUrlError && /lowercase/.test(err.message));
  });

  it('resolves NAME@REGION like REGION/NAME, by store name or store region', () => {
    assert.equal(resolveVolume(config, 'swift://pg@dr').store.name, 'dr');
    assert.equal(resolveVolume(config, 'swift://pg@RegionTwo').url, 'swift://dr/pg');
    assert.throws(() => resolveVolume(config, 'swift://pg@mars'), /no store or region named "mars"/);
    assert.throws(() => resolveVolume(config, 'swift://home@RegionTwo/pg'), /not a Keystone store/);
  });

  it('resolves STORE@REGION to the Keystone store in that catalog region, and a bare catalog region with one Keystone store', () => {
    const ksPath = join(dir, 'ks.yaml');
    writeFileSync(
      ksPath,
      `stores:
  os: { type: swift, auth: keystone, auth-url: "http://k/v3", username: u, password: pppp, project-name: p, region: RegionOne }
  s3a: { type: s3, endpoint: "http://c", access-key-id: a, secret-access-key: ssss }
default-store: os
`,
    );
    chmodSync(ksPath, 0o600);
    const ks = loadConfig({ env: {}, configFile: ksPath });
    const two = resolveVolume(ks, 'swift://os@RegionTwo/pg');
    assert.equal(two.store.name, 'os@RegionTwo');
    assert.equal(two.store.region, 'RegionTwo');
    assert.equal(two.url, 'swift://os@RegionTwo/pg');
    assert.deepEqual(resolveVolume(ks, two.url).store, two.store, 'the canonical URL resolves to the same store');
    assert.equal(resolveVolume(ks, 'swift://pg@RegionThree').store.name, 'os@RegionThree', 'bare catalog region, one Keystone store');
    assert.equal(resolveVolume(ks, 'swift://pg').store.region, 'RegionOne');
    assert.throws(() => resolveVolume(ks, 's3://s3a@x/my-bucket'), /not a Keystone store/);
  });

  it('mem:// works without any configured store', () => {
    const resolved = resolveVolume(loadConfig({ env: {} }), 'mem://t1');
    assert.equal(resolved.store.kind, 'memory');
    assert.equal(resolved.container, 't1');
  });
});
