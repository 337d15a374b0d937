/**
 * fsync of a directory through the FUSE adapter honours the volume's fsync mode (core Volume on a memory
 * store, no kernel): 'remote' commits every change made before it (a fresh read-only mount sees them),
 * 'local' makes them durable in the local WAL without committing.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createFuseAdapter } from '../../src/fuse/adapter.js';
import { JOURNAL_PREFIX } from '../../src/core/layout.js';
import type { Volume } from '../../src/core/volume.js';
import { setup, tempDir, type Setup } from '../unit/volume-helpers.js';

async function journalSegments(s: Setup): Promise<number> {
  let n = 0;
  let after: string | undefined;
  for (;;) {
    const page = await s.memory.list(s.container, { prefix: JOURNAL_PREFIX, ...(after ? { after } : {}) });
    n += page.objects.length;
    if (!page.next) return n;
    after = page.next;
  }
}

const quiet = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

function fsyncdirThrough(v: Volume, path: string): Promise<number> {
  const adapter = createFuseAdapter({ fs: v, log: quiet as never, caller: { uid: 0, gid: 0 } });
  return new Promise((resolve) => adapter.ops.fsyncdir!(path, 0, 0, (code) => resolve(code)));
}

test('fsyncdir in fsync mode remote commits the directory\'s entries (and everything before)', async () => {
  const s = await setup();
  try {
    const v = await s.open({ fsync: 'remote', commitIntervalMs: 60_000 });
    const before = await journalSegments(s);
    await v.mkdir('/d', 0o755);
    await v.mknod('/d/node', 0o100644, 0);
    await v.rename('/d/node', '/d/renamed');
    assert.equal(await journalSegments(s), before, 'nothing committed by itself (60 s interval)');
    assert.equal(await fsyncdirThrough(v, '/d'), 0);
    assert.ok((await journalSegments(s)) > before, 'fsyncdir committed');
    const fresh = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual((await fresh.readdir('/d')).map((e) => e.name), ['renamed']);
    await fresh.close();
  } finally {
    await s.cleanup();
  }
});

test('fsyncdir in fsync mode local does not commit (the WAL is synced instead)', async () => {
  const s = await setup();
  try {
    const v = await s.open({ fsync: 'local', commitIntervalMs: 60_000 });
    const before = await journalSegments(s);
    await v.mkdir('/d', 0o755);
    await v.mknod('/d/node', 0o100644, 0);
    assert.equal(await fsyncdirThrough(v, '/d'), 0);
    assert.equal(await journalSegments(s), before, 'local fsyncdir does not commit');
    assert.ok(v.status().pendingEntries > 0, 'the entries wait for the next commit');
  } finally {
    await s.cleanup();
  }
});
