/**
 * `swiftfs unmount MOUNTPOINT`: asks the mount's daemon (over its control socket) to commit everything to the
 * store, unmount and exit (after waiting, bounded, for the volume's replicas to hold the final commit), and waits
 * for it, showing progress when it takes more than a moment. A busy mount
 * (open files, a shell's working directory) is refused unless --lazy.
 *
 * When no daemon answers (it crashed, or it was started by something else), it falls back to `fusermount -u`
 * (`-uz` with --lazy): that detaches a dead mount (ENOTCONN) too.
 *
 * Exit status: 0 unmounted; 1 failed (busy, not mounted, the daemon reported an error).
 */

import { resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';

function mib(n: number | undefined): string {
  return `${((n ?? 0) / (1024 * 1024)).toFixed(1)} MiB`;
}

export function register(program: Command): void {
  program
    .command('unmount')
    .alias('umount')
    .usage('MOUNTPOINT [options]')
    .description('Unmount a volume after committing everything it holds to the store')
    .argument('<mountpoint>', 'where the volume is mounted')
    .option('--lazy', 'detach even if busy (processes with open files keep them until they close them)')
    .option('--timeout <seconds>', 'give up waiting after this long (the daemon keeps committing)', '0')
    .action(async (mountpointArg: string, opts: { lazy?: boolean; timeout?: string }) => {
      const mountpoint = resolvePath(mountpointArg);
      const { ControlError, controlRequest, defaultRunDir, findMount } = await import('../../fuse/control.js');
      const { detachMount, mountAt, runProgram } = await import('../../fuse/mount.js');
      const runDir = defaultRunDir();
      const reg = await findMount(runDir, mountpoint);
      const timeoutS = Number(opts.timeout ?? 0);
      const started = Date.now();
      if (reg) {
        let lastShown = 0;
        try {
          // A stopped or wedged daemon still accepts connections: ask something quick first.
          await controlRequest(reg.socket, 'GET', '/status', { timeoutMs: 5000 });
          const last = await controlRequest<{ state: string; message?: string; dirtyBytes?: number; uploadsQueued?: number; uploadsActive?: number; replicas?: { replica: string; lagSeconds: number; lagBytes: number }[] }>(
            reg.socket,
            'POST',
            `/unmount${opts.lazy ? '?lazy=1' : ''}`,
            {
              timeoutMs: 60_000,
              onLine: (p) => {
                const now = Date.now();
                if (p.state === 'flushing' && now - started > 1000 && now - lastShown >= 2000) {
                  lastShown = now;
                  process.stderr.write(`swiftfs unmount: committing to the store: ${mib(p.dirtyBytes)} dirty, ${p.uploadsQueued ?? 0} uploads queued, ${p.uploadsActive ?? 0} active (${Math.round((now - started) / 1000)} s)\n`);
                }
                if (p.state === 'replicating' && p.replicas?.length && now - lastShown >= 2000) {
                  lastShown = now;
                  const lags = p.replicas.map((r) => `${r.replica} ${r.lagSeconds.toFixed(0)} s / ${mib(r.lagBytes)} behind`).join(', ');
                  process.stderr.write(`swiftfs unmount: committed; waiting for the replicas to hold it: ${lags} (${Math.round((now - started) / 1000)} s)\n`);
                }
                if (timeoutS > 0 && now - started > timeoutS * 1000) {
                  process.stderr.write(`swiftfs unmount: gave up waiting after ${timeoutS} s; the daemon (pid ${reg.pid}) keeps committing and unmounts when done\n`);
                  process.exit(1);
                }
              },
            },
          );
          if (last.state === 'done') {
            process.stdout.write(`unmounted ${mountpoint}\n`);
            return;
          }
          process.stderr.write(`swiftfs unmount: ${last.message ?? last.state}\n`);
          process.exitCode = 1;
          return;
        } catch (err) {
          if (!(err instanceof ControlError)) throw err;
          process.stderr.write(`swiftfs unmount: the daemon (pid ${reg.pid}) does not answer (${err.message}); unmounting with fusermount\n`);
        }
      }
      const entry = await mountAt(mountpoint);
      if (!entry) {
        process.stderr.write(`swiftfs unmount: ${mountpoint} is not mounted\n`);
        process.exitCode = 1;
        return;
      }
      if (opts.lazy) {
        await detachMount(mountpoint);
      } else {
        const r = await runProgram('fusermount', ['-u', '--', mountpoint], 30_000);
        if (r.code !== 0 && (await mountAt(mountpoint))) {
          process.stderr.write(`swiftfs unmount: ${r.stderr.trim() || 'fusermount -u failed'}\n`);
          process.exitCode = 1;
          return;
        }
      }
      process.stdout.write(`unmounted ${mountpoint}${reg ? '' : ' (no swiftfs daemon was serving it)'}\n`);
    });
}
