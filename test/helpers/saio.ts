// Test control over a running scripts/swift-saio.sh instance: stop and restart its proxy (to simulate
// an outage of a region) and make unique container names so that tests never collide.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (this file is compiled to dist/test/helpers/saio.js). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const saioScript = join(repoRoot, 'scripts', 'swift-saio.sh');

export interface SaioCommandResult {
  stdout: string;
  stderr: string;
}

/** Runs `scripts/swift-saio.sh COMMAND DIR ...`; rejects with its output on failure or timeout. */
export function runSaio(command: string, dir: string, args: string[] = [], timeoutMs = 120_000): Promise<SaioCommandResult> {
  if (!dir) return Promise.reject(new Error(`swift-saio ${command}: no SAIO directory (SWIFTFS_TEST_SAIO_DIR unset?)`));
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [saioScript, command, dir, ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const why = error.killed ? `timed out after ${timeoutMs} ms` : `failed (${error.code ?? error.signal})`;
          reject(new Error(`swift-saio.sh ${command} ${dir} ${why}\n${stdout}${stderr}`));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

/** Stops the proxy of the instance in `dir`: its port then refuses connections (the backends keep running). */
export async function stopProxy(dir: string, timeoutMs = 60_000): Promise<void> {
  await runSaio('stop-proxy', dir, [], timeoutMs);
}

/** Starts the proxy of the instance in `dir` again and resolves once it answers TempAuth. */
export async function startProxy(dir: string, timeoutMs = 120_000): Promise<void> {
  await runSaio('start-proxy', dir, [], timeoutMs);
}

/**
 * A container/bucket name unique to this run: `prefix-<time>-<random>`, lowercase, at most 63 chars,
 * valid both as a Swift container and as a DNS-compliant S3 bucket name.
 */
export function uniqueName(prefix = 'test'): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'test';
  const suffix = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  return `${clean.slice(0, 63 - suffix.length - 1)}-${suffix}`;
}
