/** The manifest after validation and normalization: every default filled in, every path absolute. */

export type LinkMode = 'symlink' | 'hardlink' | 'copy'
export type ConflictPolicy = 'error' | 'first' | 'last'

export interface PackageSpec {
  /** Absolute, normalized path as the manifest names it (a glob match, or the path resolved from the manifest's folder). */
  path: string
  /** realpath() of `path`; duplicates are removed by this. */
  realPath: string
  /** Package-level include patterns; null means "everything". */
  include: string[] | null
  exclude: string[]
  priority: number
  /** Where the package came from, for messages: "packages[2]" or "packages[3] (glob /opt/apps/python/3.12.*)". */
  origin: string
}

export interface GcPolicy {
  keep: number
  /** The ttl as written, e.g. "7d". */
  ttl: string
  ttlMs: number
  auto: boolean
}

export interface Manifest {
  /** Absolute path of the manifest file. */
  file: string
  /** The manifest's text exactly as read (stored in each generation as .viewctl/manifest.yaml). */
  text: string
  /** Absolute view path (relative paths resolve from the manifest's folder). */
  view: string
  link: LinkMode
  fold: boolean
  relative: boolean
  /** Hard-link unchanged entries from the generation on disk instead of creating them (store/build/share.ts). */
  share: boolean
  conflicts: ConflictPolicy
  packages: PackageSpec[]
  /** Global include patterns; null means "everything". */
  include: string[] | null
  exclude: string[]
  /** Variable name -> view-relative directories, in order ("." is the view root). */
  env: Record<string, string[]>
  gc: GcPolicy
  /** The module tree viewctl keeps up to date (`modules:`), or null. */
  modules: ModuleTreeSettings | null
}

/**
 * What building a generation needs of a manifest (store/build/): how to link,
 * whether to share, and the text and place recorded in the generation. A
 * received generation has these without the rest of a manifest.
 */
export type BuildSettings = Pick<Manifest, 'file' | 'text' | 'link' | 'fold' | 'relative' | 'conflicts' | 'share'>

/** `modules:` of a manifest, normalized: the module tree of a view (src/modules/tree.ts). Recorded in the journal like `env`. */
export interface ModuleTreeSettings {
  /** Absolute directory given to `module use`. */
  dir: string
  format: 'lua' | 'tcl'
  /** The module's name; absent: the view's basename. */
  name?: string
  family?: string
  /** One file per generation on disk, besides `current`. */
  generations: boolean
}

export const DEFAULT_ENV: Record<string, string[]> = {
  PATH: ['bin'],
  MANPATH: ['share/man'],
  PKG_CONFIG_PATH: ['lib/pkgconfig', 'share/pkgconfig'],
  CMAKE_PREFIX_PATH: ['.'],
}

export const DEFAULT_GC: GcPolicy = { keep: 2, ttl: '7d', ttlMs: 7 * 24 * 3600 * 1000, auto: true }
