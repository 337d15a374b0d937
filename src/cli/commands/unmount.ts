/**
 * PLACEHOLDER for `swiftfs unmount` (Unmount a volume after committing everything it holds), to be replaced by the FUSE engineer, who owns this file.
 * Until then the command is listed in --help as "(not yet built)" and exits with status 2 when run.
 */

import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('unmount')
    .usage('MOUNTPOINT')
    .description('Unmount a volume after committing everything it holds (not yet built)')
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .argument('[args...]')
    .action(() => {
      process.stderr.write('swiftfs unmount: not yet built\n');
      process.exitCode = 2;
    });
}
