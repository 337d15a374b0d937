// The test bed itself: both test Swift regions (scripts/swift-saio.sh) answer TempAuth, store and
// return objects through plain fetch, are independent of each other, and the proxy of a region can
// be stopped (connection refused) and started again with its data intact.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { startProxy, stopProxy, uniqueName } from '../helpers/saio.js';
import { requireSwift, type SwiftTestEnv } from '../helpers/swift-env.js';

const HTTP_TIMEOUT_MS = 15_000;

interface Session {
  token: string;
  storageUrl: string;
}

async function authenticate(swift: SwiftTestEnv): Promise<Session> {
  const res = await fetch(swift.authUrl, {
    headers: { 'X-Auth-User': swift.user, 'X-Auth-Key': swift.key },
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  await res.arrayBuffer();
  assert.equal(res.status, 200, `TempAuth of region ${swift.region} answered ${res.status}`);
  const token = res.headers.get('x-auth-token');
  const storageUrl = res.headers.get('x-storage-url');
  assert.ok(token, 'no X-Auth-Token');
  assert.ok(storageUrl, 'no X-Storage-Url');
  return { token, storageUrl };
}

async function swiftRequest(
  session: Session,
  method: string,
  path: string,
  body?: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const res = await fetch(`${session.storageUrl}/${path}`, {
    method,
    headers: { 'X-Auth-Token': session.token, ...headers },
    ...(body ? { body } : {}),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

/** Deletes a container and the objects in it (first listing page is enough for these tests). */
async function removeContainer(session: Session, container: string): Promise<void> {
  const list = await swiftRequest(session, 'GET', `${container}?format=json`);
  if (list.status === 200) {
    for (const { name } of JSON.parse(list.body.toString()) as { name: string }[]) {
      await swiftRequest(session, 'DELETE', `${container}/${encodeURIComponent(name)}`);
    }
  }
  await swiftRequest(session, 'DELETE', container);
}

/** The code of the error behind a failed fetch (undici puts it in `cause`). */
function networkErrorCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
  return cause?.code ?? cause?.errors?.[0]?.code;
}

for (const region of ['A', 'B'] as const) {
  test(`region ${region}: TempAuth gives a token and a storage URL on the same server`, async (t) => {
    const swift = requireSwift(t, region);
    if (!swift) return;
    const session = await authenticate(swift);
    assert.equal(new URL(session.storageUrl).origin, new URL(swift.authUrl).origin);
    assert.match(session.storageUrl, /\/v1\/AUTH_test$/);
    const account = await swiftRequest(session, 'HEAD', '');
    assert.ok([200, 204].includes(account.status), `account HEAD answered ${account.status}`);
    // a wrong key is refused
    const bad = await fetch(swift.authUrl, {
      headers: { 'X-Auth-User': swift.user, 'X-Auth-Key': `${swift.key}-wrong` },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    await bad.arrayBuffer();
    assert.equal(bad.status, 401);
  });

  test(`region ${region}: object PUT then GET returns the same bytes and metadata`, async (t) => {
    const swift = requireSwift(t, region);
    if (!swift) return;
    const session = await authenticate(swift);
    const container = uniqueName(`saio-rt-${region.toLowerCase()}`);
    try {
      assert.equal((await swiftRequest(session, 'PUT', container)).status, 201);
      const data = randomBytes(256 * 1024 + 17);
      const put = await swiftRequest(session, 'PUT', `${container}/dir/obj.bin`, data, {
        'X-Object-Meta-Test': 'round-trip',
        'Content-Type': 'application/octet-stream',
      });
      assert.equal(put.status, 201);
      const get = await swiftRequest(session, 'GET', `${container}/dir/obj.bin`);
      assert.equal(get.status, 200);
      assert.ok(get.body.equals(data), 'GET returned different bytes');
      assert.equal(get.headers.get('x-object-meta-test'), 'round-trip');
      const range = await swiftRequest(session, 'GET', `${container}/dir/obj.bin`, undefined, { Range: 'bytes=10-19' });
      assert.equal(range.status, 206);
      assert.ok(range.body.equals(data.subarray(10, 20)));
      // create-only PUT is honoured by the native API (the store relies on it)
      const again = await swiftRequest(session, 'PUT', `${container}/dir/obj.bin`, data, { 'If-None-Match': '*' });
      assert.equal(again.status, 412);
    } finally {
      await removeContainer(session, container);
    }
  });
}

test('regions A and B are independent (containers and tokens)', async (t) => {
  const a = requireSwift(t, 'A');
  const b = requireSwift(t, 'B');
  if (!a || !b) return;
  assert.notEqual(new URL(a.authUrl).origin, new URL(b.authUrl).origin, 'A and B are the same server');
  const sessionA = await authenticate(a);
  const sessionB = await authenticate(b);
  const container = uniqueName('saio-only-in-a');
  try {
    assert.equal((await swiftRequest(sessionA, 'PUT', container)).status, 201);
    assert.equal((await swiftRequest(sessionA, 'PUT', `${container}/x`, Buffer.from('a'))).status, 201);
    assert.equal((await swiftRequest(sessionA, 'HEAD', container)).status, 204);
    assert.equal((await swiftRequest(sessionB, 'HEAD', container)).status, 404, 'container created in A exists in B');
    assert.equal((await swiftRequest(sessionB, 'GET', `${container}/x`)).status, 404);
    // tokens live in each region's own memcached: A's token means nothing to B
    const crossToken = await swiftRequest({ token: sessionA.token, storageUrl: sessionB.storageUrl }, 'HEAD', '');
    assert.equal(crossToken.status, 401, "region B accepted region A's token");
  } finally {
    await removeContainer(sessionA, container);
  }
});

test('stop-proxy makes the region refuse connections; start-proxy brings it back with its data', { timeout: 300_000 }, async (t) => {
  const swift = requireSwift(t, 'B');
  if (!swift) return;
  assert.ok(swift.saioDir, 'SWIFTFS_TEST_SAIO_DIR_B is needed to stop and start the proxy');
  const session = await authenticate(swift);
  const container = uniqueName('saio-outage');
  const data = randomBytes(4096);
  assert.equal((await swiftRequest(session, 'PUT', container)).status, 201);
  assert.equal((await swiftRequest(session, 'PUT', `${container}/kept`, data)).status, 201);

  let proxyStopped = false;
  try {
    await stopProxy(swift.saioDir);
    proxyStopped = true;
    const refused = await swiftRequest(session, 'GET', `${container}/kept`).then(
      (res) => assert.fail(`the stopped proxy answered ${res.status}`),
      (error: unknown) => error,
    );
    assert.equal(networkErrorCode(refused), 'ECONNREFUSED', `expected ECONNREFUSED, got ${String(refused)}`);
  } finally {
    if (proxyStopped) await startProxy(swift.saioDir);
  }

  // the token survives (it lives in memcached, not in the proxy) and so does the data
  const get = await swiftRequest(session, 'GET', `${container}/kept`);
  assert.equal(get.status, 200);
  assert.ok(get.body.equals(data));
  await removeContainer(await authenticate(swift), container);
});
