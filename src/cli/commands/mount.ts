/**
 * `swiftfs mount VOLUME MOUNTPOINT`: serve a volume as a FUSE filesystem.
 *
 *   swiftfs mount swift://pgdata /mnt/pg                 formats the volume if its container is missing or
 *                                                        empty, mounts, and returns once the mount is usable
 *                                                        (the daemon keeps running in the background)
 *   swiftfs mount swift://pgdata /mnt/pg --foreground    stays attached; logs to stderr; SIGTERM/Ctrl-C flush,
 *                                                        unmount and exit 0
 *   swiftfs mount s3://backups/pgdata /mnt/pg --no-create --read-only --cache-dir /var/cache/swiftfs
 *
 * Daemon mode: the command starts itself again, detached, with `--foreground` and an IPC channel; that child
 * is the daemon. The parent waits until the child says the mount is ready (exit 0) or why it failed (the
 * message, exit 1). The daemon's log goes to --log-file (default: the run directory, see `swiftfs status`).
 *
 * The daemon process always has UV_THREADPOOL_SIZE set (64 unless given): libuv sizes its pool at the first
 * use, so it must be in the environment before the process starts. `--foreground` without it in the
 * environment therefore runs the daemon as a child process with it set (signals are forwarded); set it
 * yourself (the plugin does) to have the daemon be the very process you started.
 *
 * Heavy modules (the core, the stores, the FUSE binding) are imported inside the action.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { Option, type Command } from 'commander';
import { addOptionFlags, commandContext, configFromCommand } from '../../config/flags.js';
import { parseVolumeUrl } from '../../config/volume-url.js';

interface MountFlags {
  foreground?: boolean;
  logFile?: string;
  notifyIpc?: boolean;
  fuseDebug?: boolean;
  takeOver?: boolean;
  readyTimeout?: string;
}

type IpcMessage = { type: 'ready'; mountpoint: string; volume: string; pid: number } | { type: 'error'; message: string };

export function register(program: Command): void {
  const command = program
    .command('mount')
    .usage('VOLUME MOUNTPOINT [options]')
    .description('Mount a volume on a directory (FUSE); formats it first if its container is missing or empty')
    .argument('<volume>', 'swift://[STORE/]CONTAINER, s3://[STORE/]BUCKET, mem://NAME, or a container name on the default store')
    .argument('<mountpoint>', 'an existing directory')
    .option('-f, --foreground', 'stay attached (logs to stderr unless --log-file); SIGTERM or Ctrl-C flushes, unmounts and exits')
    .option('--log-file <file>', 'log file of the mount daemon (default: in the run directory, shown by `swiftfs status`)')
    .option('--take-over', 'take the volume over even if another session holds it read-write (it is fenced: its next commit fails)')
    .option('--ready-timeout <seconds>', 'how long to wait for the daemon to be ready', '600')
    .addOption(new Option('--notify-ipc', 'internal: report readiness to the parent over IPC').hideHelp())
    .addOption(new Option('--fuse-debug', 'libfuse debug output on stderr').hideHelp());
  addOptionFlags(command, ['volume', 'mount']);
  command.action(async (volume: string, mountpointArg: string, flags: MountFlags, cmd: Command) => {
    parseVolumeUrl(volume); // a usage error now rather than from the daemon
    if (!flags.notifyIpc) await checkReplicas(cmd); // (a mount process of the plugin finds out in its status instead)
    const mountpoint = resolvePath(mountpointArg);
    const { defaultRunDir, defaultLogFile } = await import('../../fuse/control.js');
    const runDir = defaultRunDir();
    if (flags.notifyIpc || flags.foreground) {
      if (!process.env['UV_THREADPOOL_SIZE']) {
        process.exitCode = await runWithThreadpool();
        return;
      }
      await runForeground(volume, mountpoint, runDir, flags, cmd);
      return;
    }
    try {
      if (!statSync(mountpoint).isDirectory()) throw new Error(`mount point ${mountpoint} is not a directory`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`mount point ${mountpoint} does not exist`);
      throw err;
    }
    const logFile = resolvePath(flags.logFile ?? defaultLogFile(runDir, mountpoint));
    process.exitCode = await daemonize(mountpoint, logFile, Number(flags.readyTimeout ?? 600) * 1000);
  });
}

/** The regions of the replicas option must be known to this host's configuration (a typo is a usage error). */
async function checkReplicas(cmd: Command): Promise<void> {
  const config = configFromCommand(cmd);
  if (!config.volume.replicas) return;
  const { resolveRegion } = await import('../../region/regions.js');
  for (const region of config.volume.replicas.split(',')) resolveRegion(config, region);
}

