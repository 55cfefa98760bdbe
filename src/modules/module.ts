/**
 * `viewctl module <view>`: one modulefile for the whole view, built from the
 * `env:` recorded for its current generation, printed for the caller to
 * install wherever its module tool looks (module trees kept up to date by
 * viewctl itself: tree.ts).
 *
 * The file names the view path as given, never resolved: a loaded shell
 * then follows regenerates and rollbacks, and `module unload` takes out the
 * same strings `module load` put in (a file that resolved the symlink when
 * loaded would, after a switch, compute other entries on unload and leave
 * the old ones behind). `--canonical` names the current generation's tree
 * instead, as `activate --canonical` does.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ViewError, translateOsError } from '../errors.js'
import { viewPathOf } from '../manifest/target.js'
import { envEntries, recordedEnv } from '../shell/env.js'
import { layoutFor, type Layout } from '../store/layout.js'
import { readViewState, requireManaged } from '../store/journal/state.js'
import { MODULE_FORMATS, renderModulefile, type ModuleFormat } from './modulefile.js'

export interface ModuleOptions {
  /** lua (Lmod) or tcl (Environment Modules; Lmod reads it too). Default: defaultModuleFormat(). */
  format?: ModuleFormat
  /** The module's name; default: the view's basename. */
  name?: string
  /** Lmod's family (at most one module of a family is loaded). */
  family?: string
  /** Name the current generation's tree instead of the view path. */
  canonical?: boolean
  /** The environment the default format is read from (default: this process's). */
  env?: NodeJS.ProcessEnv
}

export interface ModuleResult {
  view: string
  name: string
  format: ModuleFormat
  /** What the file's entries are under: the view path, or with --canonical the current generation's tree. */
  root: string
  canonical: boolean
  generation: number | null
  hash: string
  text: string
}

/** Lmod sets LMOD_CMD in every shell it runs in, Environment Modules MODULES_CMD: write for the tool in use, else Lua. */
export function defaultModuleFormat(env: NodeJS.ProcessEnv = process.env): ModuleFormat {
  if (!env.LMOD_CMD && env.MODULES_CMD) return 'tcl'
  return 'lua'
}

export function moduleFile(target: string, opts: ModuleOptions = {}): ModuleResult {
  const layout = layoutFor(viewPathOf(target))
  const state = readViewState(layout)
  requireManaged(state)
  const name = checkModuleName(opts.name ?? layout.name, 'module name')
  const family = opts.family === undefined ? undefined : checkModuleName(opts.family, 'family')
  const format = opts.format ?? defaultModuleFormat(opts.env)
  if (!MODULE_FORMATS.includes(format)) throw new ViewError('USAGE', `unknown module format ${JSON.stringify(format)}`, 'use --format lua (Lmod) or --format tcl (Environment Modules, or Lmod)')
  const root = opts.canonical ? canonicalRoot(layout) : layout.view
  const { env, record } = recordedEnv(state, state.hash)
  const text = renderModulefile({
    format,
    name,
    version: 'current',
    root,
    view: layout.view,
    generation: record?.generation ?? null,
    hash: state.hash,
    pinned: !!opts.canonical,
    env: exportedDirs(root, env),
    family,
    markId: markIdFor(layout, name),
  })
  return { view: layout.view, name, format, root, canonical: !!opts.canonical, generation: record?.generation ?? null, hash: state.hash, text }
}

function canonicalRoot(layout: Layout): string {
  try {
    return fs.realpathSync(layout.view)
  } catch (err) {
    throw translateOsError(err, `resolving ${layout.view}`)
  }
}

/**
 * `env:` as absolute directories under `root`, checked: a root that cannot
 * be a PATH entry (a newline, which no modulefile line can carry either, or
 * ':', the list separator) is bad input.
 */
export function exportedDirs(root: string, env: Record<string, string[]>): Record<string, string[]> {
  const bad = /[\n\r]/.test(root) ? 'a newline' : root.includes(':') ? "':'" : null
  if (bad !== null) {
    throw new ViewError('UNFIT_PATH', `${JSON.stringify(root)} contains ${bad}, so it cannot be an entry of PATH, MANPATH or the other variables a modulefile sets`, 'choose a view path without newlines and colons (move the view, then regenerate)')
  }
  return Object.fromEntries(envEntries(root, env).map(({ name, dirs }) => [name, dirs]))
}

/** Module names and families become file names and modulefile words: keep them plain. */
export function checkModuleName(name: string, what: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/.test(name)) {
    throw new ViewError('USAGE', `${what} ${JSON.stringify(name)} is not a plain name`, `use letters, digits and . _ + - (not starting with . + or -), e.g. --name ${path.basename(name).replace(/[^A-Za-z0-9_.+-]/g, '') || 'hpc'}`)
  }
  return name
}

/**
 * Identifies one module's MANPATH record in the environment: the same for
 * every file of that module, different for another view or name. FNV-1a
 * over the UTF-16 code units, 64 bits, 12 hex digits shown: it only has to
 * keep a user's few loaded views apart, and spares every writer that keeps
 * a module tree loading node:crypto.
 */
export function markIdFor(layout: Layout, name: string): string {
  const text = `${layout.view}\0${name}`
  let h = 0xcbf29ce484222325n
  for (let i = 0; i < text.length; i++) h = ((h ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n) & 0xffffffffffffffffn
  return h.toString(16).padStart(16, '0').slice(0, 12)
}
