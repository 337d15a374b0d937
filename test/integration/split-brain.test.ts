/**
 * Split brain on the real Swift, through its Swift API (create-only puts that are not atomic) and its S3 API
 * (no conditional puts at all): two "hosts" (two processes with their own cache directories) keep taking one
 * volume over from each other at random moments, writing and fsyncing, closing or crashing their sessions; the
 * test process fences the volume now and then as a relocation would, and at the end kills both hosts hard. The
 * journal then shows that at most one writer committed at any time (epochs never go back), every fsync a host
 * saw return is in the journal under that host's epoch with its bytes, and the volume is consistent.
 *
 * Every party uses the default settle delay (4 s): a takeover waits that long, so the run lasts 150 s per API
 * (SWIFTFS_SPLIT_BRAIN_SECONDS to change it).
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Volume } from '../../src/core/volume.js';
import { fenceContainer } from '../../src/region/fence.js';
import { requireSwift } from '../helpers/swift-env.js';
import { uniqueName } from '../helpers/saio.js';
import { verifySingleWriterJournal } from '../unit/region-helpers.js';
import { dropContainer, readLog } from './relocate-helpers.js';
import { APIS, makeStore } from './volume-stores.js';
import type { HostAck } from './split-brain-host.js';

const HOST = join(dirname(fileURLToPath(import.meta.url)), 'split-brain-host.js');
const SECONDS = Number(process.env['SWIFTFS_SPLIT_BRAIN_SECONDS'] ?? 150);

interface HostLine {
  ack?: HostAck;
  opened?: number;
  refused?: string;
  openFailed?: string;
}

for (const api of APIS) {
  test(`${api}: two hosts fight over one volume: one writer at a time, nothing acknowledged lost, never corrupted`, { timeout: (SECONDS + 300) * 1000 }, async (t) => {
    const env = requireSwift(t);
    if (!env) return;
    const store = makeStore(env, api);
    const container = uniqueName(`split-brain-${api}`);
    const dir = await mkdtemp(join(tmpdir(), 'swiftfs-split-brain-'));
    const children: ChildProcess[] = [];
    let keep = false;
    try {
      const format = await Volume.format(store, container, { createContainer: true, blockSize: 256 * 1024 });
      const logs = ['h1', 'h2'].map((h) => join(dir, `${h}.log`));
      for (const [i, h] of ['h1', 'h2'].entries()) {
        const child = spawn(process.execPath, [HOST, h, container, join(dir, `cache-${h}`), logs[i]!, String(1000 + i * 7 + (Date.now() % 1000)), api], { env: process.env, stdio: ['ignore', 'ignore', 'inherit'] });
        children.push(child);
      }
      const until = Date.now() + SECONDS * 1000;
      let fences = 0;
      while (Date.now() < until) {
        await new Promise((res) => setTimeout(res, 8000 + Math.floor(Math.random() * 12_000)));
        if (process.env['SWIFTFS_SPLIT_BRAIN_NO_FENCE']) continue; // to tell the hosts' own races from the fences'
        try {
          await fenceContainer({ store, container, region: 'A', uuid: format.uuid, mode: 'retire', movedTo: null, reason: 'split-brain test' });
          fences++;
        } catch {
          // a takeover raced it
        }
        for (const c of children) if (c.exitCode !== null) throw new Error(`a host exited (${c.exitCode})`);
      }
      for (const c of children) c.kill('SIGKILL');
      await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit').catch(() => undefined) : undefined)));

      const lines = logs.flatMap((f) => readLog<HostLine>(f));
      const acks = lines.flatMap((l) => (l.ack ? [l.ack] : []));
      const opens = lines.filter((l) => l.opened !== undefined).length;
      const openFailures = lines.filter((l) => l.openFailed !== undefined).length;
      const refused = lines.filter((l) => l.refused !== undefined).length;
      let verdict;
      try {
        verdict = await verifySingleWriterJournal(store, container, acks);
      } catch (err) {
        if (process.env['SWIFTFS_KEEP_FAILED']) {
          const { writeFileSync } = await import('node:fs');
          writeFileSync(`/tmp/split-brain-failed-${api}.json`, JSON.stringify({ container, lines }, null, 1));
          keep = true;
        }
        throw err;
      }
      t.diagnostic(
        `${opens} takeovers (${openFailures} lost a race), ${fences} fences, ${acks.length} acknowledged fsyncs, ${refused} writes refused to fenced sessions; ` +
          `journal of ${verdict.segments} segments by ${verdict.epochs.length} owners in ${verdict.runs.length} runs`,
      );
      assert.ok(opens >= 8, `the hosts took the volume many times (${opens})`);
      assert.ok(acks.length >= 30, `writes were acknowledged (${acks.length})`);
      assert.ok(refused >= 2, `sessions were fenced while writing (${refused})`);
      assert.ok(new Set(acks.map((a) => a.host)).size === 2, 'both hosts got writes in');
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      if (!keep) await dropContainer(store, container);
      await store.close();
      if (process.env['SWIFTFS_SPLIT_BRAIN_KEEP']) t.diagnostic(`host logs kept in ${dir}`);
      else await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  });
}
