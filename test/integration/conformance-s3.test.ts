// The conformance suite against S3Store on the S3 API (s3api) of the real test Swift.

import { test } from 'node:test';
import { createS3Store } from '../../src/store/s3/s3-store.js';
import { runConformance } from '../conformance/suite.js';
import { uniqueName } from '../helpers/saio.js';
import { readSwiftEnv, requireSwift } from '../helpers/swift-env.js';

const swift = readSwiftEnv('A');

test('a test Swift (S3 API) is configured', (t) => {
  requireSwift(t, 'A');
});

runConformance(
  's3 (Swift s3api)',
  async () => {
    const env = swift!;
    return {
      store: createS3Store({
        endpoint: env.s3Endpoint,
        accessKeyId: env.s3AccessKey,
        secretAccessKey: env.s3Secret,
        requestTimeoutMs: 20_000,
        retry: { retries: 3, baseDelayMs: 50, maxDelayMs: 500 },
      }),
      kind: 's3',
      containerName: (purpose) => uniqueName(`ct-s3-${purpose}`),
      secrets: [env.s3Secret],
    };
  },
  { skip: swift ? false : 'no test Swift configured (SWIFTFS_TEST_ST_AUTH unset)' },
);
