/**
 * Scenarios shared by the Volume unit tests (memory store) and integration tests (real Swift, both APIs):
 * exercising every VolumeFs operation, and checking the resulting state (from any mount of the volume).
 */
import assert from 'node:assert/strict';
import { FsError } from '../../src/core/errors.js';
import {
  O_APPEND,
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  XATTR_CREATE,
} from '../../src/core/types.js';
import type { Volume } from '../../src/core/volume.js';
import { writeFile, readFile, pattern, KiB } from './volume-helpers.js';

export function code(err: unknown): string {
  return err instanceof FsError ? err.code : `not an FsError: ${String(err)}`;
}
export async function errno(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return code(err);
  }
}

export async function exerciseEverything(v: Volume): Promise<void> {
  await v.mkdir('/dir', 0o750, { uid: 10, gid: 20 });
  const d = await v.getattr('/dir');
  assert.equal(d.mode & S_IFMT, S_IFDIR);
  assert.equal(d.mode & 0o7777, 0o750);
  assert.equal(d.uid, 10);
  assert.equal(await errno(v.mkdir('/dir', 0o755)), 'EEXIST');

  const fh = await v.create('/dir/a', 0o640, O_CREAT | O_RDWR | O_EXCL);
  assert.ok(fh >= 1);
  assert.equal(await errno(v.create('/dir/a', 0o640, O_CREAT | O_RDWR | O_EXCL)), 'EEXIST');
  assert.equal(await v.write(fh, Buffer.from('hello world'), 0), 11);
  assert.equal((await v.fgetattr(fh)).size, 11);
  assert.deepEqual(await v.read(fh, 5, 6), Buffer.from('world'));
  assert.deepEqual(await v.read(fh, 100, 6), Buffer.from('world'));
  assert.deepEqual(await v.read(fh, 10, 11), Buffer.alloc(0));
  // sparse write: a hole reads as zeros
  await v.write(fh, Buffer.from('Z'), 100 * KiB);
  const hole = await v.read(fh, 10, 50 * KiB);
  assert.deepEqual(hole, Buffer.alloc(10));
  await v.ftruncate(fh, 5);
  assert.deepEqual(await v.read(fh, 100, 0), Buffer.from('hello'));
  await v.fsync(fh, false);
  await v.flush(fh);
  await v.release(fh);
  assert.equal(await errno(v.read(fh, 1, 0)), 'EBADF');

  // access modes
  const ro = await v.open('/dir/a', O_RDONLY);
  assert.equal(await errno(v.write(ro, Buffer.from('x'), 0)), 'EBADF');
  assert.equal(await errno(v.ftruncate(ro, 0)), 'EINVAL');
  await v.release(ro);
  const wo = await v.open('/dir/a', O_WRONLY);
  assert.equal(await errno(v.read(wo, 1, 0)), 'EBADF');
  await v.release(wo);
  assert.equal(await errno(v.open('/dir', O_RDWR)), 'EISDIR');
  assert.equal(await errno(v.open('/nope', O_RDONLY)), 'ENOENT');

  // O_APPEND writes at the end whatever the position
  const ap = await v.open('/dir/a', O_WRONLY | O_APPEND);
  await v.write(ap, Buffer.from('++'), 0);
  await v.release(ap);
  assert.deepEqual(await readFile(v, '/dir/a'), Buffer.from('hello++'));
  // O_TRUNC empties on open
  const tr = await v.open('/dir/a', O_RDWR | O_TRUNC);
  assert.equal((await v.fgetattr(tr)).size, 0);
  await v.write(tr, Buffer.from('again'), 0);
  await v.release(tr);
  const ct = await v.create('/dir/a', 0o600, O_CREAT | O_RDWR | O_TRUNC);
  assert.equal((await v.fgetattr(ct)).size, 0);
  await v.write(ct, Buffer.from('content'), 0);
  await v.release(ct);

  // larger than a block (64 KiB here) and unaligned
  const big = pattern(300 * KiB + 17, 5);
  await writeFile(v, '/dir/big', big);
  assert.deepEqual(await readFile(v, '/dir/big'), big);
  await v.truncate('/dir/big', 200 * KiB);
  assert.equal((await v.getattr('/dir/big')).size, 200 * KiB);

  await v.symlink('a', '/dir/ln');
  assert.equal(await v.readlink('/dir/ln'), 'a');
  assert.equal((await v.getattr('/dir/ln')).mode & S_IFMT, S_IFLNK);
  await v.link('/dir/a', '/dir/hard');
  assert.equal((await v.getattr('/dir/a')).nlink, 2);
  await v.mknod('/dir/fifo', S_IFIFO | 0o644, 0);
  assert.equal((await v.getattr('/dir/fifo')).mode & S_IFMT, S_IFIFO);

  await v.chmod('/dir/a', 0o600);
  assert.equal((await v.getattr('/dir/a')).mode & 0o7777, 0o600);
  await v.chown('/dir/a', 1000, 1001);
  assert.equal((await v.getattr('/dir/a')).uid, 1000);
  await v.utimens('/dir/a', 1_000_000, 2_000_000);
  assert.equal((await v.getattr('/dir/a')).mtime, 2_000_000);

  await v.setxattr('/dir/a', 'user.k', Buffer.from('v1'), 0);
  assert.equal(await errno(v.setxattr('/dir/a', 'user.k', Buffer.from('v2'), XATTR_CREATE)), 'EEXIST');
  assert.deepEqual(await v.getxattr('/dir/a', 'user.k'), Buffer.from('v1'));
  await v.setxattr('/dir/a', 'user.gone', Buffer.from('x'), 0);
  await v.removexattr('/dir/a', 'user.gone');
  assert.deepEqual(await v.listxattr('/dir/a'), ['user.k']);

  await v.mkdir('/dir/sub', 0o755);
  await v.rename('/dir/hard', '/dir/sub/moved');
  assert.equal(await errno(v.rename('/dir/a', '/dir/sub/moved', RENAME_NOREPLACE)), 'EEXIST');
  await writeFile(v, '/x1', Buffer.from('one'));
  await writeFile(v, '/x2', Buffer.from('two'));
  await v.rename('/x1', '/x2', RENAME_EXCHANGE);
  assert.deepEqual(await readFile(v, '/x2'), Buffer.from('one'));
  assert.equal(await errno(v.rmdir('/dir/sub')), 'ENOTEMPTY');
  await v.unlink('/dir/sub/moved');
  await v.rmdir('/dir/sub');
  assert.equal(await errno(v.getattr('/dir/sub')), 'ENOENT');

  // unlinked while open: data stays readable through the handle until release
  await writeFile(v, '/dir/tmp', Buffer.from('still here'));
  const keep = await v.open('/dir/tmp', O_RDONLY);
  await v.unlink('/dir/tmp');
  assert.deepEqual(await v.read(keep, 100, 0), Buffer.from('still here'));
  await v.release(keep);

  const names = (await v.readdir('/dir')).map((e) => e.name).sort();
  assert.deepEqual(names, ['a', 'big', 'fifo', 'ln']);
  const sf = await v.statfs();
  assert.ok(sf.bsize > 0 && sf.namemax === 255);
  await v.syncAll();
}

export async function checkEverything(v: Volume): Promise<void> {
  assert.deepEqual((await v.readdir('/dir')).map((e) => e.name).sort(), ['a', 'big', 'fifo', 'ln']);
  assert.deepEqual(await readFile(v, '/dir/a'), Buffer.from('content'));
  const a = await v.getattr('/dir/a');
  assert.equal(a.mode & 0o7777, 0o600);
  assert.equal(a.mode & S_IFMT, S_IFREG);
  assert.equal(a.uid, 1000);
  assert.equal(a.nlink, 1);
  assert.deepEqual(await readFile(v, '/dir/big'), pattern(300 * KiB + 17, 5).subarray(0, 200 * KiB));
  assert.equal(await v.readlink('/dir/ln'), 'a');
  assert.deepEqual(await v.getxattr('/dir/a', 'user.k'), Buffer.from('v1'));
  assert.deepEqual(await readFile(v, '/x2'), Buffer.from('one'));
  assert.deepEqual(await readFile(v, '/x1'), Buffer.from('two'));
}

