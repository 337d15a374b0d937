/**
 * Scaffolding shared by the store fault tests against the real test Swift (test/integration/store-faults-swift
 * and store-faults-s3): timing a call and asserting its duration, and a fixture that starts a FaultProxy in front
 * of the server, creates a container holding the object `present` ("present object") through a direct store,
 * keeps track of the stores a test makes, and removes it all afterwards. Not a test itself.
 */

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import type { ObjectStore } from '../../src/store/object-store.js';
import { FaultProxy } from './fault-proxy.js';
import { uniqueName } from './saio.js';

/** Runs `fn` and returns how long it took, in ms. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

export function assertWithin(ms: number, min: number, max: number, what: string): void {
  assert.ok(ms >= min && ms <= max, `${what}: took ${Math.round(ms)} ms, expected ${min}..${max} ms`);
}

export interface StoreFaultsFixture<S extends ObjectStore> {
  /** The proxy in front of the server (started before the tests, closed after). */
  readonly proxy: FaultProxy;
  /** A store talking to the server directly (to check what really landed). */
  readonly direct: S;
  /** The test container, holding `present`. */
  readonly container: string;
  /** Registers a store made by a test, closed after the tests. Returns it. */
  track<T extends S>(store: T): T;
}

/**
 * Registers the before/after hooks of a fault suite (call it inside the `describe`): `upstream` is the origin the
 * proxy forwards to, `makeDirect` the direct store, `prefix` the container name's prefix.
 */
export function storeFaultsFixture<S extends ObjectStore>(opts: { upstream: () => string; makeDirect: () => S; prefix: string }): StoreFaultsFixture<S> {
  let proxy: FaultProxy | undefined;
  let direct: S | undefined;
  let container: string | undefined;
  const stores: S[] = [];
  const fixture: StoreFaultsFixture<S> = {
    get proxy() {
      return proxy!;
    },
    get direct() {
      return direct!;
    },
    get container() {
      return container!;
    },
    track(store) {
      stores.push(store);
      return store;
    },
  };

  before(async () => {
    proxy = await FaultProxy.start(opts.upstream());
    direct = fixture.track(opts.makeDirect());
    container = uniqueName(opts.prefix);
    await direct.createContainer(container);
    await direct.put(container, 'present', Buffer.from('present object'));
  });

  after(async () => {
    if (direct && container) {
      const page = await direct.list(container).catch(() => ({ objects: [] }));
      for (const object of page.objects) await direct.delete(container, object.key).catch(() => undefined);
      await direct.deleteContainer(container).catch(() => undefined);
    }
    for (const store of stores) await store.close();
    await proxy?.close();
  });

  return fixture;
}
