/**
 * `swiftfs plugin` under systemd socket activation (docker/swiftfs-plugin.socket): given a listening socket as
 * fd 3 with LISTEN_FDS=1 and LISTEN_PID=its pid, it serves the protocol on that socket (and does not create its
 * own). A small python3 launcher plays systemd: it binds the socket, then execs the plugin with the fd.
 * Runs the real CLI from dist/ with an in-process memory store.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineCall } from './plugin-fakes.js';

const cliMain = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
const hasPython = spawnSync('python3', ['--version']).status === 0;

const LAUNCHER = `
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o660)
s.listen(16)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)  # dup2 onto itself would leave close-on-exec set
env = dict(os.environ, LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))
os.execve(sys.argv[2], sys.argv[2:], env)
`;

test('the plugin serves a socket handed over by systemd (LISTEN_FDS)', { skip: hasPython ? false : 'python3 is needed to play systemd' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'swiftfs-plugin-activation-'));
  const launcher = join(dir, 'launch.py');
  writeFileSync(launcher, LAUNCHER);
  const socket = join(dir, 'activated.sock');
  const unused = join(dir, 'not-created.sock');
  const child = spawn(
    'python3',
    [launcher, socket, process.execPath, cliMain, 'plugin', '--socket', unused, '--state-dir', join(dir, 'state'), '--mount-root', join(dir, 'mnt'), '--cache-dir', join(dir, 'cache')],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SWIFTFS_STORE_TYPE: 'memory', SWIFTFS_LOG_LEVEL: 'warn' } },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    // The launcher binds first; connections made before the plugin is up wait in the listen queue (that is the
    // point of activation).
    let reply: Awaited<ReturnType<typeof engineCall>> | undefined;
    for (let i = 0; i < 100 && reply === undefined; i++) {
      reply = await engineCall(socket, '/Plugin.Activate').catch(async () => {
        await new Promise((r) => setTimeout(r, 50)); // not bound or not listening yet
        return undefined;
      });
    }
    assert.ok(reply, stderr);
    assert.equal(reply.status, 200, stderr);
    assert.deepEqual(reply.body, { Implements: ['VolumeDriver'] });
    const created = await engineCall(socket, '/VolumeDriver.Create', { Name: 'activated', Opts: null });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const list = await engineCall(socket, '/VolumeDriver.List', {});
    assert.deepEqual((list.body['Volumes'] as { Name: string }[]).map((v) => v.Name), ['activated']);
    assert.equal(existsSync(unused), false, 'it did not create a socket of its own');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
});
