/**
 * Crash test on the real Swift: a child process runs a write-heavy workload on a Volume and logs what each
 * fsync acknowledged; the parent kill -9s it at a random moment, many times. After each kill:
 *  - (remote fsync) a read-only mount on an EMPTY cache directory — a new host — must already hold every block
 *    version acknowledged (or a newer one), and nothing but whole valid blocks;
 *  - a read-write mount on the SAME cache directory recovers the WAL and must hold them too (local fsync mode
 *    relies on exactly this).
 * Bounded: 8 kills per mode.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Volume } from '../../src/core/volume.js';
import { createSwiftStore } from '../../src/store/swift/swift-store.js';
import { listAll } from '../../src/store/object-store.js';
import { requireSwift } from '../helpers/swift-env.js';
import { uniqueName } from '../helpers/saio.js';
import { BLOCK, BLOCKS_PER_FILE, blockVersion, type AckLine } from './crash-blocks.js';
import { tempDir } from '../unit/volume-helpers.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-worker.js');
const KILLS = Number(process.env.SWIFTFS_CRASH_KILLS ?? 8);

function readAcks(logFile: string): Map<number, number[]> {
  const best = new Map<number, number[]>();
  for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const rec = JSON.parse(line) as AckLine & { opened?: boolean };
    if (rec.opened) continue;
    const prev = best.get(rec.file);
    if (!prev) best.set(rec.file, rec.versions);
    else best.set(rec.file, prev.map((v, i) => Math.max(v, rec.versions[i]!)));
  }
  return best;
}

async function verify(volume: Volume, acks: Map<number, number[]>, what: string): Promise<number> {
  let checked = 0;
  for (const [file, versions] of acks) {
    const fh = await volume.open(`/f${file}`, 0);
    const data = await volume.read(fh, BLOCKS_PER_FILE * BLOCK, 0);
    await volume.release(fh);
    for (let b = 0; b < BLOCKS_PER_FILE; b++) {
      const slice = data.subarray(b * BLOCK, (b + 1) * BLOCK);
      const got = slice.length === 0 ? 0 : blockVersion(slice.length === BLOCK ? slice : Buffer.concat([slice, Buffer.alloc(BLOCK - slice.length)]), file, b);
      assert.equal(typeof got, 'number', `${what}: /f${file} block ${b}: ${String(got)}`);
      assert.ok((got as number) >= versions[b]!, `${what}: /f${file} block ${b} has version ${got}, fsync acknowledged ${versions[b]}`);
      if (versions[b]! > 0) checked++;
    }
  }
  return checked;
}

function runWorker(args: string[], killAfterMs: number): Promise<{ killed: boolean; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let timer: NodeJS.Timeout | null = null;
    const logFile = args[4]!;
    const start = Date.now();
    // Kill a random time after the worker says it opened the volume (recovery done).
    const poll = setInterval(() => {
      const content = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
      if (content.includes(`"pid":${child.pid}`)) {
        clearInterval(poll);
        timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      } else if (Date.now() - start > 60_000) {
        clearInterval(poll);
        child.kill('SIGKILL');
        reject(new Error(`worker did not open the volume within 60 s: ${stderr}`));
      }
    }, 20);
    child.on('exit', (code, signal) => {
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      if (signal === 'SIGKILL') resolve({ killed: true, stderr });
      else reject(new Error(`worker exited by itself (code ${code}): ${stderr}`));
    });
  });
}

for (const mode of ['remote', 'local'] as const) {
  test(`kill -9 during a write-heavy workload loses nothing fsync acknowledged (fsync ${mode})`, { timeout: 240_000 }, async (t) => {
    const env = requireSwift(t);
    if (!env) return;
    const store = createSwiftStore({ auth: { type: 'tempauth', authUrl: env.authUrl, user: env.user, key: env.key }, requestTimeoutMs: 15_000 });
    const container = uniqueName(`crash-${mode}`);
    const cacheDir = await tempDir('swiftfs-crash-');
    const logFile = path.join(cacheDir, 'acks.log');
    const dirs = [cacheDir];
    try {
      await Volume.format(store, container, { createContainer: true, blockSize: 256 * 1024 });
      let seed = Date.now() % 100000;
      let totalChecked = 0;
      for (let i = 0; i < KILLS; i++) {
        const killAfter = 300 + ((seed * 7919 + i * 104729) % 2200);
        await runWorker([container, cacheDir, mode, String(seed++), logFile], killAfter);
        const acks = readAcks(logFile);
        if (mode === 'remote') {
          const elsewhere = await tempDir('swiftfs-crash-new-host-');
          dirs.push(elsewhere);
          const ro = await Volume.open(store, container, { cacheDir: elsewhere, readOnly: true });
          totalChecked += await verify(ro, acks, `kill ${i + 1}, new host`);
          await ro.close();
        }
        const rw = await Volume.open(store, container, { cacheDir, force: true });
        totalChecked += await verify(rw, acks, `kill ${i + 1}, same cache dir`);
        await rw.close();
      }
      assert.ok(totalChecked > 0, 'the workload acknowledged something');
      t.diagnostic(`${KILLS} kills, ${totalChecked} acknowledged block versions checked`);
    } finally {
      try {
        const keys: string[] = [];
        for await (const e of listAll(store, container)) if ('key' in e) keys.push(e.key);
        await Promise.all(keys.map((k) => store.delete(container, k).catch(() => undefined)));
        await store.deleteContainer(container).catch(() => undefined);
      } catch {
        // best effort
      }
      await store.close();
      for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
    }
  });
}
