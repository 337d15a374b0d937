/**
 * Value syntaxes of options: sizes, durations, booleans, integers (decimal and octal), enums; and that every
 * default in the option table parses under its own type and bounds.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseOptionValue } from '../../src/config/load.js';
import { OPTIONS, type OptionSpec } from '../../src/config/options.js';
import {
  ValueError,
  formatDuration,
  formatSize,
  parseBool,
  parseDuration,
  parseEnum,
  parseInteger,
  parseSize,
} from '../../src/config/values.js';

describe('sizes', () => {
  it('parses binary and decimal units and bare bytes', () => {
    assert.equal(parseSize('4M'), 4 * 1024 * 1024);
    assert.equal(parseSize('64KiB'), 64 * 1024);
    assert.equal(parseSize('64k'), 64 * 1024);
    assert.equal(parseSize('1G'), 1024 ** 3);
    assert.equal(parseSize('1GB'), 1e9);
    assert.equal(parseSize('10MB'), 10_000_000);
    assert.equal(parseSize('1.5G'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('1048576'), 1048576);
    assert.equal(parseSize('2T'), 2 * 1024 ** 4);
    assert.equal(parseSize(' 8 MiB '), 8 * 1024 * 1024);
    assert.equal(parseSize(4096), 4096);
  });
  it('rejects what is not a size', () => {
    for (const bad of ['', 'M', '4X', '-1M', '4 M B', '1e3', 'four', '4MiBs']) {
      assert.throws(() => parseSize(bad), ValueError, bad);
    }
    assert.throws(() => parseSize(-1), ValueError);
    assert.throws(() => parseSize(1.5), ValueError);
  });
  it('formats back to the short form', () => {
    assert.equal(formatSize(4 * 1024 * 1024), '4M');
    assert.equal(formatSize(10 * 1024 ** 3), '10G');
    assert.equal(formatSize(1536 * 1024), '1536K');
    assert.equal(formatSize(1000), '1000');
  });
});

describe('durations', () => {
  it('parses units and compounds into milliseconds', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('5s'), 5000);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration(0), 0);
  });
  it('requires a unit, so that a bare number is never ambiguous', () => {
    assert.throws(() => parseDuration('1000'), /unit/);
    assert.throws(() => parseDuration(5), /unit/);
    for (const bad of ['', 's', '5x', '5 s', '-5s', '1h-5m']) assert.throws(() => parseDuration(bad), ValueError, bad);
  });
  it('formats back compactly', () => {
    assert.equal(formatDuration(1000), '1s');
    assert.equal(formatDuration(500), '500ms');
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(0), '0');
  });
});

describe('booleans, integers, enums', () => {
  it('parses the usual boolean words in any case', () => {
    for (const yes of ['true', 'TRUE', 'yes', 'on', '1']) assert.equal(parseBool(yes), true, yes);
    for (const no of ['false', 'No', 'off', '0']) assert.equal(parseBool(no), false, no);
    assert.throws(() => parseBool('maybe'), ValueError);
    assert.throws(() => parseBool(''), ValueError);
  });
  it('parses decimal integers with bounds', () => {
    assert.equal(parseInteger('42'), 42);
    assert.equal(parseInteger('-3'), -3);
    assert.throws(() => parseInteger('4.2'), ValueError);
    assert.throws(() => parseInteger('0x10'), ValueError);
    assert.throws(() => parseInteger('5', { min: 10, max: 20 }), /between 10 and 20/);
    assert.throws(() => parseInteger('50', { max: 20 }), /at most 20/);
  });
  it('parses octal integers (umask) in all common spellings', () => {
    assert.equal(parseInteger('022', { octal: true }), 0o22);
    assert.equal(parseInteger('0o077', { octal: true }), 0o77);
    assert.equal(parseInteger('22', { octal: true }), 0o22);
    assert.throws(() => parseInteger('089', { octal: true }), /octal/);
    assert.throws(() => parseInteger('1000', { octal: true, max: 0o777 }), /between|at most/);
  });
  it('matches enum choices case-insensitively and lists them when wrong', () => {
    assert.equal(parseEnum('REMOTE', ['remote', 'local']), 'remote');
    assert.throws(() => parseEnum('cloud', ['remote', 'local']), /one of remote, local/);
  });
});

describe('the option table', () => {
  it('has unique kebab-case names, help, and parseable defaults within bounds', () => {
    const seen = new Set<string>();
    for (const spec of OPTIONS as readonly OptionSpec[]) {
      assert.match(spec.name, /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, spec.name);
      assert.ok(!seen.has(spec.name), `duplicate ${spec.name}`);
      seen.add(spec.name);
      assert.ok(spec.help.length > 10, `${spec.name} has help`);
      if (spec.type === 'enum') assert.ok(spec.choices && spec.choices.length > 1, `${spec.name} has choices`);
      if (spec.default !== undefined) assert.doesNotThrow(() => parseOptionValue(spec, spec.default, 'default'), spec.name);
      if (spec.secret) assert.equal(spec.volumeOpt, undefined, `secret ${spec.name} is not a volume option`);
    }
  });
  it('declares the required options with the brief\'s defaults', () => {
    const get = (name: string) => (OPTIONS as readonly OptionSpec[]).find((spec) => spec.name === name);
    const value = (name: string) => parseOptionValue(get(name)!, get(name)!.default, 'default');
    assert.equal(value('block-size'), 4 * 1024 * 1024);
    assert.equal(value('cache-dir'), '/var/cache/swiftfs');
    assert.equal(value('commit-interval'), 1000);
    assert.equal(value('fsync'), 'remote');
    assert.equal(value('close-sync'), false);
    for (const name of ['cache-size', 'dirty-limit', 'read-only', 'allow-other', 'uid', 'gid', 'umask', 'log-level', 'storage-policy', 'region', 'store', 'create', 'request-timeout', 'retries', 'connections']) {
      assert.ok(get(name), `option ${name} exists`);
    }
    for (const name of ['key', 'password', 'application-credential-secret', 'auth-token', 'secret-access-key', 'session-token']) {
      assert.equal(get(name)?.secret, true, `${name} is secret`);
    }
  });
});
