/**
 * Unit tests of the FUSE door without a kernel: the adapter's op translation (driven directly, over a
 * LocalVolumeFs on a temporary directory), the libfuse option builder, /proc/self/mountinfo parsing, the
 * stat layouts fuse-native's C code reads, and the control socket.
 */

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createFuseAdapter, type FuseAdapter } from '../../src/fuse/adapter.js';
import { buildFuseOptions, OP_TIMEOUTS, parseMountInfo } from '../../src/fuse/mount.js';
import { attrToStat, toStatArray, toStatfsArray } from '../../src/fuse/stat.js';
import { controlRequest, startControlServer, mountId } from '../../src/fuse/control.js';
import { LocalVolumeFs } from '../helpers/local-volume-fs.js';
import { toErrno } from '../../src/core/errors.js';
import { setup, writeFile as volWriteFile } from '../unit/volume-helpers.js';

interface Logged {
  level: string;
  obj: unknown;
  msg: string | undefined;
}

function makeLog(into: Logged[]) {
  const at = (level: string) => (obj: unknown, msg?: string) => void into.push({ level, obj, msg });
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

/** Calls a callback-style op and resolves [code, value...]. */
function call<T extends unknown[]>(fn: (...args: never[]) => void, ...args: unknown[]): Promise<[number, ...T]> {
  return new Promise((resolve) => (fn as (...a: unknown[]) => void)(...args, (...out: unknown[]) => resolve(out as [number, ...T])));
}

describe('FUSE adapter over a local directory (no kernel)', () => {
  let root = '';
  let fs: LocalVolumeFs;
  let adapter: FuseAdapter;
  const logged: Logged[] = [];
  const observed: [string, string][] = [];

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'fuse-adapter-'));
    fs = new LocalVolumeFs(root);
    adapter = createFuseAdapter({
      fs,
      log: makeLog(logged) as never,
      caller: { uid: process.getuid!(), gid: process.getgid!() },
      umask: 0o027,
      observer: { op: (op, result) => void observed.push([op, result]), bytes: () => undefined },
    });
  });
  after(async () => {
    await fs.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('errors become negative errnos from the one table; success is 0', async () => {
    const [code] = await call(adapter.ops.getattr, '/missing');
    assert.equal(code, -2);
    assert.deepEqual(observed.at(-1), ['getattr', 'ENOENT']);
    const [mk] = await call(adapter.ops.mkdir!, '/d', 0o777, undefined);
    assert.equal(mk, 0);
    const [again] = await call(adapter.ops.mkdir!, '/d', 0o777, undefined);
    assert.equal(again, -17);
    const [rm] = await call(adapter.ops.rmdir!, '/d');
    assert.equal(rm, 0);
  });

  test('an unexpected error answers EIO and is logged once per minute with op and path', async () => {
    fs.failWith = 'ESOMETHINGODD';
    const before = logged.filter((l) => l.level === 'error').length;
    const [a] = await call(adapter.ops.getattr, '/x');
    const [b] = await call(adapter.ops.getattr, '/x');
    fs.failWith = undefined;
    assert.equal(a, -5);
    assert.equal(b, -5);
    const errors = logged.filter((l) => l.level === 'error').slice(before);
    assert.equal(errors.length, 1);
    assert.equal((errors[0]!.obj as { op: string }).op, 'getattr');
    assert.equal((errors[0]!.obj as { path: string }).path, '/x');
    assert.equal(adapter.stats().unexpectedErrors, 2);
  });

  test('the mount umask is cleared from new files and directories', async () => {
    const [c, fh] = await call<[number]>(adapter.ops.create!, '/masked', 0o100666, undefined);
    assert.equal(c, 0);
    assert.ok(fh >= 1);
    await call(adapter.ops.release!, '/masked', fh);
    const [, st] = await call<[{ mode: number }]>(adapter.ops.getattr, '/masked');
    assert.equal(st.mode & 0o777, 0o640);
    await call(adapter.ops.mkdir!, '/maskdir', 0o777, undefined);
    const [, dst] = await call<[{ mode: number }]>(adapter.ops.getattr, '/maskdir');
    assert.equal(dst.mode & 0o777, 0o750);
  });

  test('write hands libfuse\'s buffer to the core and answers only once the core is done with it', async () => {
    const [, fh] = await call<[number]>(adapter.ops.create!, '/copied', 0o644, undefined);
    const buf = Buffer.from('original data and more');
    const [n] = await call(adapter.ops.write!, '/copied', fh, buf, 13, 0);
    assert.equal(n, 13);
    await call(adapter.ops.release!, '/copied', fh);
    assert.equal(readFileSync(join(root, 'copied'), 'utf8'), 'original data');
    // A core that takes its time: no answer (libfuse keeps its buffer) until its write resolves.
    let finish: (() => void) | undefined;
    let seen: Buffer | undefined;
    const slow = {
      ...Object.fromEntries(Object.getOwnPropertyNames(Object.getPrototypeOf(fs)).map((k) => [k, (fs as unknown as Record<string, unknown>)[k]])),
      write: (_fh: number, data: Buffer) =>
        new Promise<number>((resolve) => {
          seen = data;
          finish = () => resolve(data.length);
        }),
    };
    const a = createFuseAdapter({ fs: slow as never, log: makeLog([]) as never, caller: { uid: 0, gid: 0 } });
    let answered: number | undefined;
    a.ops.write!('/copied', 1, buf, 8, 0, (code) => (answered = code));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(answered, undefined, 'no answer while the core still has the buffer');
    assert.equal(seen?.toString(), 'original', 'the core sees the request\'s bytes (len, not the whole buffer)');
    finish!();
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(answered, 8);
    // The guarantee rests on fuse-native never answering a write by itself.
    assert.equal(OP_TIMEOUTS['write'], false);
  });

  test('read copies into libfuse\'s buffer and answers the byte count', async () => {
    writeFileSync(join(root, 'r'), 'abcdef');
    const [, fh] = await call<[number]>(adapter.ops.open!, '/r', 0);
    const buf = Buffer.alloc(4);
    const [n] = await call(adapter.ops.read!, '/r', fh, buf, 4, 2);
    assert.equal(n, 4);
    assert.equal(buf.toString(), 'cdef');
    const [eof] = await call(adapter.ops.read!, '/r', fh, Buffer.alloc(4), 4, 6);
    assert.equal(eof, 0);
    await call(adapter.ops.release!, '/r', fh);
  });

  test('read through the core\'s readInto: into a buffer of ours (never libfuse\'s), then copied', async () => {
    const targets: Buffer[] = [];
    const fake = {
      readInto: async (_fh: number, target: Buffer, length: number, position: number) => {
        targets.push(target);
        await new Promise((r) => setTimeout(r, 5));
        const n = Math.min(length, 10 - position); // a 10-byte file of 'a'..'j'
        for (let i = 0; i < n; i++) target[i] = 0x61 + position + i;
        return Math.max(0, n);
      },
      read: () => Promise.reject(new Error('read() must not be used when readInto exists')),
    };
    const a = createFuseAdapter({ fs: fake as never, log: makeLog([]) as never, caller: { uid: 0, gid: 0 } });
    const bufs = [Buffer.alloc(4), Buffer.alloc(8)];
    const results = await Promise.all([call(a.ops.read!, '/f', 1, bufs[0], 4, 2), call(a.ops.read!, '/f', 1, bufs[1], 8, 6)]);
    assert.deepEqual(results.map((r) => r[0]), [4, 4]);
    assert.equal(bufs[0]!.toString(), 'cdef');
    assert.equal(bufs[1]!.subarray(0, 4).toString(), 'ghij');
    assert.ok(targets.every((t) => t !== bufs[0] && t !== bufs[1] && t.length >= 8), 'the core never gets libfuse\'s buffer');
    assert.notEqual(targets[0], targets[1], 'concurrent reads get their own buffers');
    await call(a.ops.read!, '/f', 1, Buffer.alloc(2), 2, 0);
    assert.ok(targets[2] === targets[0] || targets[2] === targets[1], 'buffers are reused');
  });

  test('readdir lists . and .. first, with stats for every name', async () => {
    await call(adapter.ops.mkdir!, '/lst', 0o755, undefined);
    writeFileSync(join(root, 'lst', 'a'), 'a');
    const [code, names, stats] = await call<[string[], { mode: number; ino: number }[]]>(adapter.ops.readdir!, '/lst');
    assert.equal(code, 0);
    assert.deepEqual(names, ['.', '..', 'a']);
    assert.equal(stats.length, 3);
    assert.equal(stats[0]!.mode & 0o170000, 0o040000);
    assert.equal(stats[2]!.mode & 0o170000, 0o100000);
  });

  test('libfuse hiding an open file being unlinked becomes a real unlink; the handle keeps working', async () => {
    await call(adapter.ops.mkdir!, '/h', 0o755, undefined);
    const [, fh] = await call<[number]>(adapter.ops.create!, '/h/open', 0o644, undefined);
    await call(adapter.ops.write!, '/h/open', fh, Buffer.from('kept'), 4, 0);
    const hiddenName = '/h/.fuse_hidden0000000a00000001';
    // libfuse first checks that the hidden name is free...
    const [probe] = await call(adapter.ops.getattr, hiddenName);
    assert.equal(probe, -2);
    // ...then renames.
    const [ren] = await call(adapter.ops.rename!, '/h/open', hiddenName);
    assert.equal(ren, 0);
    assert.equal(existsSync(join(root, 'h', 'open')), false);
    assert.equal(existsSync(join(root, 'h', '.fuse_hidden0000000a00000001')), false, 'no hidden file in the volume');
    const [, names] = await call<[string[]]>(adapter.ops.readdir!, '/h');
    assert.deepEqual(names, ['.', '..']);
    // Ops that libfuse sends with the hidden path are answered through the handle.
    const [g, st] = await call<[{ size: number; nlink: number }]>(adapter.ops.getattr, hiddenName);
    assert.equal(g, 0);
    assert.equal(st.size, 4);
    assert.equal(st.nlink, 0);
    const buf = Buffer.alloc(4);
    await call(adapter.ops.read!, hiddenName, fh, buf, 4, 0);
    assert.equal(buf.toString(), 'kept');
    const [tr] = await call(adapter.ops.truncate!, hiddenName, 2);
    assert.equal(tr, 0);
    assert.equal(adapter.stats().unlinkedOpen, 1);
    // The directory is empty in the volume but cannot go while libfuse still has the file under it.
    const [busy] = await call(adapter.ops.rmdir!, '/h');
    assert.equal(busy, -39);
    await call(adapter.ops.release!, hiddenName, fh);
    const [unl] = await call(adapter.ops.unlink!, hiddenName);
    assert.equal(unl, 0);
    assert.equal(adapter.stats().unlinkedOpen, 0);
    const [rd] = await call(adapter.ops.rmdir!, '/h');
    assert.equal(rd, 0);
  });

  test('renaming a file nobody has open to a .fuse_hidden-like name is a plain rename', async () => {
    writeFileSync(join(root, 'plain'), 'p');
    const [ren] = await call(adapter.ops.rename!, '/plain', '/.fuse_hidden0000000b00000001');
    assert.equal(ren, 0);
    assert.equal(readFileSync(join(root, '.fuse_hidden0000000b00000001'), 'utf8'), 'p');
  });

  test('open handles follow renames of their directories (so a later hide finds them)', async () => {
    await call(adapter.ops.mkdir!, '/from', 0o755, undefined);
    const [, fh] = await call<[number]>(adapter.ops.create!, '/from/f', 0o644, undefined);
    await call(adapter.ops.rename!, '/from', '/to');
    const [ren] = await call(adapter.ops.rename!, '/to/f', '/to/.fuse_hidden0000000c00000001');
    assert.equal(ren, 0);
    assert.equal(existsSync(join(root, 'to', 'f')), false);
    await call(adapter.ops.release!, '/to/.fuse_hidden0000000c00000001', fh);
    await call(adapter.ops.unlink!, '/to/.fuse_hidden0000000c00000001');
  });

  test('xattr ops: set copies the value; get and list answer values and names', async () => {
    writeFileSync(join(root, 'x'), 'x');
    const value = Buffer.from('v1');
    const [s] = await call(adapter.ops.setxattr!, '/x', 'user.k', value, 0, 0);
    value.fill(0);
    assert.equal(s, 0);
    const [g, v] = await call<[Buffer]>(adapter.ops.getxattr!, '/x', 'user.k', 100);
    assert.equal(g, 0);
    assert.equal(v.toString(), 'v1');
    const [l, names] = await call<[string[]]>(adapter.ops.listxattr!, '/x');
    assert.equal(l, 0);
    assert.deepEqual(names, ['user.k']);
    const [missing] = await call(adapter.ops.getxattr!, '/x', 'user.none', 100);
    assert.equal(missing, -61);
  });

  test('statfs answers fuse-native\'s uint32 layout', async () => {
    const [code, arr] = await call<[Uint32Array]>(adapter.ops.statfs!, '/');
    assert.equal(code, 0);
    assert.ok(arr instanceof Uint32Array);
    assert.equal(arr.length, 11);
    assert.ok(arr[2]! > 0);
  });

  test('utimens: a value sets, "omit" keeps, "now" is the current time; both omitted changes nothing', async () => {
    writeFileSync(join(root, 'times'), 't');
    const times = async (): Promise<[number, number, number]> => {
      const [code, st] = await call<[{ atime: number; mtime: number; ctime: number }]>(adapter.ops.getattr, '/times');
      assert.equal(code, 0);
      return [Math.round(st.atime), Math.round(st.mtime), st.ctime];
    };
    assert.equal((await call(adapter.ops.utimens!, '/times', 1_000_000_000_000, 1_700_000_000_000))[0], 0);
    assert.deepEqual((await times()).slice(0, 2), [1_000_000_000_000, 1_700_000_000_000]);
    assert.equal((await call(adapter.ops.utimens!, '/times', 'omit', 1_234_567_890_000))[0], 0);
    assert.deepEqual((await times()).slice(0, 2), [1_000_000_000_000, 1_234_567_890_000]);
    assert.equal((await call(adapter.ops.utimens!, '/times', 1_111_111_111_000, 'omit'))[0], 0);
    assert.deepEqual((await times()).slice(0, 2), [1_111_111_111_000, 1_234_567_890_000]);
    const before = Date.now() - 1000; // the backing filesystem may round down to its granularity
    assert.equal((await call(adapter.ops.utimens!, '/times', 'omit', 'now'))[0], 0);
    let [a, m] = await times();
    assert.equal(a, 1_111_111_111_000);
    assert.ok(m >= before && m <= Date.now() + 1000, `mtime ${m} is now`);
    assert.equal((await call(adapter.ops.utimens!, '/times', 'now', 5000))[0], 0);
    [a, m] = await times();
    assert.ok(a >= before, `atime ${a} is now`);
    assert.equal(m, 5000);
    const [, , ctime] = await times();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal((await call(adapter.ops.utimens!, '/times', 'omit', 'omit'))[0], 0);
    assert.deepEqual(await times(), [a, 5000, ctime]);
    const [missing] = await call(adapter.ops.utimens!, '/nope', 'omit', 5);
    assert.equal(missing, -2);
  });

  test('new inodes belong to the caller the binding names, else the mount\'s default; --uid/--gid override per field', { skip: process.getuid?.() !== 0 && 'LocalVolumeFs sets owners as root only' }, async () => {
    const who = { uid: 4321, gid: 4322 };
    const owners = async (a: FuseAdapter, path: string): Promise<[number, number]> => {
      const [code, st] = await call<[{ uid: number; gid: number }]>(a.ops.getattr, path);
      assert.equal(code, 0, path);
      return [st.uid, st.gid];
    };
    const [, fh] = await call<[number]>(adapter.ops.create!, '/own-file', 0o644, who);
    await call(adapter.ops.release!, '/own-file', fh);
    await call(adapter.ops.mkdir!, '/own-dir', 0o755, who);
    await call(adapter.ops.symlink!, 'own-file', '/own-link', who);
    await call(adapter.ops.mknod!, '/own-fifo', 0o010644, 0, who);
    for (const p of ['/own-file', '/own-dir', '/own-link', '/own-fifo']) assert.deepEqual(await owners(adapter, p), [4321, 4322], p);
    await call(adapter.ops.mkdir!, '/own-default', 0o755, undefined);
    assert.deepEqual(await owners(adapter, '/own-default'), [process.getuid!(), process.getgid!()]);
    const overriding = createFuseAdapter({ fs, log: makeLog([]) as never, caller: { uid: 1, gid: 1 }, owner: { uid: 777 } });
    await call(overriding.ops.mkdir!, '/own-override', 0o755, who);
    assert.deepEqual(await owners(overriding, '/own-override'), [777, 4322]);
    await call(overriding.ops.mkdir!, '/own-override2', 0o755, undefined);
    assert.deepEqual(await owners(overriding, '/own-override2'), [777, 1]);
  });

  test('open and create keep the kernel\'s cached pages, except for files that have or had several names', async () => {
    const opened = (a: FuseAdapter, op: 'open' | 'create', path: string): Promise<[number, number, boolean]> =>
      new Promise((resolve) => {
        const cb = (code: number, fh?: number, keep?: boolean): void => resolve([code, fh ?? 0, keep === true]);
        if (op === 'open') a.ops.open!(path, 0, cb);
        else a.ops.create!(path, 0o644, undefined, cb);
      });
    const [c, fh, keepNew] = await opened(adapter, 'create', '/pc');
    assert.equal(c, 0);
    assert.equal(keepNew, true);
    await call(adapter.ops.release!, '/pc', fh);
    let [, fh2, keep] = await opened(adapter, 'open', '/pc');
    assert.equal(keep, true);
    await call(adapter.ops.release!, '/pc', fh2);
    assert.equal((await call(adapter.ops.link!, '/pc', '/pc-link'))[0], 0);
    for (const p of ['/pc', '/pc-link']) {
      [, fh2, keep] = await opened(adapter, 'open', p);
      assert.equal(keep, false, p);
      await call(adapter.ops.release!, p, fh2);
    }
    // Still dropped once the second name is gone (pages cached under the other name may be stale).
    await call(adapter.ops.unlink!, '/pc-link');
    [, fh2, keep] = await opened(adapter, 'open', '/pc');
    assert.equal(keep, false);
    await call(adapter.ops.release!, '/pc', fh2);
    // A file linked before the mount: found out at its first open.
    writeFileSync(join(root, 'pre'), 'p');
    const { linkSync } = await import('node:fs');
    linkSync(join(root, 'pre'), join(root, 'pre2'));
    [, fh2, keep] = await opened(adapter, 'open', '/pre');
    assert.equal(keep, false);
    await call(adapter.ops.release!, '/pre', fh2);
    // And never when the mount must not keep pages.
    const noKeep = createFuseAdapter({ fs, log: makeLog([]) as never, caller: { uid: 0, gid: 0 }, keepPageCache: false });
    writeFileSync(join(root, 'single'), 's');
    [, fh2, keep] = await opened(noKeep, 'open', '/single');
    assert.equal(keep, false);
    await call(noKeep.ops.release!, '/single', fh2);
  });

  test('every op counts into stats', () => {
    const s = adapter.stats();
    assert.ok(s.ops['getattr']!.count > 0);
    assert.ok(s.ops['getattr']!.errors > 0);
    assert.ok(s.writeSizes['16']! >= 1); // the 13-byte write
  });
});

