/**
 * Real programs on a swiftfs mount over the real Swift (the daemon is `swiftfs mount`, a separate process):
 *
 *  - tar: extract a tree of a few thousand files (nested directories, symlinks, hard links, empty files,
 *    modes), compare with the source (diff -r, and a listing of types, modes, sizes and link targets);
 *    then unmount, mount again with an EMPTY cache directory (so every byte comes back from Swift) and compare
 *    again;
 *  - git: init, add, commit, branch, log, gc, fsck --full;
 *  - SQLite: a write load in WAL mode (shared-memory mmap) and in rollback-journal mode, then
 *    PRAGMA integrity_check;
 *  - PostgreSQL 15 as the postgres user on a mount made by root (--allow-other, no --uid/--gid: the files
 *    PostgreSQL creates are postgres's because it creates them, as on a local disk; initdb refuses a data
 *    directory it does not own): initdb, pg_ctl start, pgbench -i, pgbench -T 20, restart, amcheck-free
 *    consistency via a full read (pg_dump) and the pgbench row counts.
 *
 * Skipped without FUSE or without the test Swift (failed instead under CI=true).
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { uniqueName } from '../helpers/saio.js';
import { readSwiftEnv } from '../helpers/swift-env.js';
import { bash, forceUnmount, ok, sh, skipFuse, skipWithoutSwift, startCliMount, swiftfsEnv, tempDir, type CliMount } from '../helpers/mount.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';

describe('programs on a swiftfs mount over Swift', { skip: skipFuse() || skipWithoutSwift() }, () => {
  const swift = readSwiftEnv('A');
  const volume = `swift://${uniqueName('programs')}`;
  let mountpoint = '';
  let cacheDir = '';
  let runDir = '';
  let work = '';
  let env: NodeJS.ProcessEnv = {};
  let mount: CliMount | undefined;
  let pgUid: number | undefined;
  let pgGid: number | undefined;
  let mountArgs: string[] = [];

  before(async () => {
    const { execFileSync } = await import('node:child_process');
    const id = (flag: string): number | undefined => {
      try {
        return Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
      } catch {
        return undefined;
      }
    };
    pgUid = id('-u');
    pgGid = id('-g');
    mountpoint = await tempDir('swiftfs-prog-mnt');
    cacheDir = await tempDir('swiftfs-prog-cache');
    runDir = await tempDir('swiftfs-prog-run');
    work = await tempDir('swiftfs-prog-work');
    env = swiftfsEnv(swift!, runDir);
    mountArgs = ['--cache-dir', cacheDir, '--allow-other'];
    mount = await startCliMount(volume, mountpoint, mountArgs, env);
  });

  after(async () => {
    if (mount) {
      const r = await mount.unmount();
      if (r.code !== 0) process.stderr.write(`unmount: ${r.stdout}${r.stderr}\n`);
    }
    await forceUnmount(mountpoint);
    for (const d of [mountpoint, cacheDir, runDir, work]) await rm(d, { recursive: true, force: true });
  });

  test('tar: extract a tree of 3000 files, compare; compare again after a remount with an empty cache', { timeout: 400_000 }, async () => {
    const src = join(work, 'tree');
    // A tree of 3000 files in 60 directories, sizes 0..48 KiB, plus symlinks, hard links, empty dirs, modes.
    ok(
      await bash(
        `set -e
        mkdir -p ${src}
        cd ${src}
        for d in $(seq 1 60); do
          mkdir -p dir$((d % 7))/sub$d
          for f in $(seq 1 50); do
            n=$(( (d * 50 + f) ))
            head -c $(( (n * 7919) % 49152 )) /dev/urandom > dir$((d % 7))/sub$d/file$f.bin
          done
        done
        mkdir -p empty/deeper/still
        chmod 0700 dir1
        chmod 0640 dir2/sub2/file1.bin
        chmod 0755 dir3/sub3/file2.bin
        ln -s dir1/sub1/file1.bin link-to-file
        ln -s nowhere dangling
        ln dir4/sub4/file3.bin hardlink
        touch -d @1234567890 dir5/sub5/file4.bin
        tar -C ${src} -cf ${work}/tree.tar .`,
        { timeoutMs: 120_000 },
      ),
      'make the tree',
    );
    const dest = join(mountpoint, 'tree');
    await mkdir(dest);
    const t0 = Date.now();
    ok(await sh('tar', ['-C', dest, '-xpf', join(work, 'tree.tar')], { timeoutMs: 300_000 }), 'tar x');
    const untarMs = Date.now() - t0;
    // Directory sizes are filesystem-specific (ext4: 4096, swiftfs: 0): compared for everything else.
    const listing = `find . \\( -type d -printf 'd %m %p\\n' \\) -o -printf '%y %m %s %l %p\\n' | sort`;
    const compare = async (what: string): Promise<void> => {
      ok(await sh('diff', ['-r', '--no-dereference', src, dest], { timeoutMs: 300_000 }), `diff -r (${what})`);
      const a = ok(await bash(`cd ${src} && ${listing}`), 'listing src').stdout;
      const b = ok(await bash(`cd ${dest} && ${listing}`), 'listing dest').stdout;
      assert.equal(b, a, `types, modes, sizes and link targets (${what})`);
      assert.equal(a.split('\n').filter((l) => l.startsWith('f ')).length, 3001);
    };
    await compare('right after tar x');
    const hl = ok(await bash(`stat -c %h ${dest}/hardlink ${dest}/dir4/sub4/file3.bin`)).stdout.trim().split('\n');
    assert.deepEqual(hl, ['2', '2']);
    ok(await sh('sync', []), 'sync');

    // Everything must come back from Swift alone: unmount, new empty cache, mount again.
    const r = await mount!.unmount();
    assert.equal(r.code, 0, r.stderr);
    mount = undefined;
    await rm(cacheDir, { recursive: true, force: true });
    cacheDir = await tempDir('swiftfs-prog-cache');
    mountArgs = mountArgs.map((a, i) => (mountArgs[i - 1] === '--cache-dir' ? cacheDir : a));
    mount = await startCliMount(volume, mountpoint, mountArgs, env);
    await compare('after a remount with an empty cache');
    process.stderr.write(`# tar x of 3001 files: ${untarMs} ms\n`);
  });

  test('git: init, add, commit, branch, log, gc, fsck', { timeout: 300_000 }, async () => {
    const repo = join(mountpoint, 'repo');
    const r = ok(
      await bash(
        `set -e
        export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org HOME=${work}
        # Files created through this mount belong to their creator (root), so git needs no safe.directory.
        git init -q -b main ${repo}
        cd ${repo}
        for i in $(seq 1 200); do mkdir -p d$((i % 10)); seq 1 $i > d$((i % 10))/f$i.txt; done
        git add -A
        git commit -q -m first
        git checkout -q -b feature
        for i in $(seq 1 50); do echo change >> d$((i % 10))/f$i.txt; done
        git rm -q -f d1/f1.txt
        git mv d2/f2.txt d2/moved.txt
        git commit -q -am second
        git checkout -q main
        git merge -q --no-edit feature
        git gc -q
        git fsck --full --strict
        git status --porcelain
        git log --oneline | wc -l`,
        { timeoutMs: 240_000 },
      ),
      'git',
    );
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.at(-1), '2', 'two commits on main after the fast-forward merge');
    assert.equal(lines.length, 1, `git status is clean and fsck says nothing: ${r.stdout}`);
  });

  test('SQLite: a write load in WAL and rollback-journal modes; integrity_check is ok', { timeout: 300_000 }, async () => {
    const dir = join(mountpoint, 'sqlite');
    await mkdir(dir);
    for (const mode of ['wal', 'delete']) {
      const db = join(dir, `load-${mode}.db`);
      const script = [
        `PRAGMA journal_mode=${mode};`,
        'PRAGMA synchronous=FULL;',
        'CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);',
        'CREATE INDEX t_k ON t(k);',
      ];
      // The same inserts and deletes on a model of the rowids (a new rowid is the largest existing one + 1).
      const rows = new Set<number>();
      for (let b = 0; b < 40; b++) {
        script.push('BEGIN;');
        for (let i = 0; i < 250; i++) {
          const n = b * 250 + i;
          script.push(`INSERT INTO t(k, v) VALUES (${(n * 7919) % 1000}, hex(randomblob(${50 + (n % 400)})));`);
          rows.add(rows.size === 0 ? 1 : Math.max(...rows) + 1);
        }
        script.push(`UPDATE t SET v = v || 'x' WHERE k = ${b};`);
        script.push(`DELETE FROM t WHERE id % 97 = ${b};`);
        for (const id of [...rows]) if (id % 97 === b) rows.delete(id);
        script.push('COMMIT;');
      }
      script.push('VACUUM;', 'PRAGMA integrity_check;', 'SELECT count(*) FROM t;');
      const r = ok(await sh('sqlite3', [db], { input: script.join('\n'), timeoutMs: 240_000 }), `sqlite3 ${mode}`);
      const out = r.stdout.trim().split('\n');
      assert.equal(out.at(-2), 'ok', `integrity_check (${mode}): ${r.stdout.slice(-500)}`);
      assert.equal(Number(out.at(-1)), rows.size, `row count (${mode})`);
    }
  });

  test('PostgreSQL 15: initdb, start, pgbench -i and -T 20, restart, dump', { timeout: 600_000, skip: !existsSync(`${PG_BIN}/initdb`) ? 'PostgreSQL 15 is not installed' : false }, async () => {
    assert.ok(pgUid !== undefined && pgGid !== undefined, 'the postgres user exists');
    const data = join(mountpoint, 'pgdata');
    await mkdir(data, { mode: 0o700 });
    await chown(data, pgUid!, pgGid!);
    const sock = await tempDir('swiftfs-pgsock');
    await chown(sock, pgUid!, pgGid!);
    const logFile = join(sock, 'pg.log');
    const port = String(25432 + (process.pid % 1000));
    const pgEnv = { PATH: `${PG_BIN}:/usr/bin:/bin`, HOME: sock, LC_ALL: 'C', PGHOST: sock, PGPORT: port };
    const asPg = (args: string[], timeoutMs: number) => sh(args[0]!, args.slice(1), { uid: pgUid!, gid: pgGid!, env: pgEnv, timeoutMs, cwd: sock });
    const pgCtl = (action: string) => asPg([`${PG_BIN}/pg_ctl`, '-D', data, '-l', logFile, '-w', '-t', '120', '-o', `-k ${sock} -p ${port} -c listen_addresses=''`, action], 180_000);
    try {
      ok(await asPg([`${PG_BIN}/initdb`, '-D', data, '-A', 'trust', '-U', 'postgres', '--no-instructions'], 300_000), 'initdb');
      // Created by postgres, so postgres's (the mount has no --uid/--gid).
      const owners = ok(await sh('stat', ['-c', '%u:%g %n', join(data, 'PG_VERSION'), join(data, 'base'), join(data, 'global', 'pg_control')]), 'stat');
      for (const line of owners.stdout.trim().split('\n')) assert.ok(line.startsWith(`${pgUid}:${pgGid} `), line);
      ok(await pgCtl('start'), 'pg_ctl start');
      ok(await asPg(['pgbench', '-i', '-s', '5', '-q', 'postgres'], 300_000), 'pgbench -i');
      const bench = ok(await asPg(['pgbench', '-T', '20', '-c', '4', '-j', '2', 'postgres'], 120_000), 'pgbench -T 20');
      const tps = /tps = ([0-9.]+)/.exec(bench.stdout)?.[1];
      process.stderr.write(`# pgbench -T 20 -c 4 on swiftfs (fsync remote): tps ${tps}\n`);
      assert.match(bench.stdout, /number of failed transactions: 0/);
      ok(await asPg(['psql', '-X', '-q', '-c', 'CHECKPOINT', 'postgres'], 120_000), 'checkpoint');
      ok(await pgCtl('stop'), 'pg_ctl stop');
      ok(await pgCtl('start'), 'pg_ctl start again');
      const count = ok(await asPg(['psql', '-X', '-At', '-c', 'SELECT count(*) FROM pgbench_accounts', 'postgres'], 120_000), 'count');
      assert.equal(count.stdout.trim(), '500000');
      ok(await asPg(['pg_dump', '-f', join(sock, 'dump.sql'), 'postgres'], 300_000), 'pg_dump reads every table');
      ok(await pgCtl('stop'), 'pg_ctl stop at the end');
    } finally {
      await pgCtl('stop').catch(() => undefined);
      const log = await sh('tail', ['-n', '30', logFile]);
      if (log.stdout) process.stderr.write(`# postgres log tail:\n${log.stdout.replace(/^/gm, '#   ')}\n`);
      await rm(sock, { recursive: true, force: true });
    }
  });
});

