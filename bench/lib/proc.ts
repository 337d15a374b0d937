/**
 * Process helpers for the benchmark: run a command and time it, sample a process's peak memory, wait for a
 * condition with a deadline. Bench code only; nothing here is used by swiftfs itself.
 */

import { spawn, type SpawnOptions } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to completion; rejects on a non-zero exit unless `allowFail`. */
export function run(cmd: string, args: string[], options: SpawnOptions & { allowFail?: boolean; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const result = { code: code ?? (signal ? 128 : 1), stdout, stderr, seconds };
      if (result.code !== 0 && !options.allowFail) {
        reject(new Error(`${cmd} ${args.join(' ')} exited ${result.code}${signal ? ` (${signal})` : ''}: ${stderr.slice(-2000)}`));
      } else resolve(result);
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    else child.stdin!.end();
  });
}

export const sh = (script: string, options: Parameters<typeof run>[2] = {}) => run('bash', ['-c', script], options);

/** Seconds taken by `fn`. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Polls `check` until it returns true; rejects after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Peak resident set (VmHWM) of a process and all its descendants, in bytes; 0 when gone. */
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
  await sh('sync; echo 3 > /proc/sys/vm/drop_caches', { allowFail: true });
}
