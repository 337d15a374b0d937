/**
 * Builds SwiftStoreOptions from environment variables in the usual OpenStack spellings, so that the CLI, the
 * plugin and the tests configure a Swift store the same way:
 *   TempAuth:   ST_AUTH, ST_USER, ST_KEY
 *   Keystone:   OS_AUTH_URL, OS_USERNAME | OS_USER_ID, OS_USER_DOMAIN_NAME | OS_USER_DOMAIN_ID, OS_PASSWORD,
 *               OS_PROJECT_NAME (or OS_TENANT_NAME) | OS_PROJECT_ID, OS_PROJECT_DOMAIN_NAME | OS_PROJECT_DOMAIN_ID,
 *               OS_APPLICATION_CREDENTIAL_ID | OS_APPLICATION_CREDENTIAL_NAME, OS_APPLICATION_CREDENTIAL_SECRET,
 *               OS_REGION_NAME, OS_INTERFACE (or OS_ENDPOINT_TYPE: publicURL/internalURL/adminURL)
 *   Either:     OS_STORAGE_URL (override), OS_AUTH_TOKEN (with OS_STORAGE_URL: a pre-issued token)
 * Every name may carry a prefix and a suffix: ('SWIFTFS_TEST_', '_B') reads SWIFTFS_TEST_ST_AUTH_B and so on.
 */

import { StoreError, StoreErrorCode } from '../errors.js';
import type { KeystoneInterface, KeystoneSettings } from './auth.js';
import type { SwiftStoreOptions } from './swift-store.js';

export function swiftOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  naming: { prefix?: string; suffix?: string } = {},
): Omit<SwiftStoreOptions, 'auth'> & { auth: SwiftStoreOptions['auth'] } | undefined {
  const prefix = naming.prefix ?? '';
  const suffix = naming.suffix ?? '';
  const get = (name: string): string | undefined => {
    const value = env[`${prefix}${name}${suffix}`];
    return value === undefined || value === '' ? undefined : value;
  };
  const storageUrl = get('OS_STORAGE_URL');
  const withStorage = <T extends object>(o: T) => (storageUrl === undefined ? o : { ...o, storageUrl });

  const stAuth = get('ST_AUTH');
  if (stAuth !== undefined) {
    const user = get('ST_USER');
    const key = get('ST_KEY');
    if (user === undefined || key === undefined) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${prefix}ST_AUTH${suffix} is set but ${prefix}ST_USER${suffix} or ${prefix}ST_KEY${suffix} is missing`, { op: 'config' });
    }
    return withStorage({ auth: { type: 'tempauth' as const, authUrl: stAuth, user, key } });
  }

  const authUrl = get('OS_AUTH_URL');
  if (authUrl !== undefined) {
    const keystone: KeystoneSettings = { type: 'keystone', authUrl };
    const fields: [keyof KeystoneSettings, string[]][] = [
      ['username', ['OS_USERNAME']],
      ['userId', ['OS_USER_ID']],
      ['userDomainName', ['OS_USER_DOMAIN_NAME']],
      ['userDomainId', ['OS_USER_DOMAIN_ID']],
      ['password', ['OS_PASSWORD']],
      ['projectName', ['OS_PROJECT_NAME', 'OS_TENANT_NAME']],
      ['projectId', ['OS_PROJECT_ID', 'OS_TENANT_ID']],
      ['projectDomainName', ['OS_PROJECT_DOMAIN_NAME']],
      ['projectDomainId', ['OS_PROJECT_DOMAIN_ID']],
      ['applicationCredentialId', ['OS_APPLICATION_CREDENTIAL_ID']],
      ['applicationCredentialName', ['OS_APPLICATION_CREDENTIAL_NAME']],
      ['applicationCredentialSecret', ['OS_APPLICATION_CREDENTIAL_SECRET']],
      ['region', ['OS_REGION_NAME']],
    ];
    for (const [field, names] of fields) {
      for (const name of names) {
        const value = get(name);
        if (value !== undefined) {
          (keystone as unknown as Record<string, string>)[field] = value;
          break;
        }
      }
    }
    const iface = get('OS_INTERFACE') ?? get('OS_ENDPOINT_TYPE');
    if (iface !== undefined) {
      const normalised = iface.replace(/URL$/, '').toLowerCase();
      if (normalised !== 'public' && normalised !== 'internal' && normalised !== 'admin') {
        throw new StoreError(StoreErrorCode.InvalidArgument, `${prefix}OS_INTERFACE${suffix} must be public, internal or admin (got ${JSON.stringify(iface)})`, { op: 'config' });
      }
      keystone.interface = normalised as KeystoneInterface;
    }
    return withStorage({ auth: keystone });
  }

  const token = get('OS_AUTH_TOKEN');
  if (token !== undefined) {
    if (storageUrl === undefined) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${prefix}OS_AUTH_TOKEN${suffix} needs ${prefix}OS_STORAGE_URL${suffix}`, { op: 'config' });
    }
    return { auth: { type: 'token', token }, storageUrl };
  }
  return undefined;
}
