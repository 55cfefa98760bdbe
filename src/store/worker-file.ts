/**
 * Where a worker thread's script is. The bundle (dist/bundle/, what
 * bin/viewctl runs) has each worker as one CommonJS file, `name.cjs`, which
 * boots sooner than an ES module that loads its chunks (scripts/bundle.mjs);
 * the library build (dist/store/) has the compiled module, `name.js`. Run
 * from sources (the tests import src/ directly) there is neither, and the
 * callers keep all the work on the main thread.
 */
import fs from 'node:fs'

/** The worker `name` beside the module whose URL is `base`, or null when it was not built. */
export function workerFile(name: string, base: string): URL | null {
  for (const ext of ['.cjs', '.js']) {
    const file = new URL(`./${name}${ext}`, base)
    if (fs.existsSync(file)) return file
  }
  return null
}

/** workerFile, looked up on the first call only: the files next to a running module do not come and go. */
export function workerFileOnce(name: string, base: string): () => URL | null {
  let found: URL | null | undefined
  return () => (found === undefined ? (found = workerFile(name, base)) : found)
}
