/**
 * `swiftfs config show` prints the effective configuration (defaults, file, environment and flags merged) in
 * config-file form with every secret masked; `--origins` says where each value came from. `swiftfs config
 * options` prints the option reference (`--markdown`: the table that README.md embeds).
 */

import type { Command } from 'commander';
import { displayConfig, optionsMarkdown, optionsText, showConfigYaml } from '../../config/doc.js';
import { configFromCommand } from '../../config/flags.js';
import { describeStore } from '../../store/open.js';

export function register(program: Command): void {
  const config = program.command('config').description('Show the effective configuration or the option reference');

  config
    .command('show')
    .description('Print the effective configuration (secrets masked)')
    .option('--json', 'as JSON instead of YAML')
    .option('--origins', 'say where each value comes from (default, file, env VAR, flag)')
    .action((options: { json?: boolean; origins?: boolean }, command: Command) => {
      const loaded = configFromCommand(command);
      for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(displayConfig(loaded), null, 2)}\n`);
        return;
      }
      process.stdout.write(showConfigYaml(loaded, { origins: options.origins === true }));
      const described = Object.values(loaded.stores).map((store) => `#   ${describeStore(store)}${store.name === loaded.defaultStore ? '  (default)' : ''}`);
      if (described.length > 0) process.stdout.write(`# stores:\n${described.join('\n')}\n`);
    });

  config
    .command('options')
    .description('Print every option: type, default, environment variable, per-volume (-o) or not')
    .option('--markdown', 'as the markdown table of README.md')
    .action((options: { markdown?: boolean }) => {
      process.stdout.write(options.markdown ? optionsMarkdown() : optionsText());
    });
}
