/**
 * The link addon (native/links.c): links made with symlinkat() and linkat()
 * into a directory opened once, a batch per call (link-entry.ts,
 * linkEntries). The package ships it built for linux-x64 and linux-arm64,
 * in `prebuilds/<platform>-<arch>/viewctl-links.node`; where it is not there or
 * does not load (another platform, a libc it was not built for, a damaged
 * file), or with VIEWCTL_NATIVE=0, every link is made by Node's own
 * fs.symlinkSync and fs.linkSync instead: the same links, the same errors.
 */
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export interface LinksAddon {
  /** Open `dir`, then each component of `rel` below it, never following a symlink: a descriptor, or -errno. */
  openDir(dir: string, rel: string): number
  /** Close a descriptor openDir gave (not fs.closeSync, which warns in a worker thread about a descriptor Node did not open): 0, or -errno. */
  closeDir(fd: number): number
  /** symlinkat(target i, dirfd, name i) for each i; errs[i] gets 0 or the errno. Returns the failures. */
  symlinks(dirfd: number, targets: string, names: string, errs: Int32Array): number
  /** linkat(fromfd or AT_FDCWD, source i, dirfd, name i, 0) for each i; errs[i] gets 0 or the errno. Returns the failures. */
  links(dirfd: number, sources: string, names: string, errs: Int32Array, fromfd?: number): number
  /** linkat(fromfd, name i, dirfd, name i, 0) where fromfd's entry is a symlink to target i; errs[i] gets 0, the errno, or -1 where the entry there differs. */
  sharedLinks(dirfd: number, targets: string, names: string, errs: Int32Array, fromfd: number): number
}

/** The addon's file name in its prebuild directory. */
export const ADDON_FILE = 'viewctl-links.node'

/**
 * Where the package's prebuilt addon for this platform is: in `prebuilds/`
 * at the package's root, found by looking up from this module (src/store/build/,
 * dist/store/build/, or dist/bundle/ for the bundled command line and its
 * workers), so that it is found wherever the package is installed. Null when
 * there is none.
 */
export function prebuiltAddon(from: string = path.dirname(fileURLToPath(import.meta.url))): string | null {
  let dir = from
  for (let up = 0; up < 4; up++) {
    const file = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`, ADDON_FILE)
    if (fs.existsSync(file)) return file
    const parent = path.dirname(dir)
    if (parent === dir) break
    dir = parent
  }
  return null
}

/** Load the addon at `file`; null, without a word, when it cannot be loaded. */
export function loadLinksAddon(file: string | null): LinksAddon | null {
  if (file === null) return null
  try {
    const addon = createRequire(import.meta.url)(file) as Partial<LinksAddon>
    return typeof addon.openDir === 'function' && typeof addon.closeDir === 'function' && typeof addon.symlinks === 'function' && typeof addon.links === 'function' && typeof addon.sharedLinks === 'function' ? (addon as LinksAddon) : null
  } catch {
    return null
  }
}

let loaded: LinksAddon | null | undefined

/** The addon, loaded on first use; null for the JavaScript path (no addon, or VIEWCTL_NATIVE=0). */
export function linksAddon(): LinksAddon | null {
  if (loaded === undefined) loaded = process.env.VIEWCTL_NATIVE === '0' ? null : loadLinksAddon(prebuiltAddon())
  return loaded
}

/**
 * Choose the addon for this thread (tests): null for the JavaScript path,
 * undefined to load it again as linksAddon does.
 */
export function useLinksAddon(addon: LinksAddon | null | undefined): void {
  loaded = addon
}
