/**
 * Checks shared by the crash, concurrency, fault and bad-input suites: what a
 * complete generation is (read from disk, independently of src/), what a dead
 * or failed writer may not leave behind, and small process utilities.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { expect } from 'vitest'
import { jsonOutput, linkTarget, snapshot, viewctlAsync, type RunResult } from './helpers.js'

export function storeOf(view: string): string {
  return path.join(path.dirname(view), `._${path.basename(view)}`)
}

/** A path string whose lone surrogates U+DC80..U+DCFF stand for raw bytes, as the kernel sees it. */
export function rawPath(p: string): string | Buffer {
  if (!/[\uDC80-\uDCFF]/.test(p)) return p
  const parts: Buffer[] = []
  for (const ch of p) {
    const c = ch.charCodeAt(0)
    if (ch.length === 1 && c >= 0xdc80 && c <= 0xdcff) parts.push(Buffer.of(c - 0xdc00))
    else parts.push(Buffer.from(ch, 'utf8'))
  }
  return Buffer.concat(parts)
}

export interface PlanLine {
  kind: string
  source: string
  path: string
}

/** The entry lines of a plan.tsv (`kind \t source \t path`, path JSON-quoted when it needs it). */
export function readPlanEntries(planFile: string): { prefixes: string[]; entries: PlanLine[] } {
  const text = fs.readFileSync(planFile, 'utf8')
  const prefixes: string[] = []
  const entries: PlanLine[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const [kind, source, ...rest] = line.split('\t')
    const field = rest.join('\t')
    const p = field.startsWith('"') ? (JSON.parse(field) as string) : field
    if (kind === 'P') prefixes.push(p)
    else entries.push({ kind: kind!, source: source!, path: p })
  }
  return { prefixes, entries }
}

export interface GenerationSeen {
  hash: string
  dir: string
  entries: number
  meta: { hash: string; manifest: string; counts: { entries: number } } & Record<string, unknown>
}

/**
 * The view resolves to a directory in its store that has `.viewctl/meta.json`,
 * whose `counts.entries` equals the entry lines of its plan.tsv, and every
 * planned path exists (lstat). Returns what it saw.
 */
export function assertCompleteGeneration(view: string): GenerationSeen {
  const target = linkTarget(view)
  expect(target, `${view} should be a symlink`).not.toBeNull()
  expect(target!, `${view} should point at ._<name>/<hash>`).toMatch(new RegExp(`^\\._${escapeRe(path.basename(view))}/[0-9a-f]{16,64}$`))
  const hash = target!.split('/')[1]!
  const dir = path.join(storeOf(view), hash)
  expect(fs.realpathSync(view)).toBe(fs.realpathSync(dir))
  const metaFile = path.join(dir, '.viewctl', 'meta.json')
  expect(fs.existsSync(metaFile), `${metaFile} should exist (complete generation)`).toBe(true)
  const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as GenerationSeen['meta']
  expect(meta.hash).toBe(hash)
  const { entries } = readPlanEntries(path.join(dir, '.viewctl', 'plan.tsv'))
  expect(meta.counts.entries, 'meta.json counts.entries vs plan.tsv entry lines').toBe(entries.length)
  const missing: string[] = []
  for (const e of entries) {
    try {
      fs.lstatSync(rawPath(`${dir}/${e.path}`))
    } catch {
      missing.push(e.path)
    }
  }
  expect(missing, 'planned paths missing from the generation').toEqual([])
  return { hash, dir, entries: entries.length, meta }
}

/** What only a writer in progress (or a dead one) may leave: staging, trash, temporary links. */
export function leftovers(view: string): string[] {
  const out: string[] = []
  try {
    for (const n of fs.readdirSync(storeOf(view))) if (n.startsWith('.staging-') || n.startsWith('.trash-')) out.push(n)
  } catch {
    // no store
  }
  const tmpPrefix = `.${path.basename(view)}.tmp-`
  for (const n of fs.readdirSync(path.dirname(view))) if (n.startsWith(tmpPrefix)) out.push(n)
  return out.sort()
}

export function stagingDirs(view: string): string[] {
  try {
    return fs.readdirSync(storeOf(view)).filter((n) => n.startsWith('.staging-'))
  } catch {
    return []
  }
}

export interface HistoryLine {
  generation: number
  hash: string
  action: string
  [k: string]: unknown
}

/** history.jsonl parsed strictly: every line must be a JSON record. */
export function historyRecords(view: string): HistoryLine[] {
  const file = path.join(storeOf(view), 'history.jsonl')
  if (!fs.existsSync(file)) return []
  const text = fs.readFileSync(file, 'utf8')
  expect(text === '' || text.endsWith('\n'), 'history.jsonl ends with a newline').toBe(true)
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as HistoryLine
      } catch {
        throw new Error(`history.jsonl line ${i + 1} is not JSON: ${JSON.stringify(l.slice(0, 200))}`)
      }
    })
}

