/**
 * The POSIX suite against a plain local directory: the reference. If a check fails here, the check is wrong
 * (it asserts something Linux does not do), not the filesystem.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { posixSuite } from './suite.js';

let root = '';
before(() => {
  root = mkdtempSync(join(tmpdir(), 'posix-native-'));
});
after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

posixSuite('local directory (reference)', () => root, { nanosecondTimes: true, dirNlink: true });
