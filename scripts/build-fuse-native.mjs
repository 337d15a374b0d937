#!/usr/bin/env node
// build-fuse-native.mjs — applies swiftfs's patch to fuse-native's C and builds it from source (npm postinstall).
//
//   node scripts/build-fuse-native.mjs [--force] [--check] [--dir DIR]
//
// fuse-native 2.2.6 (the last release) has defects only its C can fix: libfuse 2.9 drops a setattr that sets
// only one of atime/mtime unless the filesystem sets flag_utime_omit_ok (touch -m, tar x, rsync -t lose times),
// utimens never passes mtime, the caller's uid/gid (fuse_get_context) never reach JS, JS cannot ask the
// kernel to keep a file's cached pages on open (keep_cache), and the kernel's own xattr probes (before every
// write, for every `ls -l` entry) each cost a round trip to JS (level 3 answers them in C when it may). The patch (native-notes/patches/
// fuse-native+2.2.6.patch; what it changes: native-notes/fuse-native.md) fixes those.
// This script:
//   1. finds node_modules/fuse-native (must be 2.2.6); applies the patch unless its fuse-native.c already has
//      it (the published file is kept as fuse-native.c.orig, so that a newer patch level re-patches from it; an
//      unknown fuse-native.c is an error, never patched blindly);
//   2. builds it with npm's own node-gyp (needs a C compiler, make, python3 and Node's headers:
//      <node prefix>/include/node, which NodeSource's and Debian's Node packages ship; the libfuse headers come
//      with fuse-shared-library-linux) into node_modules/fuse-native/build/Release/fuse.node, which
//      node-gyp-build loads before the npm prebuild. Skipped when that build is already from this patch;
//   3. checks that the built module loads and reports the patch level (when libfuse.so.2 is installed).
// --force rebuilds anyway; --check only reports (exit 0 when the patched build is in place, else 1); --dir works
// on another copy of fuse-native (a package directory; e.g. to try the patch without touching node_modules).
// A failure stops `npm install` (exit 1): a mount that silently loses mtimes is worse than no install.
// SWIFTFS_ALLOW_UNPATCHED_FUSE=1 turns the failure into a warning (the unpatched prebuild is then used; the
// mount daemon warns about it too).

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PATCH_LEVEL = 3;
const FUSE_NATIVE_VERSION = '2.2.6';
/** sha256 of fuse-native 2.2.6's fuse-native.c as published on npm. */
const ORIGINAL_SHA256 = 'e20f3726f19bc22613377b6b2e1516d8aacec09eca2ae79398cae612db7da7e8';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const patchFile = join(repo, 'native-notes', 'patches', `fuse-native+${FUSE_NATIVE_VERSION}.patch`);
const force = process.argv.includes('--force');
const checkOnly = process.argv.includes('--check');
const dirArg = process.argv.indexOf('--dir') >= 0 ? process.argv[process.argv.indexOf('--dir') + 1] : undefined;

const say = (msg) => console.log(`build-fuse-native: ${msg}`);

class BuildError extends Error {}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function fuseNativeDir() {
  const require = createRequire(join(repo, 'package.json'));
  let pkgJson;
  try {
    pkgJson = dirArg ? join(dirArg, 'package.json') : require.resolve('fuse-native/package.json');
  } catch {
    throw new BuildError('fuse-native is not installed (npm install first)');
  }
  if (!existsSync(pkgJson)) throw new BuildError(`${pkgJson} does not exist`);
  const version = JSON.parse(readFileSync(pkgJson, 'utf8')).version;
  if (version !== FUSE_NATIVE_VERSION) throw new BuildError(`the patch is for fuse-native ${FUSE_NATIVE_VERSION}, found ${version}`);
  return dirname(pkgJson);
}

/** The patch level written in a fuse-native.c (0: not patched). */
function sourcePatchLevel(source) {
  const m = /#define SWIFTFS_PATCH_LEVEL (\d+)/.exec(readFileSync(source, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function applyPatch(dir) {
  const source = join(dir, 'fuse-native.c');
  const original = `${source}.orig`;
  const level = sourcePatchLevel(source);
  if (level === PATCH_LEVEL) return false;
  if (level !== 0) {
    // Another patch level: start again from the published file.
    if (!existsSync(original) || sha256(original) !== ORIGINAL_SHA256) {
      throw new BuildError(`${source} carries swiftfs patch level ${level}, expected ${PATCH_LEVEL}, and its original is gone: reinstall fuse-native (rm -rf node_modules/fuse-native && npm install)`);
    }
    copyFileSync(original, source);
    say(`restored ${source} from ${original} (was patch level ${level})`);
  }
  if (sha256(source) !== ORIGINAL_SHA256) throw new BuildError(`${source} is not fuse-native ${FUSE_NATIVE_VERSION}'s published file: not patching it`);
  if (!existsSync(original)) copyFileSync(source, original);
  const r = spawnSync('patch', ['-p1', '--forward', '--no-backup-if-mismatch', '--batch', '-d', dir, '-i', patchFile], { encoding: 'utf8' });
  if (r.error) throw new BuildError(`cannot run patch (Debian: apt-get install patch, or build-essential): ${r.error.message}`);
  if (r.status !== 0) throw new BuildError(`patch failed:\n${r.stdout}${r.stderr}`);
  if (sourcePatchLevel(source) !== PATCH_LEVEL) throw new BuildError('the patch applied but the patch level is missing');
  say(`patched ${source}`);
  return true;
}

