/**
 * The kernel's own xattr probes (security.capability before every write(2), security.selinux and
 * system.posix_acl_access for every `ls -l` entry) are answered by the patched binding (level 3) without a round
 * trip to the daemon while no file of the volume has such an attribute, and reach the daemon again as soon as
 * one is set: in the same mount and in the next one. Over the real Swift, through `swiftfs mount`.
 */

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadFuseNative } from '../../src/fuse/native.js';
import { uniqueName } from '../helpers/saio.js';
import { readSwiftEnv } from '../helpers/swift-env.js';
import { bash, cliFixture, ok, removeCliFixture, sh, skipFuse, skipWithoutSwift, startCliMount, swiftfs } from '../helpers/mount.js';

function bindingLevel(): number {
  try {
    return loadFuseNative().binding.patchLevel;
  } catch {
    return 0;
  }
}

function skipOldBinding(): string | false {
  return bindingLevel() >= 3 ? false : 'fuse-native is not built at swiftfs patch level 3 (node scripts/build-fuse-native.mjs)';
}

/** Python's os.getxattr (no dependency on the attr package): the value, or the errno name. */
async function getXattr(file: string, name: string): Promise<string> {
  const r = await sh('python3', ['-c', 'import os,sys,errno\ntry: print("value:" + os.getxattr(sys.argv[1], sys.argv[2]).decode())\nexcept OSError as e: print(errno.errorcode[e.errno])', file, name]);
  return r.stdout.trim();
}

async function setXattr(file: string, name: string, value: string | null): Promise<void> {
  const code = value === null ? 'import os,sys\nos.removexattr(sys.argv[1], sys.argv[2])' : 'import os,sys\nos.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())';
  ok(await sh('python3', ['-c', code, file, name, ...(value === null ? [] : [value])]), `${value === null ? 'removexattr' : 'setxattr'} ${name}`);
}

describe('kernel xattr probes answered by the binding', { skip: skipFuse() || skipWithoutSwift() || skipOldBinding() }, () => {
  const swift = readSwiftEnv('A');
  let mountpoint = '';
  let cacheDir = '';
  let runDir = '';
  let env: NodeJS.ProcessEnv = {};

  before(async () => {
    ({ mountpoint, cacheDir, runDir, env } = await cliFixture('xattr', swift!));
  });
  after(async () => removeCliFixture({ mountpoint, cacheDir, runDir, env }));

  /** getxattr requests the daemon has answered so far. */
  async function daemonGetxattrs(): Promise<number> {
    const r = ok(await swiftfs(['status', '--json'], { env }), 'status');
    const [s] = JSON.parse(r.stdout) as { fuse: { ops: Record<string, { count: number }> } }[];
    return s!.fuse.ops['getxattr']?.count ?? 0;
  }

  /** ls -l of the directory and 64 write(2)s to a file: the kernel probes on both. */
  async function probe(): Promise<void> {
    ok(await bash(`echo 3 > /proc/sys/vm/drop_caches; ls -l '${join(mountpoint, 'd')}' > /dev/null && dd if=/dev/zero of='${join(mountpoint, 'd', 'f0')}' bs=4k count=64 conv=notrunc status=none`), 'ls -l and dd');
  }

  test('no round trip while no file has a probed name; one as soon as one is set, in this mount and the next', { timeout: 300_000 }, async () => {
    const volume = `swift://${uniqueName('xattrprobe')}`;
    let m = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir], env);
    ok(await bash(`mkdir '${join(mountpoint, 'd')}'`), 'mkdir');
    for (let i = 0; i < 20; i++) writeFileSync(join(mountpoint, 'd', `f${i}`), `file ${i}`);
    const f = join(mountpoint, 'd', 'f1');

    // Shortcut on: the kernel's probes never reach the daemon; other names do.
    let before = await daemonGetxattrs();
    await probe();
    assert.equal(await getXattr(f, 'security.capability'), 'ENODATA');
    assert.equal(await daemonGetxattrs(), before, 'ls -l, writes and a security.* getxattr are answered without the daemon');
    await setXattr(f, 'user.color', 'blue');
    before = await daemonGetxattrs();
    assert.equal(await getXattr(f, 'user.color'), 'value:blue');
    assert.equal(await getXattr(f, 'user.none'), 'ENODATA');
    assert.equal(await daemonGetxattrs(), before + 2, 'user.* names still reach the daemon');

    // A security.* attribute is set: from then on the daemon answers (the value is seen), probes included.
    await setXattr(f, 'security.swiftfs-test', 'labelled');
    assert.equal(await getXattr(f, 'security.swiftfs-test'), 'value:labelled');
    before = await daemonGetxattrs();
    await probe();
    assert.ok((await daemonGetxattrs()) > before + 20, 'with a security.* attribute on the volume, the probes reach the daemon');

    // The next mount sees the attribute in the volume and keeps the shortcut off.
    ok(await m.unmount(), 'unmount');
    m = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir], env);
    assert.equal(await getXattr(f, 'security.swiftfs-test'), 'value:labelled', 'the security.* attribute is answered after a remount');
    before = await daemonGetxattrs();
    await probe();
    assert.ok((await daemonGetxattrs()) > before + 20, 'after a remount of a volume with a security.* attribute, the probes reach the daemon');

    // Removed: the mount after that turns the shortcut on again.
    await setXattr(f, 'security.swiftfs-test', null);
    ok(await m.unmount(), 'unmount');
    m = await startCliMount(volume, mountpoint, ['--cache-dir', cacheDir], env);
    before = await daemonGetxattrs();
    await probe();
    assert.equal(await getXattr(f, 'security.swiftfs-test'), 'ENODATA');
    assert.equal(await daemonGetxattrs(), before, 'no probed name left: answered without the daemon again');
    ok(await m.unmount(), 'unmount');
  });
});
