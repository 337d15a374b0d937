/**
 * A store decorator for unit tests that behaves like Swift where fencing is concerned (not a test itself):
 *
 *  - create-only puts are NOT atomic: `If-None-Match: *` is checked when a put arrives, and the object is written
 *    when its (delayed) body is complete, so two racing create-only puts of one name can both succeed;
 *  - every put is stamped when it arrives (the proxy's X-Timestamp); the newest stamp stays: a put that completes
 *    after a newer one of the same name is dropped, yet answered as a success (the worst case for the caller);
 *  - puts can be delayed per key (`putDelayMs`), to make them land late at chosen moments.
 *
 * capabilities() says conditionalCreate without createOnlyAtomic, as the Swift store does.
 */

import { createHash } from 'node:crypto';
import { StoreError, StoreErrorCode } from '../../src/store/errors.js';
import type { Capabilities, ContainerInfo, CreateContainerOptions, GetOptions, GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutBody, PutOptions, PutResult } from '../../src/store/object-store.js';
import type { MemoryStore } from '../../src/store/memory-store.js';

async function collect(body: PutBody): Promise<Buffer> {
  if (body instanceof Uint8Array) return Buffer.from(body);
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

export interface SwiftLikeOptions {
  /** Delay of a put's body (ms) before it is written, by key; 0 or undefined: at once. Read at each put. */
  putDelayMs?: (key: string) => number;
}

export class SwiftLikeStore implements ObjectStore {
  readonly description: string;
  /** Puts that completed after a newer put of the same name (dropped, answered as success). */
  droppedPuts: { key: string; stamp: number }[] = [];
  /** Create-only puts that both passed their check for one name (the race Swift loses). */
  racedCreates = 0;
  putDelayMs: (key: string) => number;
  private clock = 0;
  private readonly stamps = new Map<string, number>();
  private readonly inFlightCreates = new Map<string, number>();

  constructor(
    private readonly inner: MemoryStore,
    opts: SwiftLikeOptions = {},
  ) {
    this.description = `swift-like ${inner.description}`;
    this.putDelayMs = opts.putDelayMs ?? (() => 0);
  }

  async capabilities(container?: string): Promise<Capabilities> {
    const caps = await this.inner.capabilities(container);
    const { createOnlyAtomic: _atomic, ...rest } = caps;
    void _atomic;
    return { ...rest, kind: 'swift' };
  }

  async put(container: string, key: string, body: PutBody, options: PutOptions = {}): Promise<PutResult> {
    const stamp = ++this.clock; // X-Timestamp: when the request arrives
    const data = await collect(body);
    const name = `${container}\0${key}`;
    if (options.ifNoneMatch === '*') {
      let exists = true;
      try {
        await this.inner.head(container, key);
      } catch (err) {
        if (!(err instanceof StoreError) || err.code !== StoreErrorCode.NotFound) throw err;
        exists = false;
      }
      if (exists) throw new StoreError(StoreErrorCode.PreconditionFailed, `put ${container}/${key}: the object already exists`, { op: 'put', container, key, status: 412 });
      const racing = this.inFlightCreates.get(name) ?? 0;
      if (racing > 0) this.racedCreates++;
      this.inFlightCreates.set(name, racing + 1);
    }
    try {
      const delay = this.putDelayMs(key);
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      if ((this.stamps.get(name) ?? 0) > stamp) {
        this.droppedPuts.push({ key, stamp });
        return { etag: createHash('md5').update(data).digest('hex') };
      }
      this.stamps.set(name, stamp);
      const { ifNoneMatch: _inm, signal: _signal, size: _size, ...rest } = options;
      void _inm;
      void _signal;
      void _size;
      return await this.inner.put(container, key, data, rest);
    } finally {
      if (options.ifNoneMatch === '*') this.inFlightCreates.set(name, (this.inFlightCreates.get(name) ?? 1) - 1);
    }
  }

  async delete(container: string, key: string, options?: { signal?: AbortSignal }): Promise<void> {
    this.stamps.set(`${container}\0${key}`, ++this.clock);
    await this.inner.delete(container, key, options);
  }

  createContainer(name: string, options?: CreateContainerOptions): Promise<{ created: boolean }> {
    return this.inner.createContainer(name, options);
  }
  headContainer(name: string): Promise<ContainerInfo> {
    return this.inner.headContainer(name);
  }
  deleteContainer(name: string): Promise<void> {
    return this.inner.deleteContainer(name);
  }
  listContainers(prefix?: string): Promise<string[]> {
    return this.inner.listContainers(prefix);
  }
  setLabels(container: string, labels: Record<string, string | null>): Promise<void> {
    return this.inner.setLabels(container, labels);
  }
  getLabels(container: string): Promise<Record<string, string>> {
    return this.inner.getLabels(container);
  }
  get(container: string, key: string, options?: GetOptions): Promise<GetResult> {
    return this.inner.get(container, key, options);
  }
  head(container: string, key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo> {
    return this.inner.head(container, key, options);
  }
  list(container: string, options?: ListOptions): Promise<ListPage> {
    return this.inner.list(container, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
