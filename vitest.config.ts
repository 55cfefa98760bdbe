import os from 'node:os'
import { defineConfig } from 'vitest/config'

/**
 * The tests of linking and building, run a second time with VIEWCTL_NATIVE=0:
 * once through the link addon (src/store/build/native.ts), once through
 * Node's fs calls, the fallback where the addon does not load.
 */
const BOTH_WAYS = [
  'test/linker.test.ts',
  'test/native.test.ts',
  'test/stream.test.ts',
  'test/share.test.ts',
  'test/share-fallbacks.test.ts',
  'test/share-races.test.ts',
  'test/edge-cases.test.ts',
]

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest runs cores - 1 files at a time: one on a 2-core CI machine. Most of the slow files wait
    // (on sshd and sshfs, on caches expiring, on killed processes), so at least three at a time keep
    // both cores busy; every file names its temporary directories, users, namespaces and mounts uniquely.
    maxWorkers: Math.max(3, os.availableParallelism() - 1),
    // each project names its files: an `include` here would be merged into both
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'js-links', include: BOTH_WAYS, env: { VIEWCTL_NATIVE: '0' } } },
    ],
  },
})
