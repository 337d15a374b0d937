#!/usr/bin/env node
// adapter-cost.mjs — CPU and wall time of the FUSE adapter's write and read paths alone: no kernel, and a core
// that does nothing but copy bytes (what native-notes/kernel.md quotes). 8192 requests of 128 KiB (1 GiB) per
// path, three rounds.
//
//   node test/fuse/adapter-cost.mjs [OTHER_ADAPTER_JS]
//
// Uses dist/src/fuse/adapter.js (build first); OTHER_ADAPTER_JS (e.g. the dist of an older checkout: a git
// worktree's dist/src/fuse/adapter.js) is measured the same way, for a before/after.
import { performance } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const adapters = [['current', join(repo, 'dist', 'src', 'fuse', 'adapter.js')]];
if (process.argv[2]) adapters.unshift(['other', process.argv[2]]);
const SIZE = 128 * 1024;
const N = 8192;
const source = Buffer.alloc(4 * 1024 * 1024, 7);
const core = {
  async write(_fh, data) {
    return data.length;
  },
  async readInto(_fh, target, length, position) {
    const at = position % (source.length - length);
    source.copy(target, 0, at, at + length);
    return length;
  },
  async read(fh, length, position) {
    const out = Buffer.allocUnsafe(length); // what Volume.read does
    await core.readInto(fh, out, length, position);
    return out;
  },
};
const log = { error() {}, warn() {}, info() {}, debug() {} };
const libfuseBuffer = Buffer.alloc(SIZE);

async function measure(mod, op) {
  const a = mod.createFuseAdapter({ fs: core, log, caller: { uid: 0, gid: 0 } });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) await new Promise((resolve) => a.ops[op]('/f', 1, libfuseBuffer, SIZE, i * SIZE, resolve));
  const c = process.cpuUsage(c0);
  return `${Math.round((c.user + c.system) / 1000)} ms CPU / ${Math.round(performance.now() - t0)} ms`;
}

const mods = await Promise.all(adapters.map(async ([name, file]) => [name, await import(pathToFileURL(file).href)]));
for (let round = 1; round <= 3; round++) {
  for (const [name, mod] of mods) console.log(`round ${round} ${name}: write ${await measure(mod, 'write')}, read ${await measure(mod, 'read')} (1 GiB in 128 KiB requests)`);
}
