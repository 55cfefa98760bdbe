/**
 * Include/exclude patterns over prefix-relative paths (picomatch syntax, dot
 * files included). A pattern that matches a directory covers everything under
 * it. Besides matching, a filter answers "could anything at or below this
 * directory be affected by a pattern?", which is what lets the walker fold a
 * single-owner directory without descending into it.
 */
import { createRequire } from 'node:module'

// Loaded on first use (CommonJS, so synchronously): a manifest without patterns never needs it.
let picomatch: typeof import('picomatch') | undefined
const matcher = () => (picomatch ??= createRequire(import.meta.url)('picomatch') as typeof import('picomatch'))

interface Pattern {
  test: (path: string) => boolean
  /** Literal leading segments before the first glob character ([] = could match anywhere). */
  base: string[]
}

function compile(patterns: string[]): Pattern[] {
  return patterns.map((raw) => {
    const glob = raw.replace(/^\.\/+/, '').replace(/\/+$/, '')
    const test = matcher()(glob, { dot: true })
    const scanned = matcher().scan(glob)
    const base = scanned.isGlob ? scanned.base.split('/').filter(Boolean) : glob.split('/').filter(Boolean)
    return { test, base }
  })
}

/** Could `pattern` match `dir` itself or anything below it? */
function mayReachBelow(pattern: Pattern, dirSegments: string[]): boolean {
  const n = Math.min(pattern.base.length, dirSegments.length)
  for (let i = 0; i < n; i++) if (pattern.base[i] !== dirSegments[i]) return false
  return true
}

export interface PackageFilter {
  /** True when no pattern can drop anything anywhere: the fast path. */
  readonly trivial: boolean
  excludes(path: string): boolean
  /** Does at least one include set (global or package) still have to be matched below `dir`? */
  includeState(path: string, inherited: IncludeState): IncludeState | null
  /** Can any exclude pattern, or a pending include, drop something at or below `dir`? */
  filterFreeBelow(dirSegments: string[], state: IncludeState): boolean
}

/**
 * Include state of a directory: for each include set (global, package),
 * whether an ancestor already matched it (then everything below is included).
 */
export interface IncludeState {
  global: boolean
  pkg: boolean
}

export const INCLUDED: IncludeState = { global: true, pkg: true }

export function makeFilter(globalInclude: string[] | null, globalExclude: string[], pkgInclude: string[] | null, pkgExclude: string[]): PackageFilter {
  const gInc = globalInclude ? compile(globalInclude) : null
  const pInc = pkgInclude ? compile(pkgInclude) : null
  const exc = compile([...globalExclude, ...pkgExclude])
  const trivial = !gInc && !pInc && exc.length === 0

  const anyMatch = (set: Pattern[], path: string) => set.some((p) => p.test(path))

  return {
    trivial,
    excludes(path) {
      return exc.length > 0 && anyMatch(exc, path)
    },
    /**
     * For a directory: returns its include state, or null when no include
     * pattern can match anything at or below it (the directory is dropped).
     * For a file: returns INCLUDED-like state when it matches, else null.
     */
    includeState(path, inherited) {
      let global = inherited.global
      let pkg = inherited.pkg
      if (!global && gInc && anyMatch(gInc, path)) global = true
      if (!pkg && pInc && anyMatch(pInc, path)) pkg = true
      if (global && pkg) return global === inherited.global && pkg === inherited.pkg ? inherited : { global, pkg }
      const segs = path.split('/')
      if (!global && gInc && !gInc.some((p) => mayReachBelow(p, segs))) return null
      if (!pkg && pInc && !pInc.some((p) => mayReachBelow(p, segs))) return null
      return { global, pkg }
    },
    filterFreeBelow(dirSegments, state) {
      if (!state.global || !state.pkg) return false
      for (const p of exc) if (mayReachBelow(p, dirSegments)) return false
      return true
    },
  }
}

/** The initial include state of a package: included unless some include set exists. */
export function rootIncludeState(globalInclude: string[] | null, pkgInclude: string[] | null): IncludeState {
  return { global: globalInclude === null, pkg: pkgInclude === null }
}
