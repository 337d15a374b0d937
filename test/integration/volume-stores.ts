/**
 * Stores for the Volume integration tests: the real test Swift (SWIFTFS_TEST_*) through the Swift API and
 * through its S3 API, each with a fresh container per test.
 */
import type { TestContext } from 'node:test';
import { createSwiftStore } from '../../src/store/swift/swift-store.js';
import { createS3Store } from '../../src/store/s3/s3-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { listAll } from '../../src/store/object-store.js';
import { requireSwift, type SwiftTestEnv } from '../helpers/swift-env.js';
import { uniqueName } from '../helpers/saio.js';

export type Api = 'swift' | 's3';
export const APIS: Api[] = ['swift', 's3'];

export function makeStore(env: SwiftTestEnv, api: Api, requestTimeoutMs = 15_000): ObjectStore {
  if (api === 'swift') {
    return createSwiftStore({ auth: { type: 'tempauth', authUrl: env.authUrl, user: env.user, key: env.key }, requestTimeoutMs, retry: { retries: 2, baseDelayMs: 100 } });
  }
  return createS3Store({ endpoint: env.s3Endpoint, accessKeyId: env.s3AccessKey, secretAccessKey: env.s3Secret, requestTimeoutMs, retry: { retries: 2, baseDelayMs: 100 } });
}

export interface RealStore {
  env: SwiftTestEnv;
  store: ObjectStore;
  container: string;
  cleanup(): Promise<void>;
}

/** A store and a unique container name (not created); undefined when the test was skipped. */
export function realStore(t: TestContext, api: Api): RealStore | undefined {
  const env = requireSwift(t);
  if (!env) return undefined;
  const store = makeStore(env, api);
  const container = uniqueName(`core-${api}`);
  return {
    env,
    store,
    container,
    async cleanup() {
      try {
        const keys: string[] = [];
        for await (const e of listAll(store, container)) if ('key' in e) keys.push(e.key);
        for (const k of keys) await store.delete(container, k).catch(() => undefined);
        await store.deleteContainer(container).catch(() => undefined);
      } catch {
        // best effort
      }
      await store.close();
    },
  };
}
