/**
 * Shared test helpers: real temporary directories, real prefixes, and the
 * real `bin/viewctl` run as a child process (built by `npm test`'s pretest).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync, spawn, type SpawnSyncReturns, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { onTestFinished } from 'vitest'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const BIN = path.join(ROOT, 'bin', 'viewctl')

/** A fresh temp directory, removed when the test finishes. */
export function tempDir(prefix = 'viewctl-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Write files: { 'bin/foo': 'content', 'lib/x.so': { content, mode }, 'lib/y': { symlink: 'x.so' } }. */
export type FileSpec = string | { content?: string; mode?: number; symlink?: string; dir?: true }

export function writeTree(root: string, files: Record<string, FileSpec>): string {
  fs.mkdirSync(root, { recursive: true })
  for (const [rel, spec] of Object.entries(files)) {
    const abs = path.join(root, rel)
    fs.mkdirSync(path.dirname(abs), { recursive: true })
    if (typeof spec === 'string') fs.writeFileSync(abs, spec)
    else if (spec.dir) fs.mkdirSync(abs, { recursive: true })
    else if (spec.symlink !== undefined) fs.symlinkSync(spec.symlink, abs)
    else {
      fs.writeFileSync(abs, spec.content ?? '')
      if (spec.mode !== undefined) fs.chmodSync(abs, spec.mode)
    }
  }
  return root
}

/** Write a manifest (YAML text) and return its path. */
export function writeManifest(dir: string, yaml: string, name = 'env.yaml'): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, yaml)
  return file
}

export interface RunResult {
  code: number
  stdout: string
  stderr: string
  json: any
}

/** Run the real CLI synchronously. */
export function viewctl(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): RunResult {
  const r: SpawnSyncReturns<string> = spawnSync(process.execPath, [BIN, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    input: opts.input,
    timeout: 120_000,
  })
  return { code: r.status ?? (r.signal ? 128 : -1), stdout: r.stdout, stderr: r.stderr, json: jsonOutput(args, r.stdout) }
}

/** With --json, stdout is one JSON object: parsed, or undefined when it is not (a test then fails on it). */
export function jsonOutput(args: string[], stdout: string): any {
  if (!args.includes('--json')) return undefined
  try {
    return JSON.parse(stdout)
  } catch {
    return undefined
  }
}

/** Start the real CLI without waiting. */
export function viewctlAsync(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Where the view symlink points (raw), or null. */
export function linkTarget(view: string): string | null {
  try {
    return fs.readlinkSync(view)
  } catch {
    return null
  }
}

/** A snapshot of what a view shows: its link target and the store's generation names. */
export function snapshot(view: string): { target: string | null; store: string[] } {
  const store = path.join(path.dirname(view), `._${path.basename(view)}`)
  let names: string[] = []
  try {
    names = fs.readdirSync(store).filter((n) => /^[0-9a-f]{16,64}$/.test(n)).sort()
  } catch {
    names = []
  }
  return { target: linkTarget(view), store: names }
}

/** Synthetic prefixes: n packages, each with a few files in bin/, lib/, include/<pkg>/, share/man/man1/. */
export function makePrefixes(root: string, n: number, filesPer = 4): string[] {
  const out: string[] = []
  for (let p = 0; p < n; p++) {
    const name = `pkg${p}`
    const dir = path.join(root, name)
    const files: Record<string, FileSpec> = {}
    for (let f = 0; f < filesPer; f++) {
      files[`bin/${name}-tool${f}`] = { content: `#!/bin/sh\necho ${name} ${f}\n`, mode: 0o755 }
      files[`lib/lib${name}-${f}.so`] = `lib ${name} ${f}`
      files[`include/${name}/h${f}.h`] = `/* ${name} ${f} */`
      files[`share/man/man1/${name}-tool${f}.1`] = `.TH ${name}`
    }
    writeTree(dir, files)
    out.push(dir)
  }
  return out
}
