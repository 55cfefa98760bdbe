/**
 * Links named from inside the store.
 *
 * Every link a build makes names its place by a path, and the kernel walks
 * that path one component at a time: `/scratch/views/._env/.staging-…/bin/x`
 * is seven lookups (and a mount crossing) before the one that matters. Tools
 * written in C avoid this with `symlinkat` and a descriptor of the directory;
 * Node has no `*at` calls, so a build run by the CLI makes the store the
 * process's working directory while it links, and spells each place
 * `.staging-…/bin/x`. On tmpfs that is 10-20 % less time per link
 * (docs/benchmarks.md).
 *
 * The working directory belongs to the whole process, threads included (the
 * link workers resolve the same relative paths), so this is only for a
 * process with nothing else going on: the CLI asks for it (`inStore`), a
 * library caller does not get it unless it asks. Everything else viewctl
 * does names absolute paths, and an error that names a relative place is
 * given its absolute path back (`absolutePaths`) before anyone sees it.
 */
import path from 'node:path'
import { isMainThread } from 'node:worker_threads'

/**
 * Make `store` the working directory until the returned function is called.
 * Null (nothing changed) off the main thread, where Node cannot change it,
 * or when either directory cannot be entered.
 */
export function enterStore(store: string): (() => void) | null {
  if (!isMainThread) return null
  let previous: string
  try {
    previous = process.cwd()
    process.chdir(store)
  } catch {
    return null // the working directory was deleted, or the store cannot be entered: stay where we are
  }
  let left = false
  return () => {
    if (left) return
    left = true
    try {
      process.chdir(previous)
    } catch {
      // the old directory is gone: staying in the store harms nothing
    }
  }
}

/** How the places of a build's links are spelled: the staging path, or its name inside the store (the working directory). */
export function stagingSpelling(staging: string, inStore: boolean): string {
  return inStore ? path.basename(staging) : staging
}

/**
 * An OS error from a link named relative to the store, with the absolute
 * path of that place in its `path`, `dest` and message, as every other error
 * of viewctl reports one. `at` is the relative spelling of `staging`.
 */
export function absolutePaths(err: unknown, at: string, staging: string): unknown {
  if (at === staging || !(err instanceof Error)) return err
  const e = err as NodeJS.ErrnoException & { dest?: string }
  const rel = `${at}/`
  const fix = (p: string) => (p.startsWith(rel) ? `${staging}/${p.slice(rel.length)}` : p)
  if (typeof e.path === 'string') e.path = fix(e.path)
  if (typeof e.dest === 'string') e.dest = fix(e.dest)
  e.message = e.message.split(`'${rel}`).join(`'${staging}/`)
  return err
}
