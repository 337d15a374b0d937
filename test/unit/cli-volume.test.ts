/**
 * `swiftfs volume create|ls|inspect|rm` against an in-process memory store (the same backend as the Docker
 * plugin, so the volumes carry the plugin's labels).
 */

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createVolume, inspectVolume, listVolumes, openBackend, removeVolume } from '../../src/cli/commands/volume.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { openStore, resetMemoryStores } from '../../src/store/open.js';

class Output {
  text = '';
  write(chunk: string): void {
    this.text += chunk;
  }
}

describe('swiftfs volume', () => {
  it('creates, lists, inspects and removes a volume', async () => {
    resetMemoryStores();
    const config = loadConfig({ env: { SWIFTFS_STORE_TYPE: 'memory', SWIFTFS_CACHE_DIR: mkdtempSync(join(tmpdir(), 'swiftfs-cli-vol-')) } });
    const { backend, close } = await openBackend(config, silentLogger());
    try {
      const out = new Output();
      const created = await createVolume(backend, 'pgdata', { 'block-size': '1M', fsync: 'local' }, out);
      assert.match(out.text, /^created pgdata at mem:\/\/default\/pgdata \(uuid [0-9a-f-]{36}\)\n$/);
      assert.equal(created.options['block-size'], '1M');

      // The volume is really in the store: a swiftfs format record in container pgdata.
      const store = await openStore(config);
      const format = JSON.parse((await store.get('pgdata', '.swiftfs/format')).body.toString()) as { uuid: string; blockSize: number };
      assert.equal(format.uuid, created.uuid);
      assert.equal(format.blockSize, 1024 * 1024);

      const listed = new Output();
      const volumes = await listVolumes(backend, listed);
      assert.deepEqual(volumes.map((v) => v.name), ['pgdata']);
      assert.match(listed.text, /^NAME\s+WHERE\s+UUID\s+HELD BY\s+CREATED\npgdata\s+mem:\/\/default\/pgdata\s+[0-9a-f-]{36}\s+-\s+\d{4}-/);
      const json = new Output();
      await listVolumes(backend, json, { json: true });
      assert.equal((JSON.parse(json.text) as { uuid: string }[])[0]!.uuid, created.uuid);

      const inspected = new Output();
      const volume = await inspectVolume(backend, 'pgdata', inspected);
      assert.equal(volume.uuid, created.uuid);
      assert.equal((JSON.parse(inspected.text) as { location: { container: string } }).location.container, 'pgdata');

      const removed = new Output();
      await removeVolume(backend, 'pgdata', {}, removed);
      assert.match(removed.text, /^removed pgdata/);
      await assert.rejects(() => store.headContainer('pgdata'), (err: unknown) => (err as { code?: string }).code === 'NotFound');
      const empty = new Output();
      assert.deepEqual(await listVolumes(backend, empty), []);
      assert.equal(empty.text, 'no volumes\n');
      await assert.rejects(() => inspectVolume(backend, 'pgdata', new Output()), /no volume named "pgdata"/);
    } finally {
      await close();
    }
  });

  it('refuses bad per-volume options with the option named', async () => {
    const config = loadConfig({ env: { SWIFTFS_STORE_TYPE: 'memory' } });
    const { backend, close } = await openBackend(config, silentLogger());
    try {
      await assert.rejects(() => createVolume(backend, 'v1', { fsyncc: 'local' }, new Output()), /fsyncc: unknown option \(did you mean fsync\?\)/);
      await assert.rejects(() => createVolume(backend, 'v1', { 'block-size': 'huge' }, new Output()), /block-size: "huge" is not valid/);
      await assert.rejects(() => createVolume(backend, 'v1', { 'cache-dir': '/tmp' }, new Output()), /cache-dir: cannot be set per volume/);
    } finally {
      await close();
    }
  });
});
