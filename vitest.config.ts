import os from 'node:os'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest runs cores - 1 files at a time: one on a 2-core CI machine. Most of the slow files wait
    // (on sshd and sshfs, on caches expiring, on killed processes), so at least three at a time keep
    // both cores busy; every file names its temporary directories, users, namespaces and mounts uniquely.
    maxWorkers: Math.max(3, os.availableParallelism() - 1),
  },
})
