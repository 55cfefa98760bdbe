/**
 * A view's settings: what `activate`, `exec` and `module` export (`env:`),
 * how gc collects it (`gc:`), and the module tree it keeps (`modules:`). They are not part of the tree's hash
 * (DESIGN §4), so they are recorded beside it, in each switch record of the
 * journal; commands given a view path use the settings of the current record.
 *
 * A regenerate whose tree is unchanged but whose settings differ records a
 * new generation that shares the tree ("settings changed"), and rollback
 * treats such a generation as a step of its own: rolling back from it
 * restores the earlier settings even though the tree is the same.
 */
import { parseDuration } from '../manifest/duration.js'
import { DEFAULT_ENV, DEFAULT_GC, type Manifest } from '../manifest/types.js'
import type { HistoryRecord } from '../store/journal/history.js'

export type Settings = Required<Pick<HistoryRecord, 'env' | 'gc' | 'modules'>>

export function manifestSettings(manifest: Manifest): Settings {
  return { env: manifest.env, gc: { keep: manifest.gc.keep, ttl: manifest.gc.ttl, auto: manifest.gc.auto }, modules: manifest.modules }
}

/**
 * The settings a record carries; a record without them (written before
 * settings were recorded, or an adopted tree's) means the defaults.
 */
export function recordSettings(record: Pick<HistoryRecord, 'env' | 'gc' | 'modules'> | null | undefined): Settings {
  return {
    env: record?.env ?? DEFAULT_ENV,
    gc: record?.gc ?? { keep: DEFAULT_GC.keep, ttl: DEFAULT_GC.ttl, auto: DEFAULT_GC.auto },
    modules: record?.modules ?? null,
  }
}

/**
 * Do two sets of settings mean the same? Variables compare by name (their
 * order in the manifest does not matter) and their directories in order
 * (it does); a ttl by its length (`7d` is `1w`); module trees field by field.
 */
export function sameSettings(a: Settings, b: Settings): boolean {
  const names = Object.keys(a.env).sort()
  const otherNames = Object.keys(b.env).sort()
  if (names.join('\0') !== otherNames.join('\0')) return false
  for (const name of names) if (a.env[name]!.join('\0') !== b.env[name]!.join('\0')) return false
  return a.gc.keep === b.gc.keep && a.gc.auto === b.gc.auto && ttlMs(a.gc.ttl) === ttlMs(b.gc.ttl) && sameModules(a.modules, b.modules)
}

/** The same module tree: the same directory, format, name, family and per-generation files. */
function sameModules(x: Settings['modules'] | undefined, y: Settings['modules'] | undefined): boolean {
  // undefined: settings sent by a viewctl older than `modules:` (a push), which means none
  const a = x ?? null
  const b = y ?? null
  if (a === null || b === null) return a === b
  return a.dir === b.dir && a.format === b.format && a.name === b.name && a.family === b.family && a.generations === b.generations
}

function ttlMs(ttl: string | number): number | string {
  try {
    return parseDuration(String(ttl))
  } catch {
    return String(ttl) // a recorded ttl that does not parse equals only itself
  }
}
