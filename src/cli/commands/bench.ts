/**
 * `swiftfs bench`: runs the side-by-side benchmark of bench/ (swiftfs, rclone mount, s3fs and the raw backend on
 * the same Swift) from a source checkout. A thin launcher: the benchmark itself lives in bench/run.ts.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('bench')
    .description('Compare swiftfs with rclone mount, s3fs and the raw backend on one Swift (see bench/)')
    .option('--quick', 'a small version that runs in a couple of minutes')
    .option('--systems <list>', 'systems to run, comma-separated', 'swiftfs,rclone,s3fs,raw')
    .option('--work <dir>', 'scratch directory on a local disk', '/var/tmp/swiftfs-bench')
    .option('--out <dir>', 'where to write latest.{json,md,svg}')
    .action(async (opts: { quick?: boolean; systems: string; work: string; out?: string }) => {
      // dist/src/cli/commands/bench.js -> dist/bench/run.js
      const runner = fileURLToPath(new URL('../../../bench/run.js', import.meta.url));
      if (!existsSync(runner)) {
        process.stderr.write('swiftfs bench: the benchmark is part of a source checkout (bench/); run it from there with `npm run bench`\n');
        process.exitCode = 2;
        return;
      }
      const args = [runner, '--systems', opts.systems, '--work', opts.work, ...(opts.quick ? ['--quick'] : []), ...(opts.out ? ['--out', opts.out] : [])];
      const child = spawn(process.execPath, args, { stdio: 'inherit' });
      process.exitCode = await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
    });
}
