/**
 * `swiftfs relocate VOLUME --to REGION` and `swiftfs replicate VOLUME --to REGION` (src/region/README.md).
 *
 *   swiftfs replicate swift://home/pg --to dr --once     seed or catch up the replica in region dr, record it as
 *                                                         a replica of the volume (mounts then replicate to it)
 *   swiftfs replicate swift://home/pg --to dr             keep replicating until interrupted (a standalone
 *                                                         replicator, when no mount does it)
 *   swiftfs replicate swift://home/pg --to dr --remove    no replica there any more (mounts stop replicating)
 *   swiftfs relocate swift://home/pg --to dr --dry-run    what a move would do, and what would stop it
 *   swiftfs relocate swift://home/pg --to dr              planned move: unmount here (if mounted), fence the
 *                                                         source, catch up, take over in dr, remount from dr
 *   swiftfs relocate swift://home/pg --to dr --failover   the home region is gone: take over what dr holds,
 *                                                         say what is lost, fence the old home when it returns
 *
 * A relocation asks for confirmation on a terminal (or --yes). Exit status: 0 done (or a dry run that would
 * succeed), 1 refused or failed (the reasons are printed), 2 usage or configuration mistakes.
 *
 * A volume the Docker plugin of this host manages (its state file under state-dir names it) is refused while
 * containers use it, and is not mounted again by this command: the plugin follows the move at its next Mount.
 */

import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { commandContext } from '../../config/flags.js';
import type { Config } from '../../config/load.js';
import { componentLogger, type Logger } from '../../log.js';

/**
 * The commands print their own progress for people; the library's logs (JSON) only show errors unless the
 * operator asked for a log level.
 */
function quietLogger(config: Config, log: Logger, component: string): Logger {
  const explicit = config.settings.global['log-level']?.origin !== 'default';
  return componentLogger(log, component, {}, explicit ? undefined : 'error');
}

interface RelocateFlags {
  to: string;
  container?: string;
  dryRun?: boolean;
  failover?: boolean;
  yes?: boolean;
  force?: boolean;
  uuid?: string;
  remount?: boolean;
  json?: boolean;
  timeout?: string;
}

interface ReplicateFlags {
  to: string;
  container?: string;
  once?: boolean;
  mode?: 'swiftfs' | 'store';
  reset?: boolean;
  register?: boolean;
  remove?: boolean;
  interval?: string;
  json?: boolean;
}

