/**
 * The plan's text form and its hash. The same text is hashed at plan time and
 * written to `.viewctl/plan.tsv` in the generation, so `verify` and `diff`
 * read back exactly what was hashed.
 *
 *   # viewctl plan 1
 *   P <tab> 0 <tab> /opt/apps/hdf5/1.14.3         prefix table (sorted)
 *   d <tab> - <tab> bin                           a directory
 *   f <tab> 0 <tab> bin/h5dump                    a file from prefix 0
 *   l <tab> 0 <tab> lib/libhdf5.so                a symlink the prefix ships
 *   F <tab> 0 <tab> include/hdf5                  a folded directory
 *
 * A path with a tab, newline, backslash, double quote or escaped byte is
 * written as a JSON string.
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { KIND_LETTERS, NEEDS_QUOTING, NO_SOURCE, PLAN_FORMAT, type PlanOptions } from './types.js'

export { PLAN_FORMAT }
const HEADER = `# viewctl plan ${PLAN_FORMAT}\n`

export function escapePath(p: string): string {
  return NEEDS_QUOTING.test(p) ? JSON.stringify(p) : p
}

export function unescapePath(field: string): string {
  return field.startsWith('"') ? (JSON.parse(field) as string) : field
}

/** The options that decide the tree, normalized so that irrelevant ones do not change the hash. */
export function normalizedOptions(opts: PlanOptions): Record<string, unknown> {
  const symlinks = opts.link === 'symlink'
  return { format: PLAN_FORMAT, link: opts.link, fold: symlinks && opts.fold, relative: symlinks && opts.relative }
}

/**
 * Entries per chunk of plan text (about 64-128 KiB at typical path lengths).
 * Measured: joins of 8,192 entries took three times as long in all.
 */
const CHUNK_ENTRIES = 2048

/**
 * Serialize the plan into chunks of text. `quoted: false` is the walker's
 * word that no path needs quoting (merge.ts tests every name it places),
 * which saves testing 100,000 paths one by one.
 *
 * Each chunk is one `join` of its lines' parts: the "kind, tab, source, tab"
 * head of a line is made once per kind and source, and the join writes one
 * flat string, where appending line by line would make a tree of small
 * strings for the garbage collector (and for the hash to flatten again).
 */
export function planChunks(prefixes: string[], paths: string[], kinds: number[], sources: number[], quoted = true): string[] {
  let head = HEADER
  for (let i = 0; i < prefixes.length; i++) head += `P\t${i}\t${escapePath(prefixes[i]!)}\n`
  const chunks: string[] = [head]
  const heads: string[] = [] // by kind, then by source (NO_SOURCE first)
  const headOf = (kind: number, src: number): string => {
    const key = (src === NO_SOURCE ? 0 : src + 1) * KIND_LETTERS.length + kind
    return (heads[key] ??= `${KIND_LETTERS[kind]}\t${src === NO_SOURCE ? '-' : src}\t`)
  }
  const parts: string[] = []
  for (let start = 0; start < paths.length; start += CHUNK_ENTRIES) {
    const end = Math.min(paths.length, start + CHUNK_ENTRIES)
    parts.length = 0
    for (let i = start; i < end; i++) parts.push(headOf(kinds[i]!, sources[i]!), quoted ? escapePath(paths[i]!) : paths[i]!, '\n')
    chunks.push(parts.join(''))
  }
  return chunks
}

let objectHash: typeof import('object-hash') | undefined

/**
 * object-hash of the normalized options. The module is loaded on first use
 * (a CommonJS file, so synchronously): a no-op regenerate that recalls its
 * plan (cache.ts) and the link worker never hash, and need not load it.
 */
function optionsDigest(opts: PlanOptions): string {
  objectHash ??= createRequire(import.meta.url)('object-hash') as typeof import('object-hash')
  return objectHash(normalizedOptions(opts))
}

/**
 * hash = sha256(format, object-hash of the normalized options, plan text,
 * source identity digest), as 32 lowercase hex characters (128 bits).
 */
export function hashPlan(opts: PlanOptions, chunks: string[], identity: string): string {
  const h = createHash('sha256')
  h.update(`viewctl-hash ${PLAN_FORMAT}\n${optionsDigest(opts)}\n`)
  for (const c of chunks) h.update(c)
  h.update(`identity\t${identity}\n`)
  return h.digest('hex').slice(0, 32)
}

export interface ParsedPlan {
  prefixes: string[]
  paths: string[]
  kinds: number[]
  sources: number[]
}

/** Read back a plan file (the inverse of planChunks). */
export function parsePlanText(text: string): ParsedPlan {
  const prefixes: string[] = []
  const paths: string[] = []
  const kinds: number[] = []
  const sources: number[] = []
  let start = 0
  while (start < text.length) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    const line = text.slice(start, end)
    start = end + 1
    if (line === '' || line.startsWith('#')) continue
    const t1 = line.indexOf('\t')
    const t2 = line.indexOf('\t', t1 + 1)
    const letter = line.slice(0, t1)
    const src = line.slice(t1 + 1, t2)
    const p = unescapePath(line.slice(t2 + 1))
    if (letter === 'P') {
      prefixes[Number(src)] = p
      continue
    }
    const kind = (KIND_LETTERS as readonly string[]).indexOf(letter)
    if (kind < 0) throw new Error(`unknown plan entry kind ${JSON.stringify(letter)}`)
    paths.push(p)
    kinds.push(kind)
    sources.push(src === '-' ? NO_SOURCE : Number(src))
  }
  return { prefixes, paths, kinds, sources }
}
