/**
 * Logging keeps credentials out: by key (secret options, tokens, auth headers, at several depths) and by value
 * (every configured secret, and tokens registered at run time, in any field, message or stack). Also: the
 * level comes from the config, the pretty format, child loggers per component; and the metrics recorders.
 */

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { addSecretValue, componentLogger, createLogger, loggerFromConfig, prettyLine, scrubSecrets } from '../../src/log.js';
import { metricsText, removeVolumeMetrics, startMetricsServer, storeMetrics, volumeMetrics, elapsed, startTimer } from '../../src/metrics.js';

class Capture {
  lines: string[] = [];
  write(chunk: string): void {
    this.lines.push(chunk);
  }
  get text(): string {
    return this.lines.join('');
  }
  records(): Record<string, unknown>[] {
    return this.text.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

const SECRETS = {
  ST_KEY: 'tempauth-key-7f3a',
  OS_PASSWORD: 'keystone-pass-91c2',
  OS_APPLICATION_CREDENTIAL_SECRET: 'appcred-secret-55d0',
  AWS_SECRET_ACCESS_KEY: 'aws-secret-e81b',
  AWS_SESSION_TOKEN: 'aws-session-0c4d',
  OS_AUTH_TOKEN: 'os-token-a9f1',
};

describe('secrets never reach the log', () => {
  it('secret options and auth headers are redacted by key, at the top and nested', () => {
    const out = new Capture();
    const log = createLogger({ destination: out, level: 'trace' });
    log.info({ password: 'p-top-1', secretAccessKey: 's-top-2', 'secret-access-key': 's-top-3', sessionToken: 't-top-4', token: 'tok-top-5' }, 'top');
    log.info({ auth: { type: 'tempauth', user: 'a:b', key: 'k-nested-6' }, store: { key: 'k-nested-7' } }, 'auth');
    log.info({ options: { auth: { password: 'p-deep-8' } } }, 'deep');
    log.info({ req: { headers: { 'x-auth-token': 'h-tok-9', 'X-Auth-Key': 'h-key-10', authorization: 'AWS4-HMAC h-11', 'x-subject-token': 'h-12', host: 'example' } } }, 'req');
    log.info({ headers: { 'X-Auth-Token': 'h-tok-13', 'X-Storage-Token': 'h-tok-14', 'X-Amz-Security-Token': 'h-15' } }, 'headers');
    log.info({ key: '.swiftfs/journal/0000000000000001', container: 'pg' }, 'object keys stay visible');
    const text = out.text;
    for (const secret of ['p-top-1', 's-top-2', 's-top-3', 't-top-4', 'tok-top-5', 'k-nested-6', 'k-nested-7', 'p-deep-8', 'h-tok-9', 'h-key-10', 'h-11', 'h-12', 'h-tok-13', 'h-tok-14', 'h-15']) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    }
    assert.ok(text.includes('[REDACTED]'));
    assert.ok(text.includes('.swiftfs/journal/0000000000000001'), 'the object key field is not redacted');
    assert.ok(text.includes('"host":"example"') && text.includes('"user":"a:b"'), 'non-secret fields stay');
  });

  it('every configured secret is scrubbed by value wherever it appears: message, any field, error stack, child bindings', () => {
    // The environment defines a TempAuth store; a config file names the others, each with its secrets.
    const file = join(mkdtempSync(join(tmpdir(), 'swiftfs-log-test-')), 'c.yaml');
    writeFileSync(
      file,
      `stores:
  ks: { type: swift, auth: keystone, auth-url: "https://k/v3", username: u, password: ${SECRETS.OS_PASSWORD}, project-id: p }
  ac: { type: swift, auth: keystone, auth-url: "https://k/v3", application-credential-id: a, application-credential-secret: ${SECRETS.OS_APPLICATION_CREDENTIAL_SECRET} }
  tok: { type: swift, auth: token, storage-url: "http://s/v1/AUTH_x", auth-token: ${SECRETS.OS_AUTH_TOKEN} }
  s3: { type: s3, access-key-id: a, secret-access-key: ${SECRETS.AWS_SECRET_ACCESS_KEY}, session-token: ${SECRETS.AWS_SESSION_TOKEN} }
`,
    );
    chmodSync(file, 0o600);
    const config = loadConfig({ env: { ST_AUTH: 'http://127.0.0.1:1/auth/v1.0', ST_USER: 'test:tester', ST_KEY: SECRETS.ST_KEY }, configFile: file });
    assert.equal(Object.keys(config.stores).length, 5);
    const out = new Capture();
    const log = loggerFromConfig(config, out);
    const child = componentLogger(log, 'committer', { volume: 'pg', oops: SECRETS.OS_PASSWORD });
    child.info(`connecting with ${SECRETS.ST_KEY}`);
    child.warn({ detail: `url=http://x/?sig=${SECRETS.AWS_SECRET_ACCESS_KEY}`, list: [SECRETS.AWS_SESSION_TOKEN] }, 'request failed');
    child.error({ err: new Error(`auth failed for ${SECRETS.OS_APPLICATION_CREDENTIAL_SECRET}`) }, 'boom');
    log.info({ weird: { deeper: { still: { deeper: SECRETS.ST_KEY } } }, tok: `X-Auth-Token: ${SECRETS.OS_AUTH_TOKEN}` }, 'deep');
    const text = out.text;
    for (const [name, value] of Object.entries(SECRETS)) {
      assert.ok(!text.includes(value), `${name} leaked: ${text}`);
    }
    const records = out.records();
    assert.equal(records.length, 4);
    assert.equal(records[0]!['component'], 'committer');
    assert.equal(records[0]!['volume'], 'pg');
    assert.match(String(records[0]!['msg']), /connecting with \[REDACTED\]/);
    assert.match(JSON.stringify(records[2]!['err']), /auth failed for \[REDACTED\]/);
  });

  it('tokens registered at run time are scrubbed too; a value with JSON escapes as well', () => {
    const out = new Capture();
    const log = createLogger({ destination: out });
    addSecretValue('AUTH_tk0123456789abcdef');
    addSecretValue('quote"and\\back');
    addSecretValue('abc'); // too short to scrub by value (would mangle text), ignored
    log.info({ token_in_other_field: 'AUTH_tk0123456789abcdef', x: 'quote"and\\back' }, 'got AUTH_tk0123456789abcdef and abc');
    assert.ok(!out.text.includes('AUTH_tk0123456789abcdef'));
    assert.ok(!out.text.includes('quote\\"and\\\\back'));
    assert.ok(out.text.includes(' and abc'));
    assert.equal(scrubSecrets('x AUTH_tk0123456789abcdef y'), 'x [REDACTED] y');
  });

  it('the pretty format is scrubbed as well', () => {
    addSecretValue('pretty-secret-4411');
    const out = new Capture();
    const log = createLogger({ destination: out, format: 'pretty', level: 'debug' });
    componentLogger(log, 'fuse', { volume: 'pg' }).debug({ op: 'write', n: 3 }, 'hello pretty-secret-4411');
    assert.match(out.text, /^\d\d:\d\d:\d\d\.\d{3} DEBUG \[fuse pg\] hello \[REDACTED\] op=write n=3\n$/);
  });
});

describe('levels and format', () => {
  it('takes its level from the config and drops what is below it', () => {
    const out = new Capture();
    const log = loggerFromConfig(loadConfig({ env: { SWIFTFS_LOG_LEVEL: 'warn' } }), out);
    log.info('hidden');
    log.warn('shown');
    assert.equal(out.records().length, 1);
    assert.equal(out.records()[0]!['level'], 40);
  });

  it('a component logger may have its own level (per-volume log-level)', () => {
    const out = new Capture();
    const log = createLogger({ destination: out, level: 'info' });
    const volumeLog = componentLogger(log, 'volume', { volume: 'pg' }, 'debug');
    volumeLog.debug('volume debug');
    log.debug('root debug');
    assert.deepEqual(out.records().map((r) => r['msg']), ['volume debug']);
  });

  it('prettyLine formats errors with their stack and leaves non-JSON alone', () => {
    const line = prettyLine(JSON.stringify({ level: 50, time: 0, msg: 'bad', err: { stack: 'Error: x\n    at y' }, op: 'put' }));
    assert.equal(line, '00:00:00.000 ERROR bad op=put\n    Error: x\n        at y\n');
    assert.equal(prettyLine('not json'), 'not json');
  });
});

describe('metrics', () => {
  it('records operations, bytes, commits, store requests and cache, and drops a volume\'s series', async () => {
    const m = volumeMetrics('vol-metrics-test');
    assert.equal(volumeMetrics('vol-metrics-test'), m, 'one recorder per volume');
    const start = startTimer();
    m.op('write', 'ok', elapsed(start));
    m.op('write', 'ok', 0.002);
    m.op('open', 'ENOENT', 0.0001);
    m.read(100);
    m.written(4096);
    m.setDirtyBytes(4096);
    m.setUploadQueueDepth(2);
    m.commit(true, 0.05);
    m.commit(false, 1.5);
    m.cacheHit();
    m.cacheMiss();
    m.setCacheBytes(1 << 20);
    m.cacheEvicted(512);
    const s = storeMetrics('store-metrics-test');
    s.request('put', 201, 0.01);
    s.request('get', 'Timeout', 30);
    s.transferred('out', 4096);
    let text = await metricsText();
    assert.match(text, /swiftfs_fs_operations_total\{volume="vol-metrics-test",op="write",result="ok"\} 2/);
    assert.match(text, /swiftfs_fs_operations_total\{volume="vol-metrics-test",op="open",result="ENOENT"\} 1/);
    assert.match(text, /swiftfs_fs_operation_duration_seconds_count\{volume="vol-metrics-test",op="write"\} 2/);
    assert.match(text, /swiftfs_written_bytes_total\{volume="vol-metrics-test"\} 4096/);
    assert.match(text, /swiftfs_dirty_bytes\{volume="vol-metrics-test"\} 4096/);
    assert.match(text, /swiftfs_upload_queue_depth\{volume="vol-metrics-test"\} 2/);
    assert.match(text, /swiftfs_commits_total\{volume="vol-metrics-test",result="error"\} 1/);
    assert.match(text, /swiftfs_cache_hits_total\{volume="vol-metrics-test"\} 1/);
    assert.match(text, /swiftfs_store_requests_total\{store="store-metrics-test",op="get",code="Timeout"\} 1/);
    assert.match(text, /swiftfs_store_requests_total\{store="store-metrics-test",op="put",code="201"\} 1/);
    assert.match(text, /swiftfs_store_bytes_total\{store="store-metrics-test",direction="out"\} 4096/);
    removeVolumeMetrics('vol-metrics-test');
    text = await metricsText();
    assert.ok(!text.includes('volume="vol-metrics-test"'), 'the volume\'s series are gone');
    assert.ok(text.includes('store="store-metrics-test"'));
  });

  it('recording an operation is cheap (well under 2 µs on this machine)', () => {
    const m = volumeMetrics('vol-metrics-speed');
    const n = 200_000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) m.op('read', 'ok', 0.0001);
    const perOpNs = Number(process.hrtime.bigint() - start) / n;
    removeVolumeMetrics('vol-metrics-speed');
    assert.ok(perOpNs < 2000, `${perOpNs.toFixed(0)} ns per op`);
  });

  it('serves /metrics over HTTP and 404 elsewhere', async () => {
    volumeMetrics('vol-http-test').written(7);
    const server = await startMetricsServer('127.0.0.1:0');
    try {
      const address = server.address();
      assert.ok(address && typeof address === 'object');
      const base = `http://127.0.0.1:${address.port}`;
      const response = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
      assert.match(await response.text(), /swiftfs_written_bytes_total\{volume="vol-http-test"\} 7/);
      const other = await fetch(`${base}/other`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(other.status, 404);
      await other.text();
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      removeVolumeMetrics('vol-http-test');
    }
    await assert.rejects(() => startMetricsServer('not an address'), /HOST:PORT/);
  });
});
