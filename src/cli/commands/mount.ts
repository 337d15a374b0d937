/**
 * PLACEHOLDER for `swiftfs mount` (Mount a volume on a directory (FUSE)), to be replaced by the FUSE engineer, who owns this file.
 * Until then the command is listed in --help as "(not yet built)" and exits with status 2 when run.
 */

import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('mount')
    .usage('VOLUME MOUNTPOINT [options]')
    .description('Mount a volume on a directory (FUSE) (not yet built)')
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .argument('[args...]')
    .action(() => {
      process.stderr.write('swiftfs mount: not yet built\n');
      process.exitCode = 2;
    });
}
