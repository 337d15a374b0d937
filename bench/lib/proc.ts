/**
 * Process helpers for the benchmark: run a command and time it (killed as a whole process group at a deadline or
 * when a workload's time cap fires), sample a process's peak memory, wait for a condition with a deadline. Bench
 * code only; nothing here is used by swiftfs itself.
 */

import { spawn, type SpawnOptions } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
  /** Killed at its deadline or by its signal (then `code` is 137). */
  killed: boolean;
}

export interface RunOptions extends Omit<SpawnOptions, 'signal' | 'stdio' | 'detached'> {
  allowFail?: boolean;
  input?: string;
  /** Kill the command (and everything it started) after this long. */
  timeoutMs?: number;
  /** Kill the command (and everything it started) when this fires: a workload's time cap. */
  signal?: AbortSignal;
}

/** Error of a command killed by its RunOptions.signal (a time cap), so callers can tell it from a failure. */
export class Killed extends Error {
  constructor(readonly result: RunResult, what: string) {
    super(`${what}: killed (time cap) after ${result.seconds.toFixed(1)} s`);
    this.name = 'Killed';
  }
}

/**
 * Runs a command to completion; rejects on a non-zero exit unless `allowFail`, and with Killed when its signal
 * fired. The command runs in its own process group so that a kill also reaches what a shell started.
 */
export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const started = process.hrtime.bigint();
  const { allowFail, input, timeoutMs, signal, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new Killed({ code: 137, stdout: '', stderr: '', seconds: 0, killed: true }, cmd));
      return;
    }
    const child = spawn(cmd, args, { ...spawnOptions, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => undefined); // a command that exits without reading its input
    const kill = () => {
      killed = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = timeoutMs ? setTimeout(kill, timeoutMs) : undefined;
    signal?.addEventListener('abort', kill, { once: true });
    child.on('error', reject);
    child.on('close', (code, sig) => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const result: RunResult = { code: code ?? (sig ? 137 : 1), stdout, stderr, seconds, killed };
      if (killed && signal?.aborted) reject(new Killed(result, `${cmd} ${args.join(' ').slice(0, 80)}`));
      else if (result.code !== 0 && !allowFail) {
        reject(new Error(`${cmd} ${args.join(' ').slice(0, 200)} exited ${result.code}${sig ? ` (${sig})` : ''}${killed ? ' (killed at its deadline)' : ''}: ${stderr.slice(-2000)}`));
      } else resolve(result);
    });
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

export const sh = (script: string, options: RunOptions = {}) => run('bash', ['-c', script], options);

/** Seconds taken by `fn`. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Polls `check` until it returns true; rejects after `timeoutMs`, or at once when `signal` fires. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) throw new Killed({ code: 137, stdout: '', stderr: '', seconds: 0, killed: true }, `waiting for ${what}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Peak resident set (VmHWM) of a process, in bytes; 0 when gone. */
export async function peakRss(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Tracks the highest RSS seen of a set of pids, sampling every `intervalMs`. */
export class RssSampler {
  #peak = 0;
  #timer: NodeJS.Timeout | undefined;
  constructor(private readonly pids: () => number[], intervalMs = 200) {
    this.#timer = setInterval(() => void this.sample(), intervalMs);
    this.#timer.unref();
  }
  async sample(): Promise<void> {
    for (const pid of this.pids()) this.#peak = Math.max(this.#peak, await peakRss(pid));
  }
  async stop(): Promise<number> {
    if (this.#timer) clearInterval(this.#timer);
    await this.sample();
    return this.#peak;
  }
}

/** Drops the kernel's page cache so that a read is really cold (root only; ignored otherwise). */
export async function dropCaches(): Promise<void> {
  await sh('sync; echo 3 > /proc/sys/vm/drop_caches', { allowFail: true, timeoutMs: 120_000 });
}
