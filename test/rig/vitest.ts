/**
 * The shared-filesystem rig (sharedfs.mjs) for vitest files: started once
 * per file, stopped after it (and at process exit, whatever happens).
 *
 * Where the rig cannot run, its tests are skipped with the reason, except
 * in CI as root with /dev/fuse present, where a missing tool is a failure
 * (.ci/run installs them).
 */
import { afterAll, beforeAll, type TestContext } from 'vitest'
import { sharedFsUnavailable, startSharedFs, type MountName, type SharedFs } from './sharedfs.mjs'

const unavailable = sharedFsUnavailable()

/** Skip the test with the reason when the rig cannot run here. */
export function requireSharedFs(ctx: TestContext): void {
  if (unavailable === null) return
  const fuse = !unavailable.startsWith('no /dev/fuse') && process.platform === 'linux'
  if (fuse && process.env.CI === 'true' && process.getuid?.() === 0) throw new Error(`CI runs as root with /dev/fuse but the shared-filesystem rig cannot start: ${unavailable}`)
  ctx.skip(`shared-filesystem rig unavailable: ${unavailable}`)
}

/**
 * Start the rig before the file's tests and stop it after them. The
 * returned function gives the running rig inside a test (call
 * requireSharedFs first: it is null where the rig cannot run).
 */
export function useSharedFs(options: { delayMs?: number; mounts?: MountName[]; staleOptions?: string[] } = {}): () => SharedFs {
  let rig: SharedFs | null = null
  beforeAll(async () => {
    if (unavailable !== null) {
      process.stderr.write(`shared-filesystem rig unavailable: ${unavailable}\n`)
      return
    }
    rig = await startSharedFs({ label: 'vc15', ...options })
  }, 60_000)
  afterAll(async () => {
    await rig?.stop()
    rig = null
  }, 60_000)
  return () => {
    if (rig === null) throw new Error('the shared-filesystem rig is not running (call requireSharedFs(ctx) first)')
    return rig
  }
}