/** Runs this same command line as a child with UV_THREADPOOL_SIZE set, forwarding signals; its exit status. */
async function runWithThreadpool(): Promise<number> {
  const { MOUNT_THREADPOOL_SIZE } = await import('../../fuse/daemon.js');
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'inherit', ...(process.send ? (['ipc'] as const) : [])],
    env: { ...process.env, UV_THREADPOOL_SIZE: String(MOUNT_THREADPOOL_SIZE) },
  });
  // Relay IPC (when we are ourselves the daemon child of a mount command).
  if (process.send) {
    child.on('message', (msg) => process.send?.(msg as never));
  }
  const forward = (sig: NodeJS.Signals): void => {
    child.kill(sig);
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, forward);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1)));
    child.once('error', () => resolve(1));
  });
}

/** Starts the daemon detached and waits for it to say it is ready. */
async function daemonize(mountpoint: string, logFile: string, readyTimeoutMs: number): Promise<number> {
  const { MOUNT_THREADPOOL_SIZE } = await import('../../fuse/daemon.js');
  mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 });
  const logFd = openSync(logFile, 'a', 0o600);
  let logStart = 0;
  try {
    logStart = statSync(logFile).size;
  } catch {
    // fine
  }
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1), '--notify-ipc'], {
      detached: true,
      stdio: ['ignore', logFd, logFd, 'ipc'],
      env: { ...process.env, UV_THREADPOOL_SIZE: process.env['UV_THREADPOOL_SIZE'] ?? String(MOUNT_THREADPOOL_SIZE) },
    });
  } finally {
    closeSync(logFd);
  }
  const started = Date.now();
  const result = await new Promise<{ ok: true; msg: Extract<IpcMessage, { type: 'ready' }> } | { ok: false; message: string }>((resolve) => {
    const progress = setInterval(() => {
      process.stderr.write(`swiftfs mount: still starting (${Math.round((Date.now() - started) / 1000)} s; log: ${logFile})\n`);
    }, 15_000);
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      resolve({ ok: false, message: `the mount daemon was not ready within ${Math.round(readyTimeoutMs / 1000)} s (stopped it; log: ${logFile})` });
    }, readyTimeoutMs);
    const done = (): void => {
      clearInterval(progress);
      clearTimeout(timer);
    };
    child.on('message', (msg: IpcMessage) => {
      done();
      if (msg.type === 'ready') resolve({ ok: true, msg });
      else resolve({ ok: false, message: msg.message });
    });
    child.once('exit', (code, signal) => {
      done();
      const tail = explainLog(logFile, logStart);
      resolve({ ok: false, message: tail ?? `the mount daemon exited (${signal ?? `status ${String(code)}`}) before the mount was ready; log: ${logFile}` });
    });
  });
  if (!result.ok) {
    process.stderr.write(`swiftfs mount: ${result.message}\n`);
    return 1;
  }
  if (child.connected) child.disconnect();
  child.unref();
  process.stdout.write(`mounted ${result.msg.volume} on ${result.msg.mountpoint} (daemon pid ${result.msg.pid}, log ${logFile})\n`);
  return 0;
}

/** The last error the daemon logged (pino JSON lines) after byte `from` of its log, if any. */
function explainLog(logFile: string, from: number): string | undefined {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8').slice(from);
  } catch {
    return undefined;
  }
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const e = JSON.parse(lines[i]!) as { level?: number; msg?: string; err?: { message?: string } };
      if ((e.level ?? 0) >= 50) return [e.msg, e.err?.message].filter(Boolean).join(': ');
    } catch {
      if (i === lines.length - 1) return lines[i];
    }
  }
  return undefined;
}

/** The daemon itself (foreground, or the detached child reporting over IPC). */
async function runForeground(volume: string, mountpoint: string, runDir: string, flags: MountFlags, cmd: Command): Promise<void> {
  const notify = flags.notifyIpc === true && typeof process.send === 'function';
  const send = (msg: IpcMessage): void => {
    if (notify && process.connected) process.send!(msg);
  };
  let logDestination: { write(line: string): unknown } | undefined;
  let logFile: string | null = null;
  if (flags.logFile && !notify) {
    const { pino } = await import('pino');
    logFile = resolvePath(flags.logFile);
    logDestination = pino.destination({ dest: logFile, append: true, mkdir: true, sync: true });
  } else if (notify) {
    logFile = flags.logFile ? resolvePath(flags.logFile) : (await import('../../fuse/control.js')).defaultLogFile(runDir, mountpoint);
  }
  const { config, log } = commandContext(cmd, logDestination ? { logDestination } : {});
  // Nothing of ours may keep a directory busy (the working directory included): config paths are resolved.
  process.chdir('/');
  const { runMountDaemon } = await import('../../fuse/daemon.js');
  let code: number;
  try {
    code = await runMountDaemon({
      config,
      volume,
      mountpoint,
      runDir,
      log,
      logFile,
      fuseDebug: flags.fuseDebug === true,
      force: flags.takeOver === true,
      onReady: (info) => {
        send({ type: 'ready', ...info });
        if (notify) process.disconnect();
      },
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.error({ err }, `mount failed: ${message}`);
    if (notify) {
      send({ type: 'error', message });
      process.exit(1);
    }
    throw err;
  }
  // The FUSE binding keeps handles open: leave explicitly once everything is closed.
  process.exit(code);
}
