// Which engine binary loads: one compiled in build/Release wins, else the prebuild node-gyp-build's rules pick.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { locateAddon } from '../../src/engine/native-engine.js';
import { tempDir } from '../train/helpers.js';

/** The C library as node-gyp-build tells them apart. */
const libc = existsSync('/etc/alpine-release') ? 'musl' : 'glibc';

test('a compiled engine wins; else the matching prebuild of that engine; else the build path', async () => {
  const root = await tempDir('andromeda-addons-');
  const built = join(root, 'build', 'Release', 'andromeda_cpu.node');
  assert.equal(locateAddon(root, 'andromeda_cpu.node'), built, 'nothing there: the build path, for the error');

  const prebuilds = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  await mkdir(prebuilds, { recursive: true });
  const other = libc === 'glibc' ? 'musl' : 'glibc';
  for (const name of [
    `andromeda_cuda.napi.${libc}.node`, // another engine
    `andromeda_cpu.napi.${other}.node`, // another C library
    `andromeda_cpu.abi1.node`, // another Node ABI, not N-API
    `andromeda_cpu.napi.${libc}.node`,
  ])
    await writeFile(join(prebuilds, name), '');
  assert.equal(locateAddon(root, 'andromeda_cpu.node'), join(prebuilds, `andromeda_cpu.napi.${libc}.node`));
  assert.equal(locateAddon(root, 'andromeda_cuda.node'), join(prebuilds, `andromeda_cuda.napi.${libc}.node`));
  assert.equal(locateAddon(root, 'andromeda_other.node'), join(root, 'build', 'Release', 'andromeda_other.node'));

  await mkdir(join(root, 'build', 'Release'), { recursive: true });
  await writeFile(built, '');
  assert.equal(locateAddon(root, 'andromeda_cpu.node'), built);
});
