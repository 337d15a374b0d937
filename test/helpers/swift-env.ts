// Test access to the real Swift servers (regions A and B) that scripts/swift-saio.sh runs.
//
// The servers are described by environment variables (set by scripts/run-tests.mjs, or by hand with
// `eval "$(scripts/swift-saio.sh env DIR)"` and `... env DIR2 B`):
//   SWIFTFS_TEST_ST_AUTH, _ST_USER, _ST_KEY, _S3_ENDPOINT, _SAIO_DIR   (region A)
//   the same names with the suffix _B                                     (region B)
// Integration tests call requireSwift(t) first: it skips the test when the variables are missing,
// except under CI (CI=true), where a missing server is a failure, never a silent skip.

import type { TestContext } from 'node:test';

export type SwiftRegion = 'A' | 'B';

/** Everything a test needs to reach one test Swift, through either API. */
export interface SwiftTestEnv {
  region: SwiftRegion;
  /** TempAuth v1 URL, e.g. http://127.0.0.1:18080/auth/v1.0 */
  authUrl: string;
  /** TempAuth user, `account:user` (test:tester) */
  user: string;
  /** TempAuth key */
  key: string;
  /** S3 API endpoint of the same server (path-style), e.g. http://127.0.0.1:18080 */
  s3Endpoint: string;
  /** S3 access key: the TempAuth `account:user` */
  s3AccessKey: string;
  /** S3 secret: the TempAuth key */
  s3Secret: string;
  /** The server's directory, for scripts/swift-saio.sh stop-proxy / start-proxy; '' when unknown */
  saioDir: string;
}

const VARIABLES = ['ST_AUTH', 'ST_USER', 'ST_KEY', 'S3_ENDPOINT', 'SAIO_DIR'] as const;
const REQUIRED = ['ST_AUTH', 'ST_USER', 'ST_KEY'] as const;

function variableName(name: (typeof VARIABLES)[number], region: SwiftRegion): string {
  return `SWIFTFS_TEST_${name}${region === 'B' ? '_B' : ''}`;
}

/** Names of the required variables that are missing for a region (empty when all are set). */
export function missingSwiftVariables(region: SwiftRegion = 'A', env: NodeJS.ProcessEnv = process.env): string[] {
  return REQUIRED.map((n) => variableName(n, region)).filter((v) => !env[v]);
}

/** Reads a region's variables; undefined when the required ones are not all set. */
export function readSwiftEnv(region: SwiftRegion = 'A', env: NodeJS.ProcessEnv = process.env): SwiftTestEnv | undefined {
  if (missingSwiftVariables(region, env).length > 0) return undefined;
  const get = (name: (typeof VARIABLES)[number]): string => env[variableName(name, region)] ?? '';
  const authUrl = get('ST_AUTH');
  const user = get('ST_USER');
  const key = get('ST_KEY');
  // The S3 API is served by the same proxy: default to the auth URL's origin.
  const s3Endpoint = get('S3_ENDPOINT') || new URL(authUrl).origin;
  return { region, authUrl, user, key, s3Endpoint, s3AccessKey: user, s3Secret: key, saioDir: get('SAIO_DIR') };
}

/** True when running under CI, where missing test servers must fail the run instead of skipping. */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true';
}

/**
 * For node:test: returns the region's SwiftTestEnv, or, when its variables are unset, skips the test
 * (t.skip with a message, returning undefined) — or throws when CI=true.
 *
 *   test('...', async (t) => { const swift = requireSwift(t); if (!swift) return; ... });
 */
export function requireSwift(t: Pick<TestContext, 'skip'>, region: SwiftRegion = 'A'): SwiftTestEnv | undefined {
  const swift = readSwiftEnv(region);
  if (swift) return swift;
  const missing = missingSwiftVariables(region).join(', ');
  const message =
    `needs a test Swift (region ${region}): ${missing} not set ` +
    `(run through "npm test", or start one with scripts/swift-saio.sh and eval its "env" output)`;
  if (isCi()) throw new Error(`CI=true but ${message}`);
  t.skip(message);
  return undefined;
}
