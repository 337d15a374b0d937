/**
 * `swiftfs relocate VOLUME --to REGION`: move a volume to another store or region (commit everything, copy the
 * container, hand ownership over). PLACEHOLDER: the command is declared with its arguments so that --help
 * shows it, and says "not yet built" (exit status 2) when run.
 */

import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('relocate')
    .description('Move a volume to another store or region (not yet built)')
    .argument('<volume>', 'the volume: swift://[STORE/]CONTAINER, s3://[STORE/]BUCKET')
    .requiredOption('--to <store-or-region>', 'the store (or region of a store) to move it to')
    .action(() => {
      process.stderr.write('swiftfs relocate: not yet built\n');
      process.exitCode = 2;
    });
}
