/**
 * Commands other than regenerate/plan take a manifest or a view path. Given a
 * manifest, they only need its `view`: a rollback at 2 a.m. must work even
 * when a prefix named in the manifest is gone, so the prefixes are not checked.
 */
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { ViewError } from '../errors.js'

export function isManifestPath(target: string): boolean {
  return /\.ya?ml$/i.test(target)
}

export function viewPathOf(target: string): string {
  if (!isManifestPath(target)) return path.resolve(target)
  let text: string
  try {
    text = fs.readFileSync(target, 'utf8')
  } catch (err) {
    throw new ViewError('MANIFEST_NOT_FOUND', `${target}: cannot read the manifest (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'check the path, or give the view path instead of the manifest')
  }
  let doc: unknown
  try {
    // Loaded here, not at the top: a view path (the common case) needs no YAML parser (~30 ms of start-up).
    const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml')
    doc = parse(text)
  } catch (err) {
    throw new ViewError('MANIFEST_YAML', `${target}: ${(err as Error).message.split('\n')[0]}`, 'fix the YAML syntax, or give the view path instead of the manifest')
  }
  const view = (doc as { view?: unknown } | null)?.view
  if (typeof view !== 'string' || view === '') {
    throw new ViewError('MANIFEST_INVALID', `${target}: no \`view\` path in the manifest`, 'add `view: /path/to/view`, or give the view path instead of the manifest')
  }
  return fromManifestDir(target, view)
}

/** A path as the manifest `file` means it: relative paths resolve from the manifest's folder. */
export function fromManifestDir(file: string, p: string): string {
  return path.resolve(path.dirname(path.resolve(file)), p)
}

/**
 * The view path a manifest names, read off its text without a YAML parser,
 * when `view:` is written plainly at the start of a line (`view: /opt/views/hpc`,
 * quoted or not, with a comment or not); null otherwise. A guess, used only to
 * find the scan cache that may know this manifest (ops/regenerate.ts): what is
 * found there is used only when it was stored under this exact text and names
 * this same view, so a wrong guess costs a parse, never a wrong manifest.
 */
export function guessViewPath(text: string, file: string): string | null {
  const line = /^view[ \t]*:[ \t]+(.*)$/m.exec(text)?.[1]
  if (line === undefined) return null
  let value: string | null
  if (line.startsWith("'")) value = /^'((?:[^']|'')*)'[ \t]*(?:#.*)?$/.exec(line)?.[1]?.replace(/''/g, "'") ?? null
  else if (line.startsWith('"')) value = /^"([^"\\]*)"[ \t]*(?:#.*)?$/.exec(line)?.[1] ?? null
  else if (/^[^-?:,[\]{}#&*!|>'"%@`\s]/.test(line) || /^[-?:][^\s]/.test(line)) value = line.replace(/[ \t]+#.*$/, '').trimEnd()
  else value = null
  if (!value) return null
  return fromManifestDir(file, value)
}
