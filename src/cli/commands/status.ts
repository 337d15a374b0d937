/**
 * PLACEHOLDER for `swiftfs status` (Show mounted volumes: dirty bytes, upload queue, owner, store), to be replaced by the FUSE engineer, who owns this file.
 * Until then the command is listed in --help as "(not yet built)" and exits with status 2 when run.
 */

import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('status')
    .usage('[MOUNTPOINT]')
    .description('Show mounted volumes: dirty bytes, upload queue, owner, store (not yet built)')
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .argument('[args...]')
    .action(() => {
      process.stderr.write('swiftfs status: not yet built\n');
      process.exitCode = 2;
    });
}