describe('FUSE adapter over a core Volume (no kernel)', () => {
  test('getxattr: a missing attribute is ENODATA without an FsError; present ones and errors as before', async () => {
    const s = await setup();
    try {
      const v = await s.open();
      await volWriteFile(v, '/f', Buffer.from('data'));
      await v.setxattr('/f', 'user.k', Buffer.from('v1'), 0);
      const logged: Logged[] = [];
      const observed: [string, string][] = [];
      const a = createFuseAdapter({
        fs: v,
        log: makeLog(logged) as never,
        caller: { uid: 0, gid: 0 },
        observer: { op: (op, result) => void observed.push([op, result]), bytes: () => undefined },
      });
      // The kernel's query before every write: answered from the core's non-throwing lookup.
      const created: unknown[] = [];
      const origGetxattr = v.getxattr.bind(v);
      v.getxattr = async (p: string, n: string) => {
        created.push(n);
        return origGetxattr(p, n);
      };
      const [missing] = await call(a.ops.getxattr!, '/f', 'security.capability', 0);
      assert.equal(missing, -61);
      const [got, value] = await call<[Buffer]>(a.ops.getxattr!, '/f', 'user.k', 100);
      assert.equal(got, 0);
      assert.equal(value.toString(), 'v1');
      const [gone] = await call(a.ops.getxattr!, '/nope', 'security.capability', 0);
      assert.equal(gone, -2);
      const [bad] = await call(a.ops.getxattr!, '/f', 'nonamespace', 0);
      assert.equal(bad, (await origGetxattr('/f', 'nonamespace').then(() => 0, (e: unknown) => toErrno(e))));
      assert.deepEqual(created, [], 'the throwing getxattr was not used');
      assert.deepEqual(observed, [['getxattr', 'ENODATA'], ['getxattr', 'ok'], ['getxattr', 'ENOENT'], ['getxattr', observed[3]![1]]]);
      assert.notEqual(observed[3]![1], 'ok');
      assert.equal(a.stats().ops['getxattr']!.errors, 3);
      assert.equal(logged.filter((l) => l.level === 'error').length, 0, 'expected errors are not logged');
      // A value the volume does have for security.capability is answered.
      await v.setxattr('/f', 'security.capability', Buffer.from([1, 2, 3]), 0);
      const [cap, capValue] = await call<[Buffer]>(a.ops.getxattr!, '/f', 'security.capability', 100);
      assert.equal(cap, 0);
      assert.deepEqual([...capValue], [1, 2, 3]);
      await v.close();
    } finally {
      await s.cleanup();
    }
  });
});

