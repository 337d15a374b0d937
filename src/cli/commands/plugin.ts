/**
 * `swiftfs plugin`: runs the Docker volume plugin (driver name = the socket's base name, `swiftfs` by default).
 *
 *   swiftfs plugin                         legacy plugin on /run/docker/plugins/swiftfs.sock
 *   swiftfs plugin --socket /run/docker/plugins/swiftfs2.sock --state-dir ... --mount-root ... --cache-dir ...
 *                                          a second instance (its own driver name, state, mounts and cache)
 *   swiftfs plugin --supervise             as the managed plugin's entrypoint: restart the server if it dies
 *
 * Stores and credentials come from the config file or the environment (ST_*, OS_*, AWS_*), as for every
 * command. Heavy modules are imported inside the action (see ../main.ts).
 */

import type { Command } from 'commander';
import { Option } from 'commander';
import { addOptionFlags, configFromCommand } from '../../config/flags.js';

export function register(program: Command): void {
  const command = program
    .command('plugin')
    .description('Run the Docker volume plugin (legacy socket plugin, or inside the managed plugin)')
    .option('--supervise', 'Run the plugin server as a child and restart it if it exits (managed plugin entrypoint)')
    .option('--socket-group <gid>', 'Numeric group owning the plugin socket (mode 0660), e.g. the docker group')
    .addOption(new Option('--call-timeout <ms>', 'Deadline of one plugin call in ms (keep it under the engine\'s 30 s)').argParser((v) => Number(v)).default(25_000))
    .addOption(new Option('--mount-command <argv>', 'Command line (space-separated) that runs `swiftfs` for mount processes').hideHelp())
    .option('--stop-mounts-on-exit', 'On SIGTERM, flush and stop the mount processes too (default: they keep serving their containers)')
    .addOption(new Option('--health-interval <ms>', 'How often mount processes are checked (a dead one is restarted)').argParser((v) => Number(v)).default(10_000));
  addOptionFlags(command, ['plugin']);
  command.option('--cache-dir <dir>', 'Local cache root of the mount processes (one subdirectory per volume)');
  command.action(async (opts: { supervise?: boolean; stopMountsOnExit?: boolean; socketGroup?: string; callTimeout: number; healthInterval: number; mountCommand?: string }) => {
    const config = configFromCommand(command);
    const { componentLogger, loggerFromConfig } = await import('../../log.js');
    const log = componentLogger(loggerFromConfig(config), 'plugin');
    if (opts.supervise) {
      const { supervise } = await import('../../plugin/main.js');
      // The supervised server runs in a container that ends with us: its mounts cannot outlive it, so on SIGTERM
      // it flushes and stops them rather than leave them to be killed.
      const argv = process.argv.filter((a) => a !== '--supervise' && a !== '--stop-mounts-on-exit');
      process.exitCode = await supervise([process.execPath, ...argv.slice(1), '--stop-mounts-on-exit'], log);
      return;
    }
    if (!Number.isFinite(opts.callTimeout) || opts.callTimeout < 1000 || opts.callTimeout > 110_000) {
      throw new Error('--call-timeout must be between 1000 and 110000 ms');
    }
    if (!Number.isFinite(opts.healthInterval) || opts.healthInterval < 100) throw new Error('--health-interval must be at least 100 ms');
    const gid = opts.socketGroup === undefined ? undefined : Number(opts.socketGroup);
    if (gid !== undefined && !Number.isInteger(gid)) throw new Error('--socket-group takes a numeric gid');
    const { runPlugin } = await import('../../plugin/main.js');
    await runPlugin({
      config,
      logger: log,
      callTimeoutMs: opts.callTimeout,
      healthIntervalMs: opts.healthInterval,
      stopMountsOnExit: opts.stopMountsOnExit === true,
      ...(gid !== undefined ? { socketGid: gid } : {}),
      ...(opts.mountCommand ? { mountCommand: opts.mountCommand.split(' ').filter((x) => x !== '') } : {}),
    });
    // Stopped on a signal: leave now rather than wait for idle keep-alive connections to the stores to time out
    // (the mount processes are separate and unaffected; logs are written synchronously).
    process.exit(0);
  });
}
