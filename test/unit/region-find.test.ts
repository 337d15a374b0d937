/**
 * Finding a volume by UUID in a store: by label, by format record where the label is missing (a container
 * replicated by the store, which does not copy container metadata), not confused by foreign or empty
 * containers, with a hint, and with a cache that notices when the volume is not there any more.
 * Also region names: a store, a store's region, STORE@REGION and a bare catalog region for Keystone stores.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FaultyStore } from '../../src/store/faulty-store.js';
import { Volume } from '../../src/core/volume.js';
import { UUID_LABEL } from '../../src/core/layout.js';
import { findAllVolumeContainers, findVolumeByUuid, forgetFoundVolumes } from '../../src/region/find.js';
import { resolveRegion, regionNameOfStore } from '../../src/region/regions.js';
import { loadConfig, ConfigError } from '../../src/config/load.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './region-helpers.js';

test('find by UUID: label, format record, foreign and empty containers, hint, cache', async () => {
  const memory = new MemoryStore();
  const store = new FaultyStore(memory);
  const a = await Volume.format(store, 'alpha', { createContainer: true });
  const b = await Volume.format(store, 'beta', { createContainer: true });
  await store.setLabels('beta', { [UUID_LABEL]: null }); // as after container sync: no metadata
  await store.createContainer('foreign');
  await store.put('foreign', 'x.txt', Buffer.from('x'));
  await store.createContainer('empty');

  assert.deepEqual(await findVolumeByUuid(store, a.uuid), { container: 'alpha', via: 'label' });
  assert.deepEqual(await findVolumeByUuid(store, b.uuid), { container: 'beta', via: 'format' });
  assert.equal(await findVolumeByUuid(store, '11111111-2222-3333-4444-555555555555'), null);
  const all = await findAllVolumeContainers(store);
  assert.deepEqual(all.map((v) => [v.container, v.uuid]), [['alpha', a.uuid], ['beta', b.uuid]]);

  // Cached: a second lookup reads one container's labels, not the whole account.
  store.callLog.length = 0;
  assert.equal((await findVolumeByUuid(store, a.uuid))?.container, 'alpha');
  assert.equal(store.callLog.filter((c) => c.op === 'listContainers').length, 0);

  // The volume "moves" (its label and container elsewhere): the cached answer is re-verified and dropped.
  await store.setLabels('alpha', { [UUID_LABEL]: null });
  await store.delete('alpha', '.swiftfs/format');
  await store.createContainer('gamma', { labels: { [UUID_LABEL]: a.uuid } });
  assert.equal((await findVolumeByUuid(store, a.uuid))?.container, 'gamma');

  // A hint is checked first.
  forgetFoundVolumes(store);
  store.callLog.length = 0;
  assert.equal((await findVolumeByUuid(store, b.uuid, { hint: 'beta' }))?.container, 'beta');
  assert.equal(store.callLog.filter((c) => c.op === 'listContainers').length, 0);
  // A wrong hint falls back to the scan.
  assert.equal((await findVolumeByUuid(store, a.uuid, { hint: 'beta' }))?.container, 'gamma');
});

test('region names: store name, store region, STORE@REGION and bare regions of a single Keystone store', async () => {
  const dir = await tempDir();
  const file = join(dir, 'swiftfs.yaml');
  writeFileSync(
    file,
    [
      'stores:',
      '  home:',
      '    type: swift',
      '    auth: tempauth',
      '    auth-url: http://127.0.0.1:1/auth/v1.0',
      '    user: a:b',
      '    key: k',
      '    region: RegionA',
      '  cloud:',
      '    type: swift',
      '    auth: keystone',
      '    auth-url: http://127.0.0.1:2/v3',
      '    username: u',
      '    password: p',
      '    project-name: proj',
      '    region: RegionOne',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const config = loadConfig({ env: {}, configFile: file });
  assert.equal(resolveRegion(config, 'home').store.name, 'home');
  assert.equal(resolveRegion(config, 'RegionA').store.name, 'home');
  assert.equal(resolveRegion(config, 'RegionOne').store.name, 'cloud');
  const two = resolveRegion(config, 'cloud@RegionTwo');
  assert.equal(two.store.region, 'RegionTwo');
  assert.equal(two.store.kind, 'swift');
  assert.equal(two.name, 'cloud@RegionTwo');
  // A region no store names: the one Keystone store's catalog.
  assert.equal(resolveRegion(config, 'RegionThree').store.region, 'RegionThree');
  assert.throws(() => resolveRegion(config, 'home@RegionX'), ConfigError);
  assert.equal(regionNameOfStore(config, config.stores['home']!), 'RegionA');
});