describe('libfuse options', () => {
  test('big writes, inode numbers, permissions by the kernel, no hard_remove; extras ride in fsname', () => {
    const { native, raw } = buildFuseOptions({ mountpoint: '/m', fsname: 'swift://store/vol' });
    for (const o of ['big_writes', 'max_write=1048576', 'max_readahead=1048576', 'use_ino', 'auto_cache']) assert.ok(raw.includes(o), o);
    assert.ok(!raw.includes('hard_remove'));
    assert.ok(!raw.includes('ro'));
    assert.equal(native.fsname, `swift://store/vol,${raw.join(',')}`);
    assert.equal(native.subtype, 'swiftfs');
    assert.equal(native.defaultPermissions, true);
    assert.equal(native.allowOther, false);
    assert.equal(native.attrTimeout, 1);
    assert.equal(native.maxRead, 1048576);
    // With the patched binding the adapter answers keep_cache itself: no auto_cache then.
    const perOpen = buildFuseOptions({ mountpoint: '/m', fsname: 'v', keepCacheByOpen: true });
    assert.ok(!perOpen.raw.includes('auto_cache'));
    assert.ok(!perOpen.raw.includes('kernel_cache'));
  });

  test('read-only adds ro and no negative caching; allow_other when asked; fsname cannot inject options', () => {
    const { native, raw } = buildFuseOptions({ mountpoint: '/m', fsname: 'evil,allow_root', readOnly: true, allowOther: true });
    assert.ok(raw.includes('ro'));
    assert.ok(raw.includes('negative_timeout=0'));
    assert.equal(native.allowOther, true);
    assert.ok(native.fsname!.startsWith('evil_allow_root,'));
  });

  test('ops that change state are never answered ETIMEDOUT by fuse-native; read-only ops are bounded', () => {
    for (const op of ['write', 'fsync', 'flush', 'release', 'create', 'rename', 'unlink', 'mkdir', 'truncate', 'setxattr']) assert.equal(OP_TIMEOUTS[op], false, op);
    assert.equal(OP_TIMEOUTS['getattr'], undefined); // the default applies
    assert.ok(OP_TIMEOUTS.default > 0 && OP_TIMEOUTS.default <= 120_000);
    assert.ok((OP_TIMEOUTS['read'] as number) > 0);
  });
});

