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
import { createRequire } from 'node:module'
import path from 'node:path'
import { readTextNoFollow } from '../fs.js'
import { parseDuration } from '../manifest/duration.js'
import { MANIFEST_COPY, META_DIR } from '../store/layout.js'
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

/**
 * The settings in a generation's copy of its manifest (`.viewctl/manifest.yaml`),
 * for a tree whose journal record was lost: what its regenerate would have
 * recorded, when the copy says it plainly; nothing (the defaults) otherwise.
 */
export function settingsFromManifestCopy(dir: string): Partial<Settings> {
  let doc: { env?: unknown; gc?: unknown } | null
  try {
    const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml')
    doc = parse(readTextNoFollow(path.join(dir, META_DIR, MANIFEST_COPY))) as typeof doc
  } catch {
    return {}
  }
  const out: Partial<Settings> = {}
  const env = doc?.env
  if (isPlain(env) && Object.values(env).every((dirs) => Array.isArray(dirs) && dirs.every((d) => typeof d === 'string' && !d.includes(':') && !path.posix.normalize(d).startsWith('..')))) {
    out.env = env as Settings['env']
  }
  const gc = doc?.gc
  if (isPlain(gc)) {
    const keep = gc.keep ?? DEFAULT_GC.keep
    const ttl = gc.ttl === undefined ? DEFAULT_GC.ttl : String(gc.ttl)
    const auto = gc.auto ?? DEFAULT_GC.auto
    if (Number.isSafeInteger(keep) && (keep as number) >= 0 && typeof ttlMs(ttl) === 'number' && typeof auto === 'boolean') out.gc = { keep: keep as number, ttl, auto }
  }
  return out
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
