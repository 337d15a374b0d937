/**
 * Shared by the relocation and split-brain integration tests: the two test Swift servers as regions A and B
 * (stores, a config file naming them, the CLI's environment), cleanup of test containers, and reading a
 * writer's acknowledgement log.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createSwiftStore } from '../../src/store/swift/swift-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { listAll } from '../../src/store/object-store.js';
import { requireSwift, type SwiftTestEnv } from '../helpers/swift-env.js';
import { swiftfsEnv } from '../helpers/mount.js';

export interface Regions {
  a: SwiftTestEnv;
  b: SwiftTestEnv;
  storeA: ObjectStore;
  storeB: ObjectStore;
  dir: string;
  configFile: string;
  /** Environment for `swiftfs` commands: the config file (stores A and B), a private run directory. */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export function swiftStore(env: SwiftTestEnv, requestTimeoutMs = 10_000): ObjectStore {
  return createSwiftStore({ auth: { type: 'tempauth', authUrl: env.authUrl, user: env.user, key: env.key }, requestTimeoutMs, retry: { retries: 2, baseDelayMs: 100 } });
}

/** Both regions, or undefined when the test was skipped (fails under CI, see requireSwift). */
export async function regions(t: TestContext): Promise<Regions | undefined> {
  const a = requireSwift(t, 'A');
  if (!a) return undefined;
  const b = requireSwift(t, 'B');
  if (!b) return undefined;
  if (!a.saioDir) {
    t.skip('needs SWIFTFS_TEST_SAIO_DIR to stop and start region A');
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), 'swiftfs-relocate-'));
  const configFile = join(dir, 'swiftfs.yaml');
  const store = (name: string, e: SwiftTestEnv) =>
    [`  ${name}:`, '    type: swift', '    auth: tempauth', `    auth-url: ${e.authUrl}`, `    user: ${e.user}`, `    key: ${e.key}`, '    request-timeout: 10s', '    retries: 2'].join('\n');
  writeFileSync(configFile, ['stores:', store('A', a), store('B', b), 'default-store: A', 'volumes:', '  defaults:', `    cache-dir: ${join(dir, 'cache')}`, ''].join('\n'), { mode: 0o600 });
  const env = swiftfsEnv(a, join(dir, 'run'), { SWIFTFS_CONFIG: configFile, SWIFTFS_LOG_LEVEL: 'warn' });
  const storeA = swiftStore(a);
  const storeB = swiftStore(b);
  return {
    a,
    b,
    storeA,
    storeB,
    dir,
    configFile,
    env,
    async close() {
      await storeA.close().catch(() => undefined);
      await storeB.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** Deletes a container and everything in it (best effort). */
export async function dropContainer(store: ObjectStore, container: string): Promise<void> {
  try {
    const keys: string[] = [];
    for await (const e of listAll(store, container)) if ('key' in e) keys.push(e.key);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < keys.length) await store.delete(container, keys[next++]!).catch(() => undefined);
      }),
    );
    await store.deleteContainer(container).catch(() => undefined);
  } catch {
    // gone already, or the region is down
  }
}

/** JSON lines of a log file (a torn last line is skipped). */
export function readLog<T>(file: string): T[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // torn by the kill
    }
  }
  return out;
}

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
