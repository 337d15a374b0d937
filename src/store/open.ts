/**
 * Opens an ObjectStore from the configuration: builds SwiftStoreOptions / S3StoreOptions from a StoreConfig
 * (src/config/load.ts) and creates the store. The Swift and S3 modules are imported on first use, so commands
 * that never touch a store (--help, config show) do not load undici or the AWS SDK.
 *
 * `describeStore` gives a one-line description for logs and status that never contains a secret.
 * Memory stores (mem://, type: memory) are shared per name within the process, so that two opens in one test
 * see the same data; closing one handle does not close the shared store.
 */

import type { Config, S3StoreConfig, StoreConfig, SwiftStoreConfig } from '../config/load.js';
import { resolveStoreName, storeConfig } from '../config/resolve.js';
import { addSecretValue, componentLogger, type Logger } from '../log.js';
import type { MemoryStore } from './memory-store.js';
import type { ObjectStore } from './object-store.js';
import type { S3StoreOptions } from './s3/s3-store.js';
import type { SwiftStoreOptions } from './swift/swift-store.js';

export interface OpenStoreOptions {
  /** The stores log through a child of this logger ({component: 'store', store: NAME}). */
  logger?: Logger;
}

/** The URL without user info, query or fragment (nothing secret survives). */
function safeUrl(url: string | undefined): string {
  if (url === undefined) return '';
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/** One line saying which store this is and how it authenticates; never a secret. */
export function describeStore(store: StoreConfig): string {
  const region = store.region === undefined ? '' : `, region ${store.region}`;
  switch (store.kind) {
    case 'memory':
      return `${store.name}: memory (in-process)${region}`;
    case 's3':
      return `${store.name}: s3 ${store.endpoint === undefined ? 'AWS' : safeUrl(store.endpoint)} (access key ${store.accessKeyId}${store.sessionToken ? ', session token' : ''}${region})`;
    case 'swift': {
      const auth = store.auth;
      let how: string;
      if (auth.type === 'tempauth') how = `tempauth ${auth.user} at ${safeUrl(auth.authUrl)}`;
      else if (auth.type === 'token') how = 'pre-issued token';
      else {
        const who = auth.applicationCredentialId !== undefined
          ? `application credential ${auth.applicationCredentialId}`
          : auth.applicationCredentialName !== undefined
            ? `application credential ${auth.applicationCredentialName} of ${auth.username ?? auth.userId}`
            : `user ${auth.username ?? auth.userId}`;
        const project = auth.projectName ?? auth.projectId;
        how = `keystone ${who}${project === undefined ? '' : ` project ${project}`} at ${safeUrl(auth.authUrl)}, ${auth.interface} endpoint`;
      }
      const storage = store.storageUrl === undefined ? '' : `, storage ${safeUrl(store.storageUrl)}`;
      return `${store.name}: swift ${how}${storage}${region}`;
    }
  }
}

function registerSecrets(store: StoreConfig): void {
  if (store.kind === 's3') {
    addSecretValue(store.secretAccessKey);
    addSecretValue(store.sessionToken);
  } else if (store.kind === 'swift') {
    const auth = store.auth;
    if (auth.type === 'tempauth') addSecretValue(auth.key);
    else if (auth.type === 'token') addSecretValue(auth.token);
    else {
      addSecretValue(auth.password);
      addSecretValue(auth.applicationCredentialSecret);
    }
  }
}

/** SwiftStoreOptions for a Swift store of the configuration. */
export function swiftStoreOptions(store: SwiftStoreConfig, logger?: Logger): SwiftStoreOptions {
  const auth = store.auth;
  const options: SwiftStoreOptions = {
    auth:
      auth.type === 'keystone'
        ? {
            type: 'keystone',
            authUrl: auth.authUrl,
            interface: auth.interface,
            ...definedOnly({
              username: auth.username,
              userId: auth.userId,
              userDomainName: auth.userDomainName,
              userDomainId: auth.userDomainId,
              password: auth.password,
              projectName: auth.projectName,
              projectId: auth.projectId,
              projectDomainName: auth.projectDomainName,
              projectDomainId: auth.projectDomainId,
              applicationCredentialId: auth.applicationCredentialId,
              applicationCredentialName: auth.applicationCredentialName,
              applicationCredentialSecret: auth.applicationCredentialSecret,
              region: store.region,
            }),
          }
        : auth.type === 'tempauth'
          ? { type: 'tempauth', authUrl: auth.authUrl, user: auth.user, key: auth.key }
          : { type: 'token', token: auth.token },
    requestTimeoutMs: store.requestTimeout,
    retry: { retries: store.retries },
    connections: store.connections,
  };
  if (store.storageUrl !== undefined) options.storageUrl = store.storageUrl;
  if (logger) options.logger = logger;
  return options;
}

/** S3StoreOptions for an S3 store of the configuration. */
export function s3StoreOptions(store: S3StoreConfig, logger?: Logger): S3StoreOptions {
  const options: S3StoreOptions = {
    region: store.region,
    accessKeyId: store.accessKeyId,
    secretAccessKey: store.secretAccessKey,
    requestTimeoutMs: store.requestTimeout,
    retry: { retries: store.retries },
    connections: store.connections,
  };
  if (store.endpoint !== undefined) options.endpoint = store.endpoint;
  if (store.sessionToken !== undefined) options.sessionToken = store.sessionToken;
  if (store.forcePathStyle !== undefined) options.forcePathStyle = store.forcePathStyle;
  if (logger) options.logger = logger;
  return options;
}

function definedOnly<T extends Record<string, unknown>>(record: T): Partial<T> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as Partial<T>;
}

const memoryStores = new Map<string, MemoryStore>();

/** Forgets every shared memory store (tests). */
export function resetMemoryStores(): void {
  memoryStores.clear();
}

async function sharedMemoryStore(name: string): Promise<ObjectStore> {
  let shared = memoryStores.get(name);
  if (!shared) {
    const { MemoryStore } = await import('./memory-store.js');
    shared = new MemoryStore({ name });
    memoryStores.set(name, shared);
  }
  const target = shared;
  // A handle whose close() leaves the shared store open for the process's other users.
  return new Proxy(target, {
    get(object, property) {
      if (property === 'close') return async () => {};
      const value = Reflect.get(object, property, object) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(object) : value;
    },
  });
}

/** Creates the ObjectStore of a store configuration. */
export async function openStoreConfig(store: StoreConfig, options: OpenStoreOptions = {}): Promise<ObjectStore> {
  registerSecrets(store);
  const logger = options.logger ? componentLogger(options.logger, 'store', { store: store.name }) : undefined;
  switch (store.kind) {
    case 'memory':
      return sharedMemoryStore(store.name);
    case 'swift': {
      const { createSwiftStore } = await import('./swift/swift-store.js');
      return createSwiftStore(swiftStoreOptions(store, logger));
    }
    case 's3': {
      const { createS3Store } = await import('./s3/s3-store.js');
      return createS3Store(s3StoreOptions(store, logger));
    }
  }
}

/**
 * Opens store `nameOrRegion` of the configuration (a store name, or the region of one store; default: the
 * default store). Throws ConfigError when there is no such store or it is incomplete.
 */
export async function openStore(config: Config, nameOrRegion?: string, options: OpenStoreOptions = {}): Promise<ObjectStore> {
  return openStoreConfig(storeConfig(config, resolveStoreName(config, nameOrRegion)), options);
}
