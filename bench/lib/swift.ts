/**
 * Direct access to the benchmark's Swift (TempAuth, plain fetch and curl), independent of swiftfs's own store
 * layer: used to check what really reached the store, to clean containers, and to measure the raw backend.
 */

import { sh } from './proc.js';

export interface SwiftEndpoint {
  authUrl: string;
  user: string;
  key: string;
  s3Endpoint: string;
}

export interface SwiftSession {
  storageUrl: string;
  token: string;
}

export async function authenticate(ep: SwiftEndpoint): Promise<SwiftSession> {
  const res = await fetch(ep.authUrl, { headers: { 'X-Auth-User': ep.user, 'X-Auth-Key': ep.key } });
  await res.arrayBuffer();
  const token = res.headers.get('x-auth-token');
  const storageUrl = res.headers.get('x-storage-url');
  if (res.status !== 200 || !token || !storageUrl) throw new Error(`swift auth failed: ${res.status}`);
  return { token, storageUrl };
}

const enc = (s: string) => s.split('/').map(encodeURIComponent).join('/');

export async function createContainer(s: SwiftSession, name: string): Promise<void> {
  const res = await fetch(`${s.storageUrl}/${enc(name)}`, { method: 'PUT', headers: { 'X-Auth-Token': s.token } });
  await res.arrayBuffer();
  if (res.status !== 201 && res.status !== 202) throw new Error(`create container ${name}: ${res.status}`);
}

export interface ListedObject {
  name: string;
  bytes: number;
}

export async function listObjects(s: SwiftSession, container: string, prefix = ''): Promise<ListedObject[]> {
  const out: ListedObject[] = [];
  let marker = '';
  for (;;) {
    const q = new URLSearchParams({ format: 'json', limit: '10000', prefix, marker });
    const res = await fetch(`${s.storageUrl}/${enc(container)}?${q}`, { headers: { 'X-Auth-Token': s.token } });
    if (res.status === 404) return out;
    const page = (await res.json()) as ListedObject[];
    out.push(...page.filter((o) => o.name !== undefined));
    if (page.length < 10000) return out;
    marker = page[page.length - 1]!.name;
  }
}

export async function headObject(s: SwiftSession, container: string, key: string): Promise<number | undefined> {
  const res = await fetch(`${s.storageUrl}/${enc(container)}/${enc(key)}`, { method: 'HEAD', headers: { 'X-Auth-Token': s.token } });
  if (res.status !== 200) return undefined;
  return Number(res.headers.get('content-length'));
}

/** Deletes every object, then the container (and a +segments companion); ignores what is already gone. */
export async function destroyContainer(s: SwiftSession, name: string): Promise<void> {
  for (const c of [name, `${name}+segments`, `${name}_segments`]) {
    const objects = await listObjects(s, c);
    // Bulk delete would be faster; a parallel curl keeps this dependency-free and simple.
    const lines = objects.map((o) => `${s.storageUrl}/${enc(c)}/${enc(o.name)}`).join('\n');
    if (lines) await sh(`xargs -P 16 -n 1 curl -s -o /dev/null -X DELETE -H "X-Auth-Token: ${s.token}"`, { input: lines + '\n', allowFail: true });
    const res = await fetch(`${s.storageUrl}/${enc(c)}`, { method: 'DELETE', headers: { 'X-Auth-Token': s.token } });
    await res.arrayBuffer();
  }
}
