/**
 * `swiftfs replicate` and `swiftfs relocate` run in-process (main()) against two memory stores named in a
 * config file: a dry run shows the plan and changes nothing, a relocation without a terminal needs --yes,
 * replicate --once seeds and records the replica, relocate --yes --json moves the volume, and a second move
 * from the old home is refused with exit status 1.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/load.js';
import { openStore, resetMemoryStores } from '../../src/store/open.js';
import { Volume } from '../../src/core/volume.js';
import { Ownership } from '../../src/core/ownership.js';
import { isFenceOwner, readRegions } from '../../src/region/records.js';
import { tempDir } from './region-helpers.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const writeOut = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  process.exitCode = undefined;
  try {
    const code = await main(['node', 'swiftfs', ...args]);
    return { code, out, err };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
    process.exitCode = undefined;
  }
}

test('swiftfs replicate and relocate on two memory regions', async () => {
  resetMemoryStores();
  const dir = await tempDir();
  const file = join(dir, 'swiftfs.yaml');
  writeFileSync(file, `stores:\n  A:\n    type: memory\n  B:\n    type: memory\nvolumes:\n  defaults:\n    cache-dir: ${join(dir, 'cache')}\n`, { mode: 0o600 });
  process.env['SWIFTFS_RUN_DIR'] = join(dir, 'run');
  const config = loadConfig({ env: {}, configFile: file });
  const a = await openStore(config, 'A');
  const b = await openStore(config, 'B');
  await Volume.format(a, 'pg', { createContainer: true });
  const v = await Volume.open(a, 'pg', { cacheDir: join(dir, 'c1') });
  const fh = await v.create('/hello', 0o644, 0o100 | 0o2);
  await v.write(fh, Buffer.from('hello from A'), 0);
  await v.release(fh);
  await v.close();
  const base = ['--config', file, '--log-level', 'error'];

  const dry = await run([...base, 'relocate', 'mem://A/pg', '--to', 'B', '--dry-run']);
  assert.equal(dry.code, 0, dry.err);
  assert.match(dry.out, /would relocate mem:\/\/A\/pg/);
  assert.match(dry.out, /steps:/);
  assert.match(dry.out, /fence A\/pg/);
  assert.equal(isFenceOwner(await Ownership.read(a, 'pg')), false, 'a dry run changes nothing');

  const noYes = await run([...base, 'relocate', 'mem://A/pg', '--to', 'B']);
  assert.equal(noYes.code, 2);
  assert.match(noYes.err, /--yes/);

  const rep = await run([...base, 'replicate', 'mem://A/pg', '--to', 'B', '--once']);
  assert.equal(rep.code, 0, rep.err);
  assert.match(rep.out, /B\/pg: caught-up/);
  assert.deepEqual((await readRegions(a, 'pg'))?.replicas.map((r) => r.region), ['B']);

  const removed = await run([...base, 'replicate', 'mem://A/pg', '--to', 'B', '--remove']);
  assert.equal(removed.code, 0, removed.err);
  assert.match(removed.out, /B\/pg: no longer a replica of mem:\/\/A\/pg/);
  assert.deepEqual((await readRegions(a, 'pg'))?.replicas, []);
  assert.deepEqual((await readRegions(b, 'pg'))?.replicas, [], 'the replica\'s copy of the record too');
  assert.equal((await run([...base, 'replicate', 'mem://A/pg', '--to', 'B', '--remove'])).code, 1, 'nothing left to remove');
  assert.equal((await run([...base, 'replicate', 'mem://A/pg', '--to', 'B', '--once'])).code, 0);

  const moved = await run([...base, 'relocate', 'mem://A/pg', '--to', 'B', '--yes', '--json']);
  assert.equal(moved.code, 0, moved.err);
  const result = JSON.parse(moved.out) as { done: boolean; targetUrl: string; loss: { segmentsLost: number } };
  assert.equal(result.done, true);
  assert.equal(result.targetUrl, 'mem://B/pg');
  assert.equal(result.loss.segmentsLost, 0);
  assert.ok((await Ownership.read(b, 'pg'))?.released);

  const again = await run([...base, 'relocate', 'mem://A/pg', '--to', 'B', '--yes']);
  assert.equal(again.code, 1);
  assert.match(again.out, /REFUSED/);
  assert.match(again.out, /already moved to B\/pg/);

  const badReplica = await run([...base, 'mount', 'mem://A/pg', dir, '--replicas', 'B,Nowhere']);
  assert.equal(badReplica.code, 2, 'an unknown replica region is a usage error, before anything is mounted');
  assert.match(badReplica.err, /no store or region named "Nowhere"/);

  const unknown = await run([...base, 'relocate', 'mem://A/pg', '--to', 'Nowhere', '--dry-run']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /Nowhere/);
  delete process.env['SWIFTFS_RUN_DIR'];
});

test('swiftfs relocate refuses a volume that containers use through the Docker plugin of this host', async () => {
  resetMemoryStores();
  const dir = await tempDir();
  const file = join(dir, 'swiftfs.yaml');
  const stateDir = join(dir, 'plugin-state');
  writeFileSync(file, `stores:\n  A:\n    type: memory\n  B:\n    type: memory\nstate-dir: ${stateDir}\nvolumes:\n  defaults:\n    cache-dir: ${join(dir, 'cache')}\n`, { mode: 0o600 });
  process.env['SWIFTFS_RUN_DIR'] = join(dir, 'run');
  const config = loadConfig({ env: {}, configFile: file });
  const a = await openStore(config, 'A');
  await Volume.format(a, 'web', { createContainer: true });
  const { StateFile } = await import('../../src/plugin/state.js');
  const state = StateFile.load(join(stateDir, 'plugin'));
  state.data.volumes['web'] = { name: 'web', uuid: 'u', createdAt: '', location: { backend: 'memory', store: 'A', container: 'web' }, options: {}, mountpoint: '/x/web', mounts: { c1: 1 }, recordedAt: '' };
  await state.save();
  const base = ['--config', file, '--log-level', 'error'];
  const refused = await run([...base, 'relocate', 'mem://A/web', '--to', 'B', '--yes']);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /volume web is used by 1 container mount\(s\) through the Docker plugin on this host: stop those containers first/);
  assert.equal(isFenceOwner(await Ownership.read(a, 'web')), false, 'nothing was changed');
  // Once the containers are gone, the move goes ahead and leaves the remount to the plugin.
  state.data.volumes['web']!.mounts = {};
  await state.save();
  const moved = await run([...base, 'relocate', 'mem://A/web', '--to', 'B', '--yes']);
  assert.equal(moved.code, 0, moved.err);
  assert.match(moved.out, /the Docker plugin mounts volume web from mem:\/\/B\/web at its next use/);
  delete process.env['SWIFTFS_RUN_DIR'];
});