describe('/proc/self/mountinfo', () => {
  test('parses mount points (with escapes), devices, types and sources', () => {
    const text = [
      '36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
      '120 29 0:52 / /tmp/with\\040space rw,nosuid,nodev,relatime shared:66 - fuse.swiftfs swift://default/vol rw,user_id=0,group_id=0',
      'garbage line',
    ].join('\n');
    const entries = parseMountInfo(text);
    assert.equal(entries.length, 2);
    assert.deepEqual(entries[1], { mountPoint: '/tmp/with space', device: '0:52', fsType: 'fuse.swiftfs', source: 'swift://default/vol' });
  });
});

describe('stat layouts for fuse-native', () => {
  test('toStatArray splits 64-bit values and keeps nlink 0', () => {
    const arr = toStatArray(attrToStat({ ino: 7, mode: 0o100644, nlink: 0, uid: 1000, gid: 100, size: 5 * 2 ** 32 + 3, rdev: 0, atime: 1_600_000_000_123, mtime: 1_700_000_000_456.7, ctime: 1, btime: 1 }));
    assert.equal(arr[0], 0o100644);
    assert.equal(arr[3], 3);
    assert.equal(arr[4], 5);
    assert.equal(arr[6], 0);
    assert.equal(arr[7], 7);
    assert.equal(arr[12]! + arr[13]! * 2 ** 32, 1_600_000_000_123);
    assert.equal(arr[14]! + arr[15]! * 2 ** 32, 1_700_000_000_456);
  });

  test('toStatfsArray scales the fragment size when block counts exceed 32 bits', () => {
    const arr = toStatfsArray({ bsize: 4096, frsize: 4096, blocks: 2 ** 34, bfree: 2 ** 33, bavail: 2 ** 33, files: 10, ffree: 5, favail: 5, namemax: 255 });
    assert.ok(arr[2]! <= 2 ** 32 - 1);
    assert.equal(arr[1]! * arr[2]!, 4096 * 2 ** 34);
    assert.equal(arr[10], 255);
  });
});

describe('control socket', () => {
  test('status as JSON; unmount as a stream of progress lines ending in done or busy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-'));
    const socket = join(dir, `${mountId('/x')}.sock`);
    let busy = true;
    const server = await startControlServer(socket, {
      status: () => ({ pid: 1, state: 'mounted' }),
      unmount: async (lazy, progress) => {
        progress({ state: 'flushing', dirtyBytes: 10 });
        if (busy && !lazy) throw Object.assign(new Error('busy'), { busy: true });
        progress({ state: 'unmounting' });
      },
    });
    try {
      assert.deepEqual(await controlRequest(socket, 'GET', '/status'), { pid: 1, state: 'mounted' });
      const lines: unknown[] = [];
      const last = await controlRequest<{ state: string }>(socket, 'POST', '/unmount', { onLine: (l) => lines.push(l) });
      assert.equal(last.state, 'busy');
      assert.deepEqual(lines[0], { state: 'flushing', dirtyBytes: 10 });
      busy = false;
      const done = await controlRequest<{ state: string }>(socket, 'POST', '/unmount?lazy=1');
      assert.equal(done.state, 'done');
      await assert.rejects(controlRequest(join(dir, 'nobody.sock'), 'GET', '/status', { timeoutMs: 500 }), /control socket/);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
