/**
 * A module tree for a view, kept up to date by viewctl:
 *
 *   <dir>/                      what `module use <dir>` names
 *     <name>/
 *       .modulerc               `module-version <name>/current default`
 *       current(.lua)           follows the view path (the default version)
 *       7(.lua)  9(.lua)        with `generations`: one per generation on
 *                               disk, each pinned to its own tree
 *
 * Lmod wants the `.lua` suffix on Lua files, Tcl files have none; the
 * `.modulerc` is Tcl, which both tools read, and sits in `<name>/` because
 * Lmod ignores one at the top of `<dir>`. Tcl files say `conflict <name>`:
 * without it Environment Modules loads `<name>/current` and `<name>/7`
 * together (Lmod swaps one version of a name for another by itself).
 *
 * Every file is written whole under a random temporary name created with
 * O_EXCL|O_NOFOLLOW and renamed into place (fs.ts, replaceFile), so a shell
 * loading a module at that moment reads the old file or the new one; a file
 * whose text is unchanged is not rewritten. Files of generations that are
 * no longer on disk are removed, and so are the other format's files.
 * `<name>/` itself is created if missing and refused if it is a symlink;
 * viewctl writes nothing else in `<dir>`.
 *
 * Every command that changes the set of generations calls
 * `keepModuleTreeCurrent` (hook.ts) under the view's writer lock, after its
 * switch.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../fs.js'
import { ViewError, translateOsError } from '../errors.js'
import type { ModuleTreeSettings } from '../manifest/types.js'
import { recordedEnv } from '../shell/env.js'
import { madeRecord } from '../store/journal/history.js'
import { layoutFor, type Layout } from '../store/layout.js'
import { listGenerations, readViewState, requireManaged, type ViewState } from '../store/journal/state.js'
import { viewPathOf } from '../manifest/target.js'
import { checkModuleName, defaultModuleFormat, exportedDirs, markIdFor } from './module.js'
import { renderModulefile, type ModuleFormat } from './modulefile.js'
import { DEFAULT_ENV } from '../manifest/types.js'

export interface ModuleTreeResult {
  /** The directory `module use` names. */
  dir: string
  /** `<dir>/<name>`, the directory viewctl writes. */
  module: string
  name: string
  format: ModuleFormat
  /** File names in `<dir>/<name>/` written now (new or changed). */
  written: string[]
  /** File names removed (collected generations, the other format's files). */
  removed: string[]
}

/** A temporary name older than this was left by a writer that died. */
const STALE_TEMP_MS = 60 * 60 * 1000

/** The files of `<name>/` this module tree consists of, by file name. */
export function moduleTreeFiles(state: ViewState & { hash: string }, settings: ModuleTreeSettings): Map<string, string> {
  const { layout } = state
  const name = checkModuleName(settings.name ?? layout.name, 'module name')
  const family = settings.family === undefined ? undefined : checkModuleName(settings.family, 'family')
  const suffix = settings.format === 'lua' ? '.lua' : ''
  const markId = markIdFor(layout, name)
  const files = new Map<string, string>()
  const common = { format: settings.format, name, view: layout.view, family, conflict: settings.format === 'tcl', markId }

  const { env, record } = recordedEnv(state, state.hash)
  files.set(`current${suffix}`, renderModulefile({ ...common, version: 'current', root: layout.view, generation: record?.generation ?? null, hash: state.hash, pinned: false, env: exportedDirs(layout.view, env) }))
  if (settings.generations) {
    const store = realStore(layout)
    for (const g of listGenerations(state)) {
      if (!g.onDisk) continue
      const root = path.join(store, g.hash)
      const made = envOfGeneration(state, g.generation)
      files.set(`${g.generation}${suffix}`, renderModulefile({ ...common, version: String(g.generation), root, generation: g.generation, hash: g.hash, pinned: true, env: exportedDirs(root, made) }))
    }
  }
  files.set('.modulerc', `#%Module1.0\n## Written by viewctl: ${name}/current, which follows the view ${layout.view}, is the default.\nmodule-version ${name}/current default\n`)
  return files
}

/** Write `<dir>/<name>/` for the view's present state (see the top of this file). */
export function writeModuleTree(layout: Layout, settings: ModuleTreeSettings): ModuleTreeResult {
  const state = readViewState(layout)
  if (state.kind !== 'managed' || state.hash === null) {
    throw new ViewError('NOT_A_VIEW', `${layout.view} is not a view managed by viewctl; there is nothing to write a module tree for`, 'regenerate it first')
  }
  const files = moduleTreeFiles(state as ViewState & { hash: string }, settings)
  const name = checkModuleName(settings.name ?? layout.name, 'module name')
  const dir = path.resolve(settings.dir)
  const module = path.join(dir, name)
  const written: string[] = []
  const removed: string[] = []
  try {
    const mode = openModuleDir(dir, module)
    // generation files first and the default last: a reader finds `current` pointing at nothing new before it is there
    const order = [...files.keys()].sort((a, b) => rank(a) - rank(b))
    for (const file of order) {
      const text = files.get(file)!
      if (readIfRegular(path.join(module, file)) === text) continue
      sfs.replaceFile(path.join(module, file), text, mode)
      written.push(file)
    }
    for (const entry of fs.readdirSync(module)) {
      const p = path.join(module, entry)
      if (isOurs(entry) && !files.has(entry)) {
        if (!isRegular(p)) continue
        sfs.unlink(p)
        removed.push(entry)
      } else if (sfs.isReplaceTempName(entry) && isStale(p)) {
        sfs.unlink(p)
      }
    }
    if (written.length || removed.length) sfs.fsyncDir(module)
  } catch (err) {
    throw translateOsError(err, `writing the module tree ${module}`)
  }
  return { dir, module, name, format: settings.format, written, removed }
}

