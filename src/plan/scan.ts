/**
 * Reading one directory of a prefix. The walker asks for listings through a
 * `DirReader`, so a scan cache can answer instead of the filesystem.
 */
import fs from 'node:fs'
import { decodeName, fsPath } from '../fs.js'

export const EntryType = { Dir: 0, File: 1, Symlink: 2, Special: 3 } as const
export type EntryType = (typeof EntryType)[keyof typeof EntryType]

export interface DirListing {
  names: string[]
  types: EntryType[]
}

export type DirReader = (abs: string) => DirListing

function typeOf(d: fs.Dirent): EntryType {
  if (d.isDirectory()) return EntryType.Dir
  if (d.isFile()) return EntryType.File
  if (d.isSymbolicLink()) return EntryType.Symlink
  return EntryType.Special
}

/**
 * readdir with file types and no stat: Node falls back to lstat by itself
 * only where the filesystem reports DT_UNKNOWN. Names that are not valid
 * UTF-8 come back with U+FFFD; such a directory is read again as bytes and
 * its names carried with escaped bytes (see fs.ts).
 */
export function readDirListing(abs: string): DirListing {
  const dirents = fs.readdirSync(fsPath(abs), { withFileTypes: true })
  const names = new Array<string>(dirents.length)
  const types = new Array<EntryType>(dirents.length)
  let mangled = false
  for (let i = 0; i < dirents.length; i++) {
    const d = dirents[i]!
    names[i] = d.name
    types[i] = typeOf(d)
    if (d.name.includes('\uFFFD')) mangled = true
  }
  return mangled ? readDirListingRaw(abs) : { names, types }
}

function readDirListingRaw(abs: string): DirListing {
  const dirents = fs.readdirSync(fsPath(abs), { withFileTypes: true, encoding: 'buffer' })
  return {
    names: dirents.map((d) => decodeName(d.name)),
    types: dirents.map((d) => typeOf(d as unknown as fs.Dirent)),
  }
}
