/**
 * `swiftfs status [MOUNTPOINT] [--json]`: the swiftfs mounts running on this host (from the run directory),
 * each asked over its control socket: volume, store, state, cache use, dirty bytes, upload queue, last commit,
 * owner, backend health, open files, and its regions: where it is mounted from and, per replica, the state, the
 * lag (seconds and bytes behind) and the last error. A daemon that does not answer is listed as such.
 *
 * --json prints an array of the daemons' status objects (MountStatus in src/fuse/daemon.ts), with
 * `{mountpoint, pid, volume, error}` for one that did not answer.
 */

import { resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';

function size(n: number | undefined): string {
  const v = n ?? 0;
  if (v >= 1024 ** 3) return `${(v / 1024 ** 3).toFixed(1)} GiB`;
  if (v >= 1024 ** 2) return `${(v / 1024 ** 2).toFixed(1)} MiB`;
  if (v >= 1024) return `${(v / 1024).toFixed(1)} KiB`;
  return `${v} B`;
}

function ago(ms: number | null | undefined): string {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

interface VolumeStatusView {
  readOnly?: boolean;
  readOnlyReason?: string | null;
  fsync?: string;
  journalSeq?: number;
  dirtyBytes?: number;
  uploadsQueued?: number;
  uploadsActive?: number;
  lastCommitAt?: number | null;
  health?: { state: string; lastError?: string; failingSince?: number; retries?: number };
  cache?: { diskBytes?: number; memoryBytes?: number; walBytes?: number; hits?: number; misses?: number };
  owner?: { epoch: number; host: string; pid: number; guarantee?: string } | null;
  openHandles?: number;
}

interface ReplicaView {
  mode?: string;
  target?: { region: string; container: string };
  state?: string;
  lastError?: string;
  sourceSeq?: number;
  replicatedSeq?: number;
  lagSeconds?: number;
  lagBytes?: number;
  recentMaxLagSeconds?: number;
  lastSyncAt?: number | null;
}

interface RegionsView {
  region?: string;
  home?: { region: string; container: string } | null;
  replicating?: boolean;
  note?: string;
  replicas?: ReplicaView[];
  pendingFences?: boolean;
}

/** The regions lines of one mount: where it is mounted from, and one line per replica with its lag. */
export function describeRegions(r: RegionsView | null | undefined): string[] {
  if (!r) return [];
  const lines: string[] = [];
  const home = r.home ? `${r.home.region}/${r.home.container}` : null;
  lines.push(`  region:  ${r.region ?? '?'}${home && r.home?.region !== r.region ? ` (recorded home: ${home})` : ''}${r.note ? `; ${r.note}` : ''}${r.pendingFences ? '; old homes still to fence' : ''}`);
  for (const st of r.replicas ?? []) {
    const lag = st.state === 'caught-up' ? 'caught up' : `lag ${(st.lagSeconds ?? 0).toFixed(1)} s, ${size(st.lagBytes)} behind`;
    const seqs = `at #${st.replicatedSeq ?? -1} of #${st.sourceSeq ?? -1}`;
    lines.push(`  replica: ${st.target?.region ?? '?'}/${st.target?.container ?? '?'}${st.mode === 'store' ? ' (kept by the store)' : ''}  ${st.state ?? '?'}, ${lag}, ${seqs}${st.recentMaxLagSeconds ? `, max lag ${st.recentMaxLagSeconds.toFixed(1)} s in the last minute` : ''}, last sync ${ago(st.lastSyncAt)}${st.lastError ? `  [${st.lastError}]` : ''}`);
  }
  return lines;
}

interface StatusView {
  pid: number;
  mountpoint: string;
  volume: string;
  store?: string;
  storeDescription?: string;
  state?: string;
  startedAt?: string;
  logFile?: string | null;
  options?: { cacheDir?: string; cacheSize?: number };
  volumeStatus?: VolumeStatusView;
  regions?: RegionsView | null;
  error?: string;
}

function describe(s: StatusView): string {
  const lines: string[] = [];
  lines.push(`${s.mountpoint}  ${s.volume}  pid ${s.pid}  ${s.error ? 'NOT ANSWERING' : (s.state ?? '?')}${s.startedAt ? `  since ${s.startedAt}` : ''}`);
  if (s.error) {
    lines.push(`  ${s.error}`);
    return lines.join('\n');
  }
  const v = s.volumeStatus ?? {};
  const health = v.health ? (v.health.state === 'ok' ? 'ok' : `${v.health.state}${v.health.lastError ? ` (${v.health.lastError})` : ''}${v.health.failingSince ? ` since ${ago(v.health.failingSince)}` : ''}`) : '?';
  lines.push(`  store:   ${s.storeDescription ?? s.store ?? '?'}   backend: ${health}`);
  lines.push(`  mode:    ${v.readOnly ? `read-only${v.readOnlyReason ? ` (${v.readOnlyReason})` : ''}` : 'read-write'}, fsync ${v.fsync ?? '?'}${v.owner ? `, owner epoch ${v.owner.epoch} (${v.owner.host} pid ${v.owner.pid}${v.owner.guarantee ? `; single writer ${v.owner.guarantee === 'fenced' ? 'fenced by create-only commits' : `by ${v.owner.guarantee}`}` : ''})` : ''}`);
  lines.push(`  cache:   ${size(v.cache?.diskBytes)} objects + ${size(v.cache?.walBytes)} log on disk (limit ${size(s.options?.cacheSize)}), ${size(v.cache?.memoryBytes)} in memory; ${v.cache?.hits ?? 0} hits, ${v.cache?.misses ?? 0} misses  [${s.options?.cacheDir ?? '?'}]`);
  lines.push(`  dirty:   ${size(v.dirtyBytes)}   uploads: ${v.uploadsQueued ?? 0} queued, ${v.uploadsActive ?? 0} active   last commit: ${ago(v.lastCommitAt)} (journal #${v.journalSeq ?? 0})`);
  lines.push(`  files:   ${v.openHandles ?? 0} open${s.logFile ? `   log: ${s.logFile}` : ''}`);
  lines.push(...describeRegions(s.regions));
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('status')
    .usage('[MOUNTPOINT] [--json]')
    .description('Show mounted volumes: volume, store, cache use, dirty bytes, upload queue, last commit, health, replica lag')
    .argument('[mountpoint]', 'only this mount')
    .option('--json', 'as JSON (an array, one object per mount)')
    .action(async (mountpointArg: string | undefined, opts: { json?: boolean }) => {
      const { controlRequest, defaultRunDir, listMounts } = await import('../../fuse/control.js');
      const runDir = defaultRunDir();
      let mounts = await listMounts(runDir);
      if (mountpointArg !== undefined) {
        const want = resolvePath(mountpointArg);
        mounts = mounts.filter((m) => m.mountpoint === want);
        if (mounts.length === 0) {
          process.stderr.write(`swiftfs status: no swiftfs mount at ${want}\n`);
          process.exitCode = 1;
          if (opts.json) process.stdout.write('[]\n');
          return;
        }
      }
      const views = await Promise.all(
        mounts.map(async (m): Promise<StatusView> => {
          try {
            return await controlRequest<StatusView>(m.socket, 'GET', '/status', { timeoutMs: 5000 });
          } catch (err) {
            return { pid: m.pid, mountpoint: m.mountpoint, volume: m.volume, error: (err as Error).message };
          }
        }),
      );
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(views, null, 2)}\n`);
        return;
      }
      if (views.length === 0) {
        process.stdout.write('no swiftfs mounts\n');
        return;
      }
      process.stdout.write(`${views.map(describe).join('\n\n')}\n`);
    });
}
