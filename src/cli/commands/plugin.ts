/**
 * PLACEHOLDER for `swiftfs plugin` (Run the Docker volume plugin), to be replaced by the Docker engineer, who owns this file.
 * Until then the command is listed in --help as "(not yet built)" and exits with status 2 when run.
 */

import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('plugin')
    .usage('[options]')
    .description('Run the Docker volume plugin (not yet built)')
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .argument('[args...]')
    .action(() => {
      process.stderr.write('swiftfs plugin: not yet built\n');
      process.exitCode = 2;
    });
}