/** Remove what writeModuleTree wrote for this view (destroy), and `<name>/` when nothing else is left in it. */
export function removeModuleTree(layout: Layout, settings: ModuleTreeSettings): ModuleTreeResult {
  const name = checkModuleName(settings.name ?? layout.name, 'module name')
  const dir = path.resolve(settings.dir)
  const module = path.join(dir, name)
  const removed: string[] = []
  try {
    let st: fs.Stats
    try {
      st = fs.lstatSync(module)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { dir, module, name, format: settings.format, written: [], removed }
      throw err
    }
    if (!st.isDirectory()) throw symlinkRefused(module)
    for (const entry of fs.readdirSync(module)) {
      if (!(isOurs(entry) || entry === '.modulerc' || sfs.isReplaceTempName(entry)) || !isRegular(path.join(module, entry))) continue
      sfs.unlink(path.join(module, entry))
      removed.push(entry)
    }
    try {
      fs.rmdirSync(module)
    } catch {
      // something of someone else's is left in it: it stays
    }
  } catch (err) {
    throw translateOsError(err, `removing the module tree ${module}`)
  }
  return { dir, module, name, format: settings.format, written: [], removed }
}

/** The env settings recorded by the command that made generation `n` (not by a rollback to it). */
function envOfGeneration(state: ViewState, n: number): Record<string, string[]> {
  return madeRecord(state.records, n)?.env ?? DEFAULT_ENV
}

function realStore(layout: Layout): string {
  try {
    return fs.realpathSync(layout.store)
  } catch (err) {
    throw translateOsError(err, `resolving ${layout.store}`)
  }
}

/** Make sure `<dir>/<name>/` is a real directory (created following `<dir>`'s modes); the mode files in it get. */
function openModuleDir(dir: string, module: string): number {
  fs.mkdirSync(dir, { recursive: true })
  let st: fs.Stats | null = null
  try {
    st = fs.lstatSync(module)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (st === null) {
    const parentMode = fs.statSync(dir).mode
    sfs.mkdir(module)
    // the group's bits from <dir>, never writable by others, whatever the umask
    fs.chmodSync(module, 0o700 | (parentMode & 0o2070) | (parentMode & 0o005))
  } else if (!st.isDirectory()) {
    throw symlinkRefused(module)
  }
  return sfs.modeFollowing(module)
}

function symlinkRefused(module: string): ViewError {
  return new ViewError('UNSAFE_PATH', `${module} is not a directory (a symlink or a file): refusing to write modulefiles through it`, 'remove it, or name another module directory (modules.dir / --dir) or module name')
}

/** current, current.lua, 7, 7.lua: the names this tree writes (besides .modulerc). */
function isOurs(name: string): boolean {
  return /^(current|[1-9][0-9]*)(\.lua)?$/.test(name)
}

function rank(name: string): number {
  if (name === '.modulerc') return 2
  return name.startsWith('current') ? 1 : 0
}

function readIfRegular(file: string): string | null {
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    try {
      return fs.fstatSync(fd).isFile() ? fs.readFileSync(fd, 'utf8') : null
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return null
  }
}

function isRegular(p: string): boolean {
  try {
    return fs.lstatSync(p).isFile()
  } catch {
    return false
  }
}

function isStale(p: string): boolean {
  try {
    return Date.now() - fs.lstatSync(p).mtimeMs > STALE_TEMP_MS
  } catch {
    return false
  }
}

export interface ModuleTreeOptions {
  dir: string
  format?: ModuleFormat
  name?: string
  family?: string
  generations?: boolean
  /** The environment the default format is read from (default: this process's). */
  env?: NodeJS.ProcessEnv
}

/**
 * `viewctl module <view> --dir D`: write the tree once, now. It takes no
 * writer lock, so any user who can read the view can keep a tree of their
 * own; each file is replaced whole, so a writer running meanwhile leaves
 * complete files either way.
 */
export function writeModuleTreeFor(target: string, opts: ModuleTreeOptions): ModuleTreeResult {
  const layout = layoutFor(viewPathOf(target))
  requireManaged(readViewState(layout))
  const settings: ModuleTreeSettings = { dir: path.resolve(opts.dir), format: opts.format ?? defaultModuleFormat(opts.env), generations: !!opts.generations }
  if (opts.name !== undefined) settings.name = opts.name
  if (opts.family !== undefined) settings.family = opts.family
  return writeModuleTree(layout, settings)
}
