/**
 * Object-store throughput: 4 MiB PUTs and GETs against a real Swift through SwiftStore, through curl (one process per
 * object, as a shell script would do it) and through the S3 store on the same server's S3 API, one at a time and
 * N at a time. Prints MiB/s for each and the ratio store/curl.
 *
 *   node dist/bench/store-throughput.js [--size-mib 4] [--single 32] [--parallel 64] [--concurrency 8] [--rounds 3]
 *
 * The server comes from ST_AUTH/ST_USER/ST_KEY or SWIFTFS_TEST_ST_AUTH/_ST_USER/_ST_KEY (TempAuth); the S3 endpoint
 * from SWIFTFS_TEST_S3_ENDPOINT or S3_ENDPOINT (default: the auth URL's origin; access key = user, secret = key).
 * Each figure is the median of the rounds. The token given to curl goes through a 0600 header file, not argv.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ObjectStore } from '../src/store/object-store.js';
import { createSwiftStore } from '../src/store/swift/swift-store.js';

const MiB = 1 << 20;

interface Args {
  sizeMiB: number;
  single: number;
  parallel: number;
  concurrency: number;
  rounds: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizeMiB: 4, single: 32, parallel: 64, concurrency: 8, rounds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = Number(argv[i + 1]);
    const set = (name: keyof Args) => {
      if (!Number.isFinite(value) || value <= 0) throw new Error(`${flag} needs a positive number`);
      args[name] = value;
      i++;
    };
    if (flag === '--size-mib') set('sizeMiB');
    else if (flag === '--single') set('single');
    else if (flag === '--parallel') set('parallel');
    else if (flag === '--concurrency') set('concurrency');
    else if (flag === '--rounds') set('rounds');
    else throw new Error(`unknown argument ${flag}`);
  }
  return args;
}

function env(name: string): string | undefined {
  return process.env[name] || process.env[`SWIFTFS_TEST_${name}`] || undefined;
}

/** Runs `fn(i)` for i in [0, n), at most `concurrency` at a time. */
async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(n, concurrency) }, async () => {
    while (next < n) await fn(next++);
  });
  await Promise.all(workers);
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function curl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '-f', '-o', '/dev/null', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl exited ${code}: ${stderr.trim()}`))));
  });
}

interface Phase {
  name: string;
  count: number;
  concurrency: number;
}

interface Runner {
  name: string;
  put?(key: string, slot: number): Promise<void>;
  get(key: string): Promise<void>;
  /** Reads the objects another runner wrote (for a GET-only variant). */
  readsFrom?: string;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const authUrl = env('ST_AUTH');
  const user = env('ST_USER');
  const key = env('ST_KEY');
  if (!authUrl || !user || !key) {
    console.error('store-throughput: set ST_AUTH, ST_USER, ST_KEY (or SWIFTFS_TEST_ST_*) to a TempAuth Swift');
    process.exit(2);
  }
  const size = args.sizeMiB * MiB;
  const slots = Math.max(args.concurrency, 8);
  const payloads = Array.from({ length: slots }, () => randomBytes(size));
  const container = `swiftfs-bench-throughput-${Date.now().toString(36)}`;
  const work = await mkdtemp(join(os.tmpdir(), 'swiftfs-bench-'));

  const swift = createSwiftStore({ auth: { type: 'tempauth', authUrl, user, key }, connections: Math.max(16, args.concurrency) });
  const swiftNoVerify = createSwiftStore({ auth: { type: 'tempauth', authUrl, user, key }, connections: Math.max(16, args.concurrency), verifyDownloads: false });
  await swift.createContainer(container);

  // curl needs the token and storage URL: one TempAuth request, kept in a private header file.
  const auth = await fetch(authUrl, { headers: { 'x-auth-user': user, 'x-auth-key': key }, signal: AbortSignal.timeout(30_000) });
  const token = auth.headers.get('x-auth-token');
  const storageUrl = auth.headers.get('x-storage-url');
  if (!auth.ok || !token || !storageUrl) throw new Error(`TempAuth at ${authUrl} answered ${auth.status}`);
  const headerFile = join(work, 'auth-header');
  await writeFile(headerFile, `X-Auth-Token: ${token}\n`, { mode: 0o600 });
  const payloadFiles = await Promise.all(
    payloads.map(async (p, i) => {
      const file = join(work, `payload-${i}`);
      await writeFile(file, p);
      return file;
    }),
  );
  const objectUrl = (k: string) => `${storageUrl}/${encodeURIComponent(container)}/${k.split('/').map(encodeURIComponent).join('/')}`;

  const runners: Runner[] = [
    {
      name: 'SwiftStore',
      put: async (k, slot) => void (await swift.put(container, k, payloads[slot]!)),
      get: async (k) => {
        const got = await swift.get(container, k);
        if (got.body.length !== size) throw new Error(`short read ${got.body.length}`);
      },
    },
    {
      name: 'SwiftStore (no MD5 check)',
      readsFrom: 'SwiftStore',
      get: async (k) => {
        const got = await swiftNoVerify.get(container, k);
        if (got.body.length !== size) throw new Error(`short read ${got.body.length}`);
      },
    },
    {
      name: 'curl',
      put: (k, slot) => curl(['-H', `@${headerFile}`, '-T', payloadFiles[slot]!, objectUrl(k)]),
      get: (k) => curl(['-H', `@${headerFile}`, objectUrl(k)]),
    },
  ];

  let s3: ObjectStore | undefined;
  const s3Module = join(fileURLToPath(new URL('.', import.meta.url)), '../src/store/s3/s3-store.js');
  if (existsSync(s3Module)) {
    const { createS3Store } = (await import(s3Module)) as { createS3Store: (o: Record<string, unknown>) => ObjectStore };
    const endpoint = env('S3_ENDPOINT') ?? new URL(authUrl).origin;
    s3 = createS3Store({ endpoint, accessKeyId: user, secretAccessKey: key, region: 'us-east-1', connections: Math.max(16, args.concurrency) });
    runners.push({
      name: 'S3Store',
      put: async (k, slot) => void (await s3!.put(container, k, payloads[slot]!)),
      get: async (k) => {
        const got = await s3!.get(container, k);
        if (got.body.length !== size) throw new Error(`short read ${got.body.length}`);
      },
    });
  }

  const phases: Phase[] = [
    { name: `single (${args.single} × ${args.sizeMiB} MiB, 1 at a time)`, count: args.single, concurrency: 1 },
    { name: `parallel (${args.parallel} × ${args.sizeMiB} MiB, ${args.concurrency} at a time)`, count: args.parallel, concurrency: args.concurrency },
  ];

  console.log(`store-throughput: ${swift.description}; ${args.rounds} rounds, median shown; Node ${process.version}, ${os.cpus().length} CPUs`);
  // Warm up connections and caches once per runner.
  for (const r of runners) {
    if (r.put !== undefined) await r.put(`warmup/${r.name}`, 0);
    await r.get(`warmup/${r.readsFrom ?? r.name}`);
  }

  const results = new Map<string, number>(); // `${phase}|${op}|${runner}` -> MiB/s
  try {
    for (const phase of phases) {
      for (const op of ['PUT', 'GET'] as const) {
        const active = runners.filter((r) => op === 'GET' || r.put !== undefined);
        const rates = new Map<string, number[]>(active.map((r) => [r.name, []]));
        // Runners take turns within each round (in a rotating order), so that load drift on a shared machine
        // affects them alike.
        for (let round = 0; round < args.rounds; round++) {
          for (let turn = 0; turn < active.length; turn++) {
            const r = active[(turn + round) % active.length]!;
            const prefix = `${r.readsFrom ?? r.name}/${phase.concurrency}/${round}`;
            // GET reads the objects the PUT of the same round wrote under the same prefix.
            const seconds = await timed(() =>
              pool(phase.count, phase.concurrency, (i) => (op === 'PUT' ? r.put!(`${prefix}/${i}`, i % slots) : r.get(`${prefix}/${i}`))),
            );
            rates.get(r.name)!.push((phase.count * size) / MiB / seconds);
          }
        }
        for (const r of active) {
          results.set(`${phase.name}|${op}|${r.name}`, median(rates.get(r.name)!));
          console.log(`  ${op} ${phase.name} ${r.name}: ${rates.get(r.name)!.map((x) => x.toFixed(0)).join(', ')} MiB/s`);
        }
      }
    }
  } finally {
    // Clean up: every object, then the container.
    const cleanup = async () => {
      for (;;) {
        const page = await swift.list(container, { limit: 1000 });
        if (page.objects.length === 0) break;
        await pool(page.objects.length, 16, (i) => swift.delete(container, page.objects[i]!.key));
      }
      await swift.deleteContainer(container);
    };
    await cleanup().catch((err: unknown) => console.error(`cleanup of ${container} failed: ${String(err)}`));
    await swift.close();
    await swiftNoVerify.close();
    await s3?.close();
    await rm(work, { recursive: true, force: true });
  }

  const others = runners.filter((r) => r.name !== 'curl');
  const header = ['operation', ...runners.map((r) => `${r.name} MiB/s`), ...others.map((r) => `${r.name}/curl`)];
  const rows: string[][] = [];
  const cell = (key: string, digits: number) => (results.has(key) ? results.get(key)!.toFixed(digits) : '-');
  for (const phase of phases) {
    for (const op of ['PUT', 'GET'] as const) {
      const curlRate = results.get(`${phase.name}|${op}|curl`)!;
      rows.push([
        `${op} ${phase.name}`,
        ...runners.map((r) => cell(`${phase.name}|${op}|${r.name}`, 0)),
        ...others.map((r) => {
          const rate = results.get(`${phase.name}|${op}|${r.name}`);
          return rate === undefined ? '-' : (rate / curlRate).toFixed(2);
        }),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log('');
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const row of rows) console.log(line(row));
  console.log(`(load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
