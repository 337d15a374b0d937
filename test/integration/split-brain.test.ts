/**
 * Split brain on the real Swift: two "hosts" (two processes with their own cache directories) keep taking one
 * volume over from each other at random moments for a minute, writing and fsyncing, closing or crashing their
 * sessions; the test process fences the volume now and then as a relocation would, and at the end kills both
 * hosts hard. The journal then shows that at most one writer committed at any time, every fsync a host saw
 * return is in the journal under that host's epoch with its bytes, and the volume is consistent.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Volume } from '../../src/core/volume.js';
import { fenceContainer } from '../../src/region/fence.js';
import { uniqueName } from '../helpers/saio.js';
import { verifySingleWriterJournal } from '../unit/region-helpers.js';
import { dropContainer, readLog, regions } from './relocate-helpers.js';
import type { HostAck } from './split-brain-host.js';

const HOST = join(dirname(fileURLToPath(import.meta.url)), 'split-brain-host.js');

interface HostLine {
  ack?: HostAck;
  opened?: number;
  refused?: string;
  openFailed?: string;
}

/**
 * Known to fail on Swift until the committer verifies its commits (src/region/README.md, "Swift's create-only
 * put is not atomic"): a core writer whose segment put races exactly with a takeover's or a fence's can have
 * both puts succeed. Marked TODO (it still runs, and reports "not ok # TODO" when it fails) unless
 * SWIFTFS_SPLIT_BRAIN_STRICT=1.
 */
const KNOWN_CORE_RACE = process.env['SWIFTFS_SPLIT_BRAIN_STRICT']
  ? false
  : 'core: concurrent create-only segment puts can both succeed on Swift; the committer must check the owner record after each segment put (issue 6 report)';

test('two hosts fight over one volume for a minute: one writer at a time, nothing acknowledged lost, never corrupted', { timeout: 400_000, todo: KNOWN_CORE_RACE }, async (t) => {
  const r = await regions(t);
  if (!r) return;
  const container = uniqueName('split-brain');
  const children: ChildProcess[] = [];
  let keep = false;
  try {
    const format = await Volume.format(r.storeA, container, { createContainer: true, blockSize: 256 * 1024 });
    const logs = ['h1', 'h2'].map((h) => join(r.dir, `${h}.log`));
    for (const [i, h] of ['h1', 'h2'].entries()) {
      const child = spawn(process.execPath, [HOST, h, container, join(r.dir, `cache-${h}`), logs[i]!, String(1000 + i * 7 + Date.now() % 1000)], { env: process.env, stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(child);
    }
    const until = Date.now() + 60_000;
    let fences = 0;
    while (Date.now() < until) {
      await new Promise((res) => setTimeout(res, 2000 + Math.floor(Math.random() * 4000)));
      if (process.env['SWIFTFS_SPLIT_BRAIN_NO_FENCE']) continue; // to tell the hosts' own races from the fences'
      try {
        await fenceContainer({ store: r.storeA, container, region: 'A', uuid: format.uuid, mode: 'retire', movedTo: null, reason: 'split-brain test' });
        fences++;
      } catch {
        // a takeover raced it
      }
      for (const c of children) if (c.exitCode !== null) throw new Error(`a host exited (${c.exitCode})`);
    }
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => once(c, 'exit').catch(() => undefined)));

    const lines = logs.flatMap((f) => readLog<HostLine>(f));
    const acks = lines.flatMap((l) => (l.ack ? [l.ack] : []));
    const opens = lines.filter((l) => l.opened !== undefined).length;
    const refused = lines.filter((l) => l.refused !== undefined).length;
    let verdict;
    try {
      verdict = await verifySingleWriterJournal(r.storeA, container, acks);
    } catch (err) {
      if (process.env['SWIFTFS_KEEP_FAILED']) {
        const { writeFileSync } = await import('node:fs');
        writeFileSync('/tmp/split-brain-failed.json', JSON.stringify({ container, lines }, null, 1));
        keep = true;
      }
      throw err;
    }
    t.diagnostic(`${opens} takeovers, ${fences} fences, ${acks.length} acknowledged fsyncs, ${refused} writes refused to fenced sessions; journal of ${verdict.segments} segments by ${verdict.epochs.length} owners in ${verdict.runs.length} runs`);
    assert.ok(opens >= 20, `the hosts took the volume many times (${opens})`);
    assert.ok(acks.length >= 30, `writes were acknowledged (${acks.length})`);
    assert.ok(refused >= 1, 'some sessions were fenced while writing');
    assert.ok(new Set(acks.map((a) => a.host)).size === 2, 'both hosts got writes in');
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (!keep) await dropContainer(r.storeA, container);
    await r.close();
  }
});
