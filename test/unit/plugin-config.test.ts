/**
 * plugin/config.json (the managed plugin's manifest) checked against what the engine needs and against the code:
 * the socket the server listens on, mounts under propagatedMount, state and cache outside /var/lib/docker,
 * CAP_SYS_ADMIN and /dev/fuse, host network, settable credentials that the configuration loader really reads,
 * an entrypoint that exists in the build, and a non-empty args value.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OPTIONS, envBindings, envName, type OptionSpec } from '../../src/config/options.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Manifest {
  entrypoint: string[];
  workdir: string;
  interface: { socket: string; types: string[] };
  network: { type: string };
  propagatedMount: string;
  linux: { capabilities: string[]; devices: { path: string }[] };
  mounts: { name: string; source: string; destination: string; type: string; options: string[]; settable?: string[] }[];
  env: { name: string; value: string; settable?: string[] }[];
  args: { name: string; value: string[]; settable?: string[] };
}

const manifest = JSON.parse(readFileSync(join(repoRoot, 'plugin', 'config.json'), 'utf8')) as Manifest;
const env = new Map(manifest.env.map((e) => [e.name, e]));

test('interface: a volume driver listening where the server is told to', () => {
  assert.deepEqual(manifest.interface.types, ['docker.volumedriver/1.0']);
  const socket = env.get('SWIFTFS_PLUGIN_SOCKET')?.value;
  assert.equal(socket, `/run/docker/plugins/${manifest.interface.socket}`);
  assert.equal(basename(socket!), 'swiftfs.sock');
});

test('mounts are made under propagatedMount; state and cache are host directories outside /var/lib/docker', () => {
  assert.equal(env.get('SWIFTFS_MOUNT_ROOT')?.value, manifest.propagatedMount);
  const byName = new Map(manifest.mounts.map((m) => [m.name, m]));
  assert.equal(byName.get('state')?.destination, env.get('SWIFTFS_STATE_DIR')?.value);
  assert.equal(byName.get('cache')?.destination, env.get('SWIFTFS_CACHE_DIR')?.value);
  for (const m of manifest.mounts) {
    assert.equal(m.type, 'bind');
    assert.ok(!m.source.startsWith('/var/lib/docker'), `${m.name} must not live under /var/lib/docker`);
    assert.deepEqual(m.settable, ['source'], `${m.name}.source is settable`);
    assert.ok(!manifest.propagatedMount.startsWith(m.destination), 'the propagated mount is not inside a bind mount');
  }
});

test('can mount FUSE and reach the stores as the host does', () => {
  assert.ok(manifest.linux.capabilities.includes('CAP_SYS_ADMIN'));
  assert.ok(manifest.linux.devices.some((d) => d.path === '/dev/fuse'));
  assert.equal(manifest.network.type, 'host');
});

test('every settable variable is one the configuration loader reads; credentials are settable and empty', () => {
  const known = new Set<string>();
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    for (const b of envBindings(spec)) known.add(typeof b === 'string' ? b : b.name);
    known.add(envName(spec.name));
  }
  for (const e of manifest.env) assert.ok(known.has(e.name), `${e.name} is not read by swiftfs`);
  for (const name of ['ST_AUTH', 'ST_USER', 'ST_KEY', 'OS_AUTH_URL', 'OS_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_ENDPOINT_URL']) {
    assert.deepEqual(env.get(name)?.settable, ['value'], `${name} is settable`);
    assert.equal(env.get(name)?.value, '', `${name} ships empty`);
  }
});

test('the entrypoint runs the supervised plugin from the build, under tini; args is not empty', () => {
  assert.deepEqual(manifest.entrypoint.slice(0, 3), ['/sbin/tini', '-s', '--']);
  assert.ok(manifest.entrypoint.includes('--supervise'));
  const main = manifest.entrypoint.find((a) => a.startsWith('/app/'));
  assert.equal(main, '/app/dist/src/cli/main.js');
  assert.ok(existsSync(join(repoRoot, main!.slice('/app/'.length))), 'the build has the entrypoint');
  assert.ok(manifest.args.value.length > 0, 'an empty args value is reported to break plugins');
});