/** npm's own node-gyp (npm sets npm_config_node_gyp while it runs scripts), else the one next to this node. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  throw new BuildError('node-gyp not found (it comes with npm); set npm_config_node_gyp to its bin/node-gyp.js');
}

/** Node's headers without a download (there is no network but the npm registry on our machines). */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = join(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return [`--nodedir=${prefix}`];
  return []; // node-gyp falls back to its header cache or a download
}

function stampOf(dir) {
  return `${PATCH_LEVEL} ${sha256(join(dir, 'fuse-native.c'))}`;
}

function built(dir) {
  const node = join(dir, 'build', 'Release', 'fuse.node');
  const stamp = join(dir, 'build', 'swiftfs-patch');
  if (!existsSync(node) || !existsSync(stamp)) return false;
  return readFileSync(stamp, 'utf8').trim() === stampOf(dir) && statSync(node).mtimeMs >= statSync(join(dir, 'fuse-native.c')).mtimeMs;
}

function build(dir) {
  const args = [nodeGyp(), 'rebuild', ...nodedirArgs()];
  say(`building in ${dir}: node ${args.join(' ')}`);
  const r = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-40).join('\n');
    throw new BuildError(`node-gyp failed (needs a C compiler, make and python3: Debian: apt-get install build-essential python3):\n${out}${r.error ? `\n${r.error.message}` : ''}`);
  }
  writeFileSync(join(dir, 'build', 'swiftfs-patch'), `${stampOf(dir)}\n`);
}

const LIBFUSE = ['/lib/x86_64-linux-gnu/libfuse.so.2', '/usr/lib/x86_64-linux-gnu/libfuse.so.2', '/lib/aarch64-linux-gnu/libfuse.so.2', '/usr/lib/aarch64-linux-gnu/libfuse.so.2'];

/** Loads the module node-gyp-build picks (in a child: a broken module must not take this process down). */
function verify(dir) {
  if (!LIBFUSE.some((l) => existsSync(l))) {
    say('libfuse.so.2 is not installed: the build is not load-tested (Debian: apt-get install libfuse2)');
    return;
  }
  const code = [
    `const gyp = require('node:module').createRequire(${JSON.stringify(join(dir, 'package.json'))})('node-gyp-build');`,
    `const file = gyp.resolve(${JSON.stringify(dir)});`,
    'console.log(JSON.stringify({ file, level: require(file).swiftfs_patch_level ?? 0 }));',
  ].join(' ');
  const env = { ...process.env };
  delete env.FUSE_NATIVE_PREBUILD; // node-gyp-build would load from there instead
  let out;
  try {
    out = execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', env });
  } catch (err) {
    throw new BuildError(`the built module does not load: ${err.message}`);
  }
  const { file, level } = JSON.parse(out);
  if (level !== PATCH_LEVEL) throw new BuildError(`node-gyp-build loads ${file}, patch level ${level} (expected ${PATCH_LEVEL})`);
  say(`ok: ${file} (swiftfs patch level ${level})`);
}

try {
  const dir = fuseNativeDir();
  if (checkOnly) {
    const ok = sourcePatchLevel(join(dir, 'fuse-native.c')) === PATCH_LEVEL && built(dir);
    say(ok ? `patched build in place (${dir}/build/Release/fuse.node)` : 'no patched build: run node scripts/build-fuse-native.mjs');
    if (ok) verify(dir);
    process.exit(ok ? 0 : 1);
  }
  const patched = applyPatch(dir);
  if (patched || force || !built(dir)) build(dir);
  else say('already built from the patched source');
  verify(dir);
} catch (err) {
  const msg = err instanceof BuildError ? err.message : err instanceof Error ? err.stack : String(err);
  if (process.env.SWIFTFS_ALLOW_UNPATCHED_FUSE === '1') {
    console.warn(`build-fuse-native: WARNING: ${msg}\nbuild-fuse-native: continuing with fuse-native's unpatched prebuild (SWIFTFS_ALLOW_UNPATCHED_FUSE=1): single-time updates (touch -m, tar x) are lost and new files are not owned by their creator`);
    process.exit(0);
  }
  console.error(`build-fuse-native: ERROR: ${msg}\nbuild-fuse-native: set SWIFTFS_ALLOW_UNPATCHED_FUSE=1 to install with the unpatched prebuild anyway`);
  process.exit(1);
}