function size(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function iso(t: number | null | undefined): string {
  return t ? new Date(t).toISOString() : 'unknown';
}

export function register(program: Command): void {
  program
    .command('relocate')
    .usage('VOLUME --to REGION [--dry-run] [--failover] [--yes]')
    .description('Move a volume to another region: planned (nothing lost) or failover (the home region is gone)')
    .argument('<volume>', 'the volume where it is now: swift://[STORE/]CONTAINER, s3://[STORE/]BUCKET')
    .requiredOption('--to <region>', 'the region to move it to: a store name, a store\'s region, or STORE@REGION (Keystone catalogs)')
    .option('--container <name>', 'container in the target region (default: the one holding the volume\'s UUID, else the same name)')
    .option('--dry-run', 'say what would happen and what would prevent it; change nothing')
    .option('--failover', 'the home region (or its writer) is gone: take over at what the replica holds and report what is lost')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--force', 'fence a writer still running elsewhere; accept a store without create-only puts (weaker fencing); fail over to a stale former home')
    .option('--uuid <uuid>', 'the volume\'s UUID, when its home cannot be read and the target holds several candidates')
    .option('--no-remount', 'after a planned move of a volume mounted here, do not mount it again from the new region')
    .option('--timeout <seconds>', 'longest catch-up before giving up', '3600')
    .option('--json', 'print the result as JSON')
    .action(async (volume: string, flags: RelocateFlags, cmd: Command) => {
      process.exitCode = await runRelocate(volume, flags, cmd);
    });

  program
    .command('replicate')
    .usage('VOLUME --to REGION [--once]')
    .description('Replicate a volume to another region (seed, then follow its journal); records the replica so that mounts replicate to it')
    .argument('<volume>', 'the volume at its home: swift://[STORE/]CONTAINER, s3://[STORE/]BUCKET')
    .requiredOption('--to <region>', 'the replica region: a store name, a store\'s region, or STORE@REGION')
    .option('--container <name>', 'container in the replica region (default: the one holding the volume\'s UUID, else the same name)')
    .option('--once', 'catch up once and exit (default: keep following until interrupted)')
    .option('--mode <mode>', 'swiftfs: swiftfs copies the journal; store: the store replicates by itself (only check and report)', 'swiftfs')
    .option('--reset', 'the replica is a former home or diverged: drop its journal and re-seed it (its identical objects are kept)')
    .option('--no-register', 'do not record the replica in the volume\'s regions record')
    .option('--remove', 'take the replica out of the volume\'s regions record (mounts stop replicating to it; its container is left as it is)')
    .option('--interval <seconds>', 'how often to look at the source when following', '2')
    .option('--json', 'print statuses as JSON lines')
    .action(async (volume: string, flags: ReplicateFlags, cmd: Command) => {
      process.exitCode = await runReplicate(volume, flags, cmd);
    });
}

async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

function kindScheme(kind: string): string {
  return kind === 's3' ? 's3' : kind === 'memory' ? 'mem' : 'swift';
}

async function runRelocate(volume: string, flags: RelocateFlags, cmd: Command): Promise<number> {
  const { config, log: rootLog } = commandContext(cmd);
  const log = quietLogger(config, rootLog, 'relocate');
  const { resolveVolume } = await import('../../config/resolve.js');
  const { regionNameOfStore, resolveRegion } = await import('../../region/regions.js');
  const { relocate, describeLoss, RelocateError } = await import('../../region/relocate.js');
  const resolved = resolveVolume(config, volume, { store: config.volume.store });
  const sourceRegion = resolved.ref.store ?? regionNameOfStore(config, resolved.store);
  const targetRef = resolveRegion(config, flags.to);

  // A volume the Docker plugin of this host manages: refused while containers use it (the plugin would mount it
  // again under them); otherwise the plugin follows the move at the next Mount.
  const managed = flags.dryRun ? null : await pluginVolume(config, resolved.url);
  if (managed && managed.refs > 0) {
    process.stderr.write(`swiftfs relocate: volume ${managed.name} is used by ${managed.refs} container mount(s) through the Docker plugin on this host: stop those containers first (docker ps --filter volume=${managed.name}); the plugin mounts it from the new region when they start again\n`);
    return 1;
  }

  // A mount of this volume on this host is stopped through its control socket.
  const { controlRequest, defaultRunDir, listMounts } = await import('../../fuse/control.js');
  const mounts = (await listMounts(defaultRunDir())).filter((m) => m.volume === resolved.url);
  const mount = mounts[0];
  const pluginMount = mount !== undefined && (mount.mountpoint === config.plugin.mountRoot || mount.mountpoint.startsWith(`${config.plugin.mountRoot}/`));
  // A daemon already unmounted, only waiting for its replicas, is waited for but not mounted again.
  const wasUnmounted = mount !== undefined && (await controlRequest<{ state?: string }>(mount.socket, 'GET', '/status', { timeoutMs: 5000 }).then((st) => st.state === 'replicating' || st.state === 'closing', () => false));
  const localMount = mount
    ? {
        mountpoint: mount.mountpoint,
        async unmount(onProgress: (p: { state: string; dirtyBytes?: number }) => void) {
          const last = await controlRequest<{ state: string; message?: string; dirtyBytes?: number }>(mount.socket, 'POST', '/unmount', { timeoutMs: 120_000, onLine: onProgress });
          if (last.state !== 'done') throw new Error(`the mount at ${mount.mountpoint} did not unmount: ${last.message ?? last.state}`);
        },
      }
    : null;

  const request = {
    config,
    source: { region: sourceRegion, container: resolved.container },
    to: flags.to,
    ...(flags.container ? { targetContainer: flags.container } : {}),
    failover: flags.failover === true,
    force: flags.force === true,
    ...(flags.uuid ? { uuid: flags.uuid } : {}),
    localMount,
    catchUpTimeoutMs: Number(flags.timeout ?? 3600) * 1000,
    logger: log,
  };
  const out = (s: string): void => {
    process.stdout.write(`${s}\n`);
  };

  // The plan first (a dry run is only that).
  const planned = await relocate({ ...request, dryRun: true });
  const plan = planned.plan;
  if (!flags.json || flags.dryRun) {
    const src = plan.source;
    const tgt = plan.target;
    const lines = [
      `${flags.dryRun ? 'would relocate' : 'relocate'} ${resolved.url} (uuid ${plan.uuid ?? 'unknown'}) to region ${flags.to}, container ${tgt.container}: ${plan.kind === 'planned' ? 'planned move' : 'FAILOVER'}`,
      `  source  ${src.region}/${src.container}: ${src.reachable ? `journal at segment ${src.head?.seq ?? '?'} (committed ${iso(src.head?.time)}), owner ${src.owner ? (src.owner.released ? 'released' : `${src.owner.host} pid ${src.owner.pid}`) : 'none'}${src.guarantee ? `, fencing ${src.guarantee}` : ''}` : `DOES NOT ANSWER (${src.error})`}`,
      `  target  ${tgt.region}/${tgt.container} (${targetRef.description}): ${tgt.head ? `replica at segment ${tgt.head.seq} (committed ${iso(tgt.head.time)})` : 'no replica yet'}${tgt.replicaStatus ? `, replicator last saw the source at segment ${tgt.replicaStatus.sourceSeq} (${iso(tgt.replicaStatus.sourceCheckedAt)})` : ''}${tgt.guarantee ? `, fencing ${tgt.guarantee}` : ''}`,
      ...(plan.localMount ? [`  mounted here at ${plan.localMount}`] : []),
      '  steps:',
      ...plan.steps.map((s, i) => `    ${i + 1}. ${s}`),
      ...(plan.warnings.length ? ['  warnings:', ...plan.warnings.map((w) => `    - ${w}`)] : []),
      ...(plan.refusals.length ? ['  REFUSED:', ...plan.refusals.map((r) => `    - ${r}`)] : []),
    ];
    (flags.dryRun || !flags.json ? out : () => undefined)(lines.join('\n'));
  }
  if (flags.dryRun) {
    if (flags.json) out(JSON.stringify(planned, null, 2));
    return plan.refusals.length ? 1 : 0;
  }
  if (plan.refusals.length) {
    process.stderr.write(`swiftfs relocate: refused (nothing was changed)\n`);
    return 1;
  }
  if (!flags.yes) {
    if (!process.stdin.isTTY) {
      process.stderr.write('swiftfs relocate: not a terminal: add --yes to confirm the relocation\n');
      return 2;
    }
    if (!(await confirm(plan.kind === 'failover' ? 'Take the volume over in the target region (failover)?' : 'Relocate the volume?'))) {
      process.stderr.write('swiftfs relocate: not confirmed; nothing was changed\n');
      return 1;
    }
  }

  // Progress: a bar on a terminal, a line every few seconds otherwise.
  let bar: { start(total: number, value: number, payload?: object): void; update(value: number, payload?: object): void; setTotal(total: number): void; stop(): void } | null = null;
  let lastLine = 0;
  const onProgress = (p: { segmentsDone: number; segmentsTotal: number; bytesDone: number; bytesTotal: number }): void => {
    if (flags.json) return;
    const payload = { segs: `${p.segmentsDone}/${p.segmentsTotal}`, bytes: `${size(p.bytesDone)}/${size(p.bytesTotal)}` };
    if (process.stderr.isTTY) {
      if (bar) {
        bar.setTotal(Math.max(1, p.bytesTotal));
        bar.update(p.bytesDone, payload);
      }
      return;
    }
    const now = Date.now();
    if (now - lastLine >= 5000) {
      lastLine = now;
      process.stderr.write(`swiftfs relocate: catching up: ${payload.segs} segments, ${payload.bytes}\n`);
    }
  };
  const onPhase = async (phase: string, message: string): Promise<void> => {
    if (flags.json) return;
    if (bar && phase !== 'catch-up') {
      bar.stop();
      bar = null;
    }
    process.stderr.write(`swiftfs relocate: ${message}\n`);
    if (phase === 'catch-up' && process.stderr.isTTY) {
      const cliProgress = await import('cli-progress');
      const b = new cliProgress.SingleBar({ format: '  catch-up |{bar}| {percentage}% | segments {segs} | {bytes}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
      b.start(1, 0, { segs: '0/?', bytes: '?' });
      bar = b;
    }
  };

  let result;
  try {
    result = await relocate({ ...request, onProgress, onPhase: (p, m) => void onPhase(p, m) });
  } catch (err) {
    (bar as { stop(): void } | null)?.stop();
    if (err instanceof RelocateError) {
      process.stderr.write(`swiftfs relocate: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  (bar as { stop(): void } | null)?.stop();

  const { encodeStoreRef } = await import('../../config/volume-url.js');
  const targetUrl = `${kindScheme(targetRef.store.kind)}://${encodeStoreRef(flags.to)}/${encodeURIComponent(result.home.container)}`;
  const next: string[] = [];
  let remounted = false;
  if (managed || pluginMount) {
    next.push(`the Docker plugin mounts volume ${managed?.name ?? resolved.container} from ${targetUrl} at its next use (docker run -v ${managed?.name ?? resolved.container}:...)`);
  } else if (localMount && !wasUnmounted && result.plan.kind === 'planned' && flags.remount !== false) {
    const args = [...process.execArgv, process.argv[1]!, ...(config.configFile ? ['--config', config.configFile] : []), 'mount', targetUrl, localMount.mountpoint];
    process.stderr.write(`swiftfs relocate: mounting ${targetUrl} on ${localMount.mountpoint}\n`);
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
      child.once('exit', (c) => resolve(c ?? 1));
      child.once('error', () => resolve(1));
    });
    remounted = code === 0;
    if (!remounted) next.push(`mount it again: swiftfs mount ${targetUrl} ${localMount.mountpoint} (the automatic remount failed)`);
  } else {
    next.push(`mount it from its new home: swiftfs mount ${targetUrl} MOUNTPOINT`);
  }
  if (result.pendingFence) next.push(`region ${resolved.ref.store ?? sourceRegion} did not answer: its copy is fenced as soon as it does (by the new mount, or by running any relocate of the volume)`);
  next.push(`keep a replica: swiftfs replicate ${targetUrl} --to REGION --once${result.plan.kind === 'failover' ? ' (to bring the old home back as a replica: --reset)' : ''}`);

  if (flags.json) {
    out(JSON.stringify({ ...result, targetUrl, remounted, nextSteps: next }, null, 2));
    return 0;
  }
  const seconds = (result.durationMs / 1000).toFixed(1);
  out(`relocated ${resolved.url} to ${targetUrl} in ${seconds} s (${result.phases.map((p) => `${p.phase} ${(p.ms / 1000).toFixed(1)} s`).join(', ')})`);
  if (result.catchUp) out(`  copied ${result.catchUp.copiedObjects} objects (${size(result.catchUp.copiedBytes)}) and ${result.catchUp.shippedSegments} journal segments`);
  if (result.takeover) out(`  owner epoch ${result.takeover.epoch} from journal segment ${result.takeover.seq} (${result.takeover.guarantee})`);
  if (result.loss) out(`  ${describeLoss(result.loss)}`);
  if (remounted) out(`  mounted again on ${localMount!.mountpoint}`);
  out('next:');
  for (const n of next) out(`  - ${n}`);
  return 0;
}

/**
 * The Docker plugin's record of the volume at `url` on this host (its state file under state-dir), if the
 * plugin manages it: its Docker name and how many container mounts hold it. Null when there is no plugin state
 * or it cannot be read (not root, no plugin).
 */
export async function pluginVolume(config: Config, url: string): Promise<{ name: string; refs: number } | null> {
  const { join } = await import('node:path');
  const { readFile } = await import('node:fs/promises');
  const { STATE_FILE_NAME, mountRefs } = await import('../../plugin/state.js');
  const { volumeUrl } = await import('../../plugin/mount-process.js');
  let data: { volumes?: Record<string, import('../../plugin/state.js').VolumeRecord> };
  try {
    data = JSON.parse(await readFile(join(config.plugin.stateDir, 'plugin', STATE_FILE_NAME), 'utf8')) as typeof data;
  } catch {
    return null;
  }
  for (const record of Object.values(data.volumes ?? {})) {
    if (record?.location && volumeUrl(record) === url) return { name: record.name, refs: mountRefs({ ...record, mounts: record.mounts ?? {} }) };
  }
  return null;
}

async function runReplicate(volume: string, flags: ReplicateFlags, cmd: Command): Promise<number> {
  const { config, log: rootLog } = commandContext(cmd);
  const log = quietLogger(config, rootLog, 'replicate');
  const { resolveVolume } = await import('../../config/resolve.js');
  const { openStoreConfig } = await import('../../store/open.js');
  const { regionNameOfStore, openRegion } = await import('../../region/regions.js');
  const { readFormat } = await import('../../core/layout.js');
  const { Replicator, ReplicationError } = await import('../../region/replicator.js');
  const { StoreReplicationMonitor, targetContainer } = await import('../../region/replication.js');
  const { addReplica, removeReplica } = await import('../../region/volume-regions.js');
  const { readRegions, writeRegions } = await import('../../region/records.js');
  const mode = flags.mode ?? 'swiftfs';
  if (mode !== 'swiftfs' && mode !== 'store') {
    process.stderr.write('swiftfs replicate: --mode is swiftfs or store\n');
    return 2;
  }
  const resolved = resolveVolume(config, volume, { store: config.volume.store });
  const sourceRegion = resolved.ref.store ?? regionNameOfStore(config, resolved.store);
  const source = await openStoreConfig(resolved.store, { logger: log });
  const target = await openRegion(config, flags.to, log);
  const say = (line: string): void => {
    process.stderr.write(`swiftfs replicate: ${line}\n`);
  };
  try {
    const format = await readFormat(source, resolved.container);
    const home = { region: sourceRegion, container: resolved.container };
    if (flags.remove) {
      const { sameRegion } = await import('../../region/regions.js');
      const before = (await readRegions(source, resolved.container))?.replicas ?? [];
      const gone = before.filter((r) => sameRegion(config, r.region, flags.to));
      if (gone.length === 0) {
        say(`region ${flags.to} holds no recorded replica of ${resolved.url}`);
        return 1;
      }
      let rec = null;
      for (const r of gone) rec = await removeReplica(source, home, format.uuid, r.region);
      for (const r of gone) {
        const store = sameRegion(config, r.region, flags.to) ? target.store : null;
        if (store && rec) await writeRegions(store, r.container, rec).catch(() => undefined);
      }
      process.stdout.write(`${gone.map((r) => `${r.region}/${r.container}`).join(', ')}: no longer a replica of ${resolved.url} (mounts stop replicating to it within a minute; its container is left as it is)\n`);
      return 0;
    }
    const container = flags.container ?? (await targetContainer(target.store, format.uuid, resolved.container));
    const replica = { region: flags.to, container };
    const show = (st: import('../../region/replicator.js').ReplicationStatus): string =>
      flags.json
        ? JSON.stringify(st)
        : `${st.target.region}/${st.target.container}: ${st.state}, at segment ${st.replicatedSeq} of ${st.sourceSeq}, lag ${st.lagSeconds.toFixed(1)} s / ${size(st.lagBytes)}${st.copiedBytes ? `, copied ${st.copiedObjects} objects (${size(st.copiedBytes)})` : ''}${st.lastError ? ` (${st.lastError})` : ''}`;

    if (mode === 'store') {
      const monitor = new StoreReplicationMonitor({ store: source, container: resolved.container, region: sourceRegion }, { store: target.store, container, region: flags.to }, log);
      if (flags.register !== false) await addReplica(source, home, format.uuid, replica, 'store');
      for (;;) {
        const st = await monitor.check();
        process.stdout.write(`${show(st)}\n`);
        if (flags.once) return st.state === 'error' ? 1 : 0;
        await new Promise((r) => setTimeout(r, Number(flags.interval ?? 2) * 1000));
      }
    }

    const rep = new Replicator({
      source: { store: source, container: resolved.container, region: sourceRegion },
      target: { store: target.store, container, region: flags.to },
      logger: log,
      ...(flags.reset ? { reset: true } : {}),
    });
    const register = async (): Promise<void> => {
      if (flags.register === false) return;
      const rec = await addReplica(source, home, format.uuid, replica, 'swiftfs');
      // The replica carries the record too (found wherever the volume is found).
      const there = await readRegions(target.store, container).catch(() => null);
      if (!there || there.updatedAt <= rec.updatedAt) await writeRegions(target.store, container, rec);
    };
    if (flags.once) {
      const started = Date.now();
      say(`catching ${flags.to}/${container} up with ${sourceRegion}/${resolved.container}`);
      const timer = setInterval(() => say(show(rep.status())), 5000);
      try {
        const st = await rep.syncOnce({ estimate: true });
        await register();
        process.stdout.write(`${show(st)}${flags.json ? '' : ` (${((Date.now() - started) / 1000).toFixed(1)} s)`}\n`);
      } finally {
        clearInterval(timer);
        await rep.stop();
      }
      return 0;
    }
    await rep.syncOnce({ estimate: true });
    await register();
    say(`following ${sourceRegion}/${resolved.container} into ${flags.to}/${container} (Ctrl-C to stop)`);
    let fatal: Error | null = null;
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    rep.start(Number(flags.interval ?? 2) * 1000, (err) => {
      fatal = err;
      stop();
    });
    const ticker = setInterval(() => process.stdout.write(`${show(rep.status())}\n`), 10_000);
    const onSignal = (): void => stop();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    await stopped;
    clearInterval(ticker);
    await rep.stop();
    process.stdout.write(`${show(rep.status())}\n`);
    if (fatal) {
      say((fatal as Error).message);
      return 1;
    }
    return 0;
  } catch (err) {
    if (err instanceof ReplicationError) {
      say(err.message);
      return 1;
    }
    throw err;
  } finally {
    await source.close().catch(() => undefined);
    await target.store.close().catch(() => undefined);
  }
}
