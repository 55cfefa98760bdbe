/**
 * activate: the shell code that puts a view in front of the search paths.
 *
 *   eval "$(viewctl activate /opt/views/hpc)"                  sh, bash, zsh
 *   viewctl activate /opt/views/hpc --shell fish | source      fish
 *   eval "`viewctl activate /opt/views/hpc --shell csh`"       csh, tcsh
 *
 * The values are computed here from the caller's environment (the shell that
 * runs `eval` exported it to us) and printed as quoted literals, so nothing
 * in a path (spaces, quotes, `$`, `*`) is ever re-interpreted by the shell.
 * An entry that is already in a variable is not added again; `--deactivate`
 * removes exactly the entries activate adds (under the view path, or under
 * any generation's canonical path for `--canonical`) and unsets a variable
 * left empty.
 *
 * By default the entries name the view path, so the shell follows the view
 * when it is regenerated. `--canonical` names the current generation's tree
 * instead: the shell keeps that generation, as `viewctl exec` does, but
 * unlike exec it holds no lease, so only the ttl and the /proc scan (the
 * shell's environment names the tree) protect it from gc.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ViewError, translateOsError } from '../errors.js'
import { viewPathOf } from '../manifest/target.js'
import { DEFAULT_ENV } from '../manifest/types.js'
import { isHashName, layoutFor } from '../store/layout.js'
import { readViewState, requireManaged, type ViewState } from '../store/journal/state.js'
import { envEntries, prependEntries, recordedEnv, removeEntries } from './env.js'

export const SHELLS = ['sh', 'bash', 'zsh', 'fish', 'csh'] as const
export type ShellKind = (typeof SHELLS)[number]

export interface ActivateOptions {
  shell?: ShellKind
  /** Name the current generation's tree instead of the view path. */
  canonical?: boolean
  /** Print the undo instead. */
  deactivate?: boolean
  /** The environment to start from (default: this process's). */
  env?: NodeJS.ProcessEnv
}

export interface ActivateResult {
  view: string
  /** The directory the entries are under: the view path, or the canonical generation path. */
  root: string
  shell: ShellKind
  generation: number | null
  hash: string | null
  deactivate: boolean
  /** What the script sets; null = unset. Variables already right are not listed. */
  variables: Array<{ name: string; value: string | null }>
  script: string
}

/** The shell named by $SHELL, else sh. */
export function defaultShell(env: NodeJS.ProcessEnv = process.env): ShellKind {
  const base = path.basename(env.SHELL ?? '')
  if (base === 'bash' || base === 'zsh' || base === 'fish') return base
  if (base === 'csh' || base === 'tcsh') return 'csh'
  return 'sh'
}

export function activate(target: string, opts: ActivateOptions = {}): ActivateResult {
  const layout = layoutFor(viewPathOf(target))
  const shell = opts.shell ?? defaultShell(opts.env)
  const from = opts.env ?? process.env
  const state = readViewState(layout)
  if (!opts.deactivate) requireManaged(state)

  let canonical: string | null = null
  let hash: string | null = null
  if (state.kind === 'managed') {
    try {
      canonical = fs.realpathSync(layout.view)
    } catch (err) {
      throw translateOsError(err, `resolving ${layout.view}`)
    }
    hash = path.basename(canonical)
  }
  const { env, record } = hash ? recordedEnv(state, hash) : { env: lastEnv(state), record: null }
  const root = opts.canonical && canonical ? canonical : layout.view
  const variables: ActivateResult['variables'] = []

  if (!opts.deactivate) {
    for (const { name, dirs } of envEntries(root, env)) {
      const value = prependEntries(name, from[name], dirs, false)
      if (value !== from[name]) variables.push({ name, value })
    }
  } else {
    const stores = new Set([layout.store])
    try {
      stores.add(fs.realpathSync(layout.store))
    } catch {
      // the store is gone; entries under it can still be matched by name
    }
    for (const { name, dirs } of envEntries(layout.view, env)) {
      const suffixes = new Set(dirs.map((d) => d.slice(layout.view.length)))
      const drop = (entry: string) => dirs.includes(entry) || isGenerationEntry(entry, stores, suffixes)
      const { value, changed } = removeEntries(from[name], drop)
      if (changed) variables.push({ name, value })
    }
  }

  return {
    view: layout.view,
    root,
    shell,
    generation: record?.generation ?? null,
    hash,
    deactivate: !!opts.deactivate,
    variables,
    script: render(shell, variables),
  }
}

function lastEnv(state: ViewState): Record<string, string[]> {
  for (let i = state.records.length - 1; i >= 0; i--) if (state.records[i]!.env) return state.records[i]!.env!
  return DEFAULT_ENV
}

/** `<store>/<hash><suffix>`: an entry `activate --canonical` made for some generation. */
function isGenerationEntry(entry: string, stores: Set<string>, suffixes: Set<string>): boolean {
  for (const store of stores) {
    if (!entry.startsWith(store + '/')) continue
    const rest = entry.slice(store.length + 1)
    const slash = rest.indexOf('/')
    const name = slash === -1 ? rest : rest.slice(0, slash)
    if (isHashName(name) && suffixes.has(slash === -1 ? '' : rest.slice(slash))) return true
  }
  return false
}

function render(shell: ShellKind, variables: ActivateResult['variables']): string {
  const lines = variables.map(({ name, value }) => {
    switch (shell) {
      case 'fish':
        if (value === null) return `set -e ${name}`
        // fish keeps variables whose name ends in PATH as lists and joins them with ':' on export
        return name.endsWith('PATH') ? `set -gx ${name} ${value.split(':').map(fishQuote).join(' ')}` : `set -gx ${name} ${fishQuote(value)}`
      case 'csh':
        return value === null ? `unsetenv ${name};` : `setenv ${name} ${cshQuote(name, value)};`
      default:
        return value === null ? `unset ${name}` : `export ${name}=${shQuote(value)}`
    }
  })
  return lines.length ? lines.join('\n') + '\n' : ''
}

/** POSIX single quotes: everything literal; a quote is closed, escaped, reopened. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/** fish single quotes: only \\ and \' are special inside. */
export function fishQuote(s: string): string {
  return `'${s.replace(/[\\']/g, (c) => `\\${c}`)}'`
}

/** csh single quotes, with ! (history) and ' escaped outside them; csh cannot quote a newline for eval. */
export function cshQuote(name: string, s: string): string {
  if (s.includes('\n')) {
    throw new ViewError('UNSAFE_PATH', `${name} contains a newline, which csh cannot take through eval`, 'remove the entry with the newline from the variable, or use another shell')
  }
  return `'${s.replace(/'/g, `'\\''`).replace(/!/g, `'\\!'`)}'`
}
