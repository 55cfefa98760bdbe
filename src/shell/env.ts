/**
 * The search-path variables a view exports (PATH, MANPATH, PKG_CONFIG_PATH,
 * CMAKE_PREFIX_PATH by default, or the manifest's `env`), shared by
 * `activate` and `exec`.
 *
 * Lists are colon-separated and their empty entries are kept as they are:
 * they mean something (in MANPATH an empty entry stands for the system's
 * default search path; in PATH, the current directory). When MANPATH is not
 * set, `man` uses its default path, and setting MANPATH to the view alone
 * would hide the system's manual pages, so the view's entries get a trailing
 * ':' there ("and then the defaults").
 */
import path from 'node:path'
import { ViewError } from '../errors.js'
import { DEFAULT_ENV } from '../manifest/types.js'
import { switches, type HistoryRecord } from '../store/journal/history.js'
import type { ViewState } from '../store/journal/state.js'

export interface EnvEntries {
  name: string
  /** Absolute directories, in order. */
  dirs: string[]
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Variables whose unset state means "a default list" that an empty entry keeps. */
const DEFAULT_MEANS_SYSTEM = new Set(['MANPATH'])

/** The env settings recorded for the tree `hash` (the last switch to it), else the defaults. */
export function recordedEnv(state: ViewState, hash: string): { env: Record<string, string[]>; record: HistoryRecord | null } {
  const sw = switches(state.records)
  for (let i = sw.length - 1; i >= 0; i--) {
    if (sw[i]!.hash === hash) return { env: sw[i]!.env ?? DEFAULT_ENV, record: sw[i]! }
  }
  return { env: DEFAULT_ENV, record: null }
}

/** Turn `{PATH: ['bin']}` into absolute directories under `root` ("." is the root itself). */
export function envEntries(root: string, env: Record<string, string[]>): EnvEntries[] {
  if (root.includes(':')) {
    throw new ViewError('UNSAFE_PATH', `${root} contains ':', which separates entries in PATH-like variables`, 'choose a view path without a colon')
  }
  const out: EnvEntries[] = []
  for (const [name, rels] of Object.entries(env)) {
    if (!NAME_RE.test(name)) {
      throw new ViewError('UNSAFE_PATH', `env: ${JSON.stringify(name)} is not a valid environment variable name`, 'use letters, digits and underscores, not starting with a digit')
    }
    const dirs: string[] = []
    for (const rel of rels) {
      if (rel.includes(':')) {
        throw new ViewError('UNSAFE_PATH', `env.${name}: ${JSON.stringify(rel)} contains ':', which separates entries in PATH-like variables`, 'list directories inside the view, relative to its root, e.g. bin or lib/pkgconfig')
      }
      const abs = rel === '.' ? root : path.join(root, rel)
      if (abs !== root && !abs.startsWith(root + '/')) {
        throw new ViewError('UNSAFE_PATH', `env.${name}: ${JSON.stringify(rel)} leads outside the view (${abs})`, 'list directories inside the view, relative to its root, e.g. bin or lib/pkgconfig')
      }
      const clean = abs.replace(/\/+$/, '') || '/'
      if (!dirs.includes(clean)) dirs.push(clean)
    }
    out.push({ name, dirs })
  }
  return out
}

function split(value: string | undefined): string[] | null {
  return value === undefined || value === '' ? null : value.split(':')
}

/**
 * `dirs` in front of `existing`. With `move`, entries already present are
 * moved to the front (exec: the view must win); without, they are left where
 * they are and not added twice (activate).
 */
export function prependEntries(name: string, existing: string | undefined, dirs: string[], move: boolean): string {
  const parts = split(existing)
  if (parts === null) return DEFAULT_MEANS_SYSTEM.has(name) ? `${dirs.join(':')}:` : dirs.join(':')
  if (move) return [...dirs, ...parts.filter((p) => !dirs.includes(p))].join(':')
  return [...dirs.filter((d) => !parts.includes(d)), ...parts].join(':')
}

/**
 * `existing` without the entries `drop` accepts. `value` is null when nothing
 * but empty entries is left (unset the variable); `changed` is false when no
 * entry matched (leave the variable alone).
 */
export function removeEntries(existing: string | undefined, drop: (entry: string) => boolean): { value: string | null; changed: boolean } {
  const parts = split(existing)
  if (parts === null) return { value: existing ?? null, changed: false }
  const left = parts.filter((p) => !drop(p))
  if (left.length === parts.length) return { value: existing!, changed: false }
  return { value: left.every((p) => p === '') ? null : left.join(':'), changed: true }
}