export function historyText(view: string): string | null {
  try {
    return fs.readFileSync(path.join(storeOf(view), 'history.jsonl'), 'utf8')
  } catch {
    return null
  }
}

/** Everything a failed writer must not change: the link, the generation trees, the journal, and the parent's listing. */
export function fullSnapshot(view: string) {
  return {
    ...snapshot(view),
    history: historyText(view),
    // what sits beside the view under its name: the view, its store, temporary links
    parent: fs
      .readdirSync(path.dirname(view))
      .filter((n) => n === path.basename(view) || n.startsWith(`._${path.basename(view)}`) || n.startsWith(`.${path.basename(view)}.`))
      .sort(),
  }
}

export function noStackTrace(stderr: string): void {
  expect(stderr, 'no stack trace on stderr').not.toMatch(/^\s+at /m)
  expect(stderr).not.toMatch(/\n\s*at .*\.js:\d+/)
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

/** Collect a child's output and wait for it to exit. */
export function finished(child: ChildProcess): Promise<Exit> {
  const started = performance.now()
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - started }))
  })
}

/** Like `finished`, but SIGKILLs the child after `ms` and marks the result as timed out. */
export async function finishedWithin(child: ChildProcess, ms: number): Promise<Exit & { timedOut: boolean }> {
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, ms)
  try {
    const r = await finished(child)
    return { ...r, timedOut }
  } finally {
    clearTimeout(timer)
  }
}

/** The real CLI, like `viewctl()` but without blocking, so that independent runs can overlap. */
export async function viewctlRun(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const r = await finishedWithin(viewctlAsync(args, opts), 120_000)
  return { code: r.code ?? (r.signal ? 128 : -1), stdout: r.stdout, stderr: r.stderr + (r.timedOut ? '\n(test: killed after 120 s)' : ''), json: jsonOutput(args, r.stdout) }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Poll `cond` every `everyMs` until it returns a truthy value or `timeoutMs` passes (then null). */
export async function waitFor<T>(cond: () => T | null | undefined | false, timeoutMs: number, everyMs = 2): Promise<T | null> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const v = cond()
    if (v) return v
    if (performance.now() > deadline) return null
    await sleep(everyMs)
  }
}

/** The pid recorded in the lock file, or null. */
export function lockHolderPid(view: string): number | null {
  try {
    return (JSON.parse(fs.readFileSync(path.join(storeOf(view), '.lock'), 'utf8')) as { pid: number }).pid
  } catch {
    return null
  }
}

/**
 * A directory for big read-only fixtures (prefixes): on /dev/shm when there is one, so that
 * making tens of thousands of files does not depend on the disk; views stay in os.tmpdir().
 * The caller removes it.
 */
export function scratchDir(prefix: string): string {
  try {
    if (fs.statSync('/dev/shm').isDirectory()) return fs.mkdtempSync(path.join('/dev/shm', prefix))
  } catch {
    // no /dev/shm (or not writable): the disk will do
  }
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

/**
 * Many small prefixes fast (empty-ish files, no chmod): `pkgs` packages with
 * `filesPer` files in each of bin/, lib/, include/<pkg>/, share/man/man1/.
 */
export function makeWidePrefixes(root: string, pkgs: number, filesPer: number): string[] {
  const out: string[] = []
  for (let p = 0; p < pkgs; p++) {
    const name = `pkg${p}`
    const dir = path.join(root, name)
    const dirs: Array<[string, (f: number) => string]> = [
      ['bin', (f) => `${name}-tool${f}`],
      ['lib', (f) => `lib${name}-${f}.so`],
      [`include/${name}`, (f) => `h${f}.h`],
      ['share/man/man1', (f) => `${name}-tool${f}.1`],
    ]
    for (const [d, file] of dirs) {
      fs.mkdirSync(path.join(dir, d), { recursive: true })
      for (let f = 0; f < filesPer; f++) fs.writeFileSync(path.join(dir, d, file(f)), `${name} ${f}\n`)
    }
    out.push(dir)
  }
  return out
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Every path under a view's tree, with what it is: a directory, a symlink and its target, or a file's inode or bytes. */
export function treeOf(view: string, files: 'inode' | 'content'): Record<string, string> {
  const root = fs.realpathSync(view)
  const out: Record<string, string> = {}
  const visit = (rel: string) => {
    for (const d of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name
      if (r === '.viewctl') continue
      const abs = path.join(root, r)
      if (d.isDirectory()) {
        out[r] = 'dir'
        visit(r)
      } else if (d.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(abs)}`
      else {
        const st = fs.statSync(abs)
        out[r] = files === 'inode' ? `inode ${st.ino}` : `mode ${(st.mode & 0o777).toString(8)} ${fs.readFileSync(abs, 'utf8')}`
      }
    }
  }
  visit('')
  return out
}
