/**
 * The `swiftfs` command as a user runs it (spawning dist/src/cli/main.js): --help lists every planned command,
 * commands not built say so with exit status 2, `config show` masks every secret, `config options` lists the
 * table, mistakes exit 2 with a message naming the option; and scripts/gen-options-doc.mjs.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PLANNED_COMMANDS } from '../../src/cli/main.js';
import { OPTIONS } from '../../src/config/options.js';

// dist/test/unit/ -> repository root
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const main = join(root, 'dist', 'src', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'swiftfs-cli-test-'));

function swiftfs(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [main, ...args], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const SECRET_ENV = {
  ST_AUTH: 'http://127.0.0.1:1/auth/v1.0',
  ST_USER: 'test:tester',
  ST_KEY: 'st-key-never-shown',
};

describe('swiftfs --help', () => {
  const help = swiftfs(['--help']);
  it('exits 0 and lists every planned command and the global options', () => {
    assert.equal(help.status, 0, help.stderr);
    for (const command of PLANNED_COMMANDS) assert.match(help.stdout, new RegExp(`^  ${command.name}\\b`, 'm'), command.name);
    for (const name of ['mount', 'unmount', 'status', 'plugin', 'relocate', 'volume', 'config', 'bench']) {
      assert.ok(PLANNED_COMMANDS.some((c) => c.name === name), `${name} is planned`);
    }
    for (const flag of ['--config <file>', '--log-level <choice>', '--log-format <choice>', '--request-timeout <duration>', '--retries <n>', '--connections <n>']) {
      assert.ok(help.stdout.includes(flag), flag);
    }
    assert.ok(!/--key|--password|--secret-access-key/.test(help.stdout), 'secrets have no flag');
  });

  it('commands not built yet are marked in --help and exit 2 saying so', () => {
    const notBuilt = PLANNED_COMMANDS.filter((c) => new RegExp(`^  ${c.name}\\b[^\\n]*(\\n {20,}[^\\n]*)*\\(not yet\\s+built\\)`, 'm').test(help.stdout));
    // Every command is built today; the check stays for the next planned one.
    assert.ok(notBuilt.every((c) => PLANNED_COMMANDS.includes(c)));
    for (const command of notBuilt) {
      const args = command.name === 'relocate' ? ['relocate', 'swift://x', '--to', 'B'] : [command.name];
      const run = swiftfs(args);
      assert.equal(run.status, 2, `${command.name}: ${run.stderr}`);
      assert.match(run.stderr, new RegExp(`swiftfs ${command.name}: not yet built`));
    }
  });

  it('--version prints the package version', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const run = swiftfs(['--version']);
    assert.equal(run.status, 0);
    assert.equal(run.stdout.trim(), pkg.version);
  });

  it('an unknown command or option is a usage error (exit 2)', () => {
    const run = swiftfs(['frobnicate']);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /unknown command 'frobnicate'/);
    assert.equal(swiftfs(['config', 'show', '--no-such-flag']).status, 2);
  });
});

describe('swiftfs config show', () => {
  it('masks every secret, from the environment and from a file, in YAML and JSON', () => {
    const file = join(dir, 'stores.yaml');
    writeFileSync(
      file,
      'stores:\n  dr: { type: swift, auth: keystone, auth-url: "https://k/v3", username: u, password: file-pw-never-shown, project-id: p }\n  s3a: { type: s3, access-key-id: AKIA1, secret-access-key: file-s3-never-shown }\n',
    );
    chmodSync(file, 0o600);
    for (const args of [['config', 'show'], ['config', 'show', '--origins'], ['config', 'show', '--json']]) {
      const run = swiftfs(['--config', file, ...args], SECRET_ENV);
      assert.equal(run.status, 0, run.stderr);
      const all = run.stdout + run.stderr;
      for (const secret of ['st-key-never-shown', 'file-pw-never-shown', 'file-s3-never-shown']) assert.ok(!all.includes(secret), `${secret} shown by ${args.join(' ')}`);
      assert.ok(run.stdout.includes('*****'), 'masked values are shown as *****');
    }
    const json = JSON.parse(swiftfs(['--config', file, 'config', 'show', '--json'], SECRET_ENV).stdout) as { stores: Record<string, Record<string, unknown>>; volumes: { defaults: Record<string, unknown> } };
    assert.deepEqual(Object.keys(json.stores).sort(), ['default', 'dr', 's3a']);
    assert.equal(json.stores['default']!['key'], '*****');
    assert.equal(json.stores['default']!['user'], 'test:tester');
    assert.equal(json.volumes.defaults['block-size'], '4M');
    const origins = swiftfs(['--config', file, 'config', 'show', '--origins'], { ...SECRET_ENV, SWIFTFS_FSYNC: 'local' }).stdout;
    assert.match(origins, /key: "\*\*\*\*\*" # env ST_KEY/);
    assert.match(origins, /fsync: local # env SWIFTFS_FSYNC/);
    assert.match(origins, /password: "\*\*\*\*\*" # file .*stores\.yaml \(stores\.dr\)/);
  });

  it('flags override the environment', () => {
    const run = swiftfs(['config', 'show', '--json', '--retries', '7', '--log-level', 'debug'], { ...SECRET_ENV, SWIFTFS_RETRIES: '3' });
    const json = JSON.parse(run.stdout) as { 'log-level': string; stores: Record<string, { retries: number }> };
    assert.equal(json['log-level'], 'debug');
    assert.equal(json.stores['default']!.retries, 7);
  });

  it('a bad value exits 2 with a message naming the option, the value and its source', () => {
    const run = swiftfs(['config', 'show'], { SWIFTFS_BLOCK_SIZE: '4X' });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /^swiftfs: block-size: "4X" is not valid \(from env SWIFTFS_BLOCK_SIZE\): expected a size/);
    const missing = swiftfs(['--config', join(dir, 'absent.yaml'), 'config', 'show']);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /absent\.yaml: not found/);
  });

  it('an incomplete store is shown as a problem, without failing', () => {
    const run = swiftfs(['config', 'show'], { ST_AUTH: 'http://x/auth/v1.0', ST_USER: 'a:b' });
    assert.equal(run.status, 0);
    assert.match(run.stderr, /warning: store default: swift tempauth store needs key \(ST_KEY\)/);
    assert.match(run.stdout, /problems:/);
  });
});

describe('swiftfs config options', () => {
  it('lists every option, as text and as markdown', () => {
    const text = swiftfs(['config', 'options']);
    const markdown = swiftfs(['config', 'options', '--markdown']);
    assert.equal(text.status, 0);
    assert.equal(markdown.status, 0);
    for (const spec of OPTIONS) {
      assert.ok(text.stdout.includes(`  ${spec.name}  (`), spec.name);
      assert.ok(markdown.stdout.includes(`| \`${spec.name}\``), spec.name);
    }
    assert.match(markdown.stdout, /\| `block-size` \| size \| `4M` \| SWIFTFS_BLOCK_SIZE \| yes \|/);
    assert.match(markdown.stdout, /\| `key` \(secret\) \| string \|  \| ST_KEY \|/);
  });
});

describe('scripts/gen-options-doc.mjs', () => {
  const script = join(root, 'scripts', 'gen-options-doc.mjs');
  const run = (args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 60_000 });

  it('adds the block at the end when the markers are missing, replaces only the block, and --check tells', () => {
    const readme = join(dir, 'README.md');
    writeFileSync(readme, '# Title\n\nSome text.\n');
    assert.equal(run(['--readme', readme, '--check']).status, 1, 'out of date before');
    assert.equal(run(['--readme', readme]).status, 0);
    let text = readFileSync(readme, 'utf8');
    assert.ok(text.startsWith('# Title\n\nSome text.\n\n## Options\n\n<!-- options:begin -->'));
    assert.ok(text.trimEnd().endsWith('<!-- options:end -->'));
    assert.ok(text.includes('| `commit-interval` | duration | `1s` |'));
    assert.equal(run(['--readme', readme, '--check']).status, 0, 'up to date after');

    // Text around the block is kept as it is; a stale block is replaced.
    writeFileSync(readme, text.replace(/<!-- options:begin -->[\s\S]*<!-- options:end -->/, '<!-- options:begin -->\nstale\n<!-- options:end -->') + '\n## After\n');
    assert.equal(run(['--readme', readme]).status, 0);
    text = readFileSync(readme, 'utf8');
    assert.ok(!text.includes('stale'));
    assert.ok(text.startsWith('# Title\n\nSome text.\n\n## Options\n\n<!-- options:begin -->'));
    assert.ok(text.endsWith('<!-- options:end -->\n\n## After\n'));
  });

  it('refuses a file with only one marker', () => {
    const readme = join(dir, 'README-one.md');
    writeFileSync(readme, '# T\n<!-- options:begin -->\n');
    const result = run(['--readme', readme]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /only one of the markers/);
  });
});
