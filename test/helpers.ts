/**
 * Shared test helpers: real temporary directories, real prefixes, and the
 * real `bin/viewctl` run as a child process (built by `npm test`'s pretest).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync, spawn, type SpawnSyncReturns, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, onTestFinished } from 'vitest'

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

/** A world-readable copy of what running viewctl needs; see publicInstall. */
export interface PublicInstall {
  /** The copy's root: bin/, dist/, schemas/, package.json, node_modules/. */
  root: string
  /** Its bin/viewctl. */
  bin: string
  /** Its dist/ (the library build and dist/bundle/). */
  dist: string
}

/**
 * For tests that run viewctl as another user (nobody, or a user made with
 * useradd): a copy of bin/, dist/, schemas/, package.json and the packages
 * npm installs for users (package-lock.json entries not marked dev: the lock
 * addon of fs-native-extensions and what the bundle loads at run time) in a
 * temporary directory every user may read. The checkout itself may sit
 * inside a directory only its owner can enter (mkdtemp makes 0700
 * directories, and so do many home directories), and then another user
 * cannot even start bin/viewctl from it.
 *
 * Call it at the top of a describe block or test file: it returns a getter
 * that makes the copy on first use (so a file whose tests are all skipped
 * copies nothing), and the copy is removed after the block's tests.
 */
export function publicInstall(): () => PublicInstall {
  let made: PublicInstall | undefined
  afterAll(() => {
    if (made) fs.rmSync(made.root, { recursive: true, force: true })
  })
  return () => (made ??= makePublicInstall())
}

function makePublicInstall(): PublicInstall {
  const base = fs.realpathSync(os.tmpdir())
  const closed = firstClosedAncestor(base)
  if (closed !== null) throw new Error(`other users cannot enter ${closed} (mode ${(fs.statSync(closed).mode & 0o777).toString(8)}), which holds the temporary directory ${base}: set TMPDIR to a directory everyone may enter, such as /tmp`)
  const root = fs.mkdtempSync(path.join(base, 'viewctl-public-'))
  try {
    for (const rel of ['bin', 'dist', 'schemas', 'package.json']) fs.cpSync(path.join(ROOT, rel), path.join(root, rel), { recursive: true })
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
    // top-level packages only: a nested node_modules/ comes with the package that holds it
    const runtime = Object.entries(lock.packages).filter(([rel, pkg]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(rel) && !pkg.dev).map(([rel]) => rel)
    if (!runtime.includes('node_modules/fs-native-extensions')) throw new Error('package-lock.json lists no fs-native-extensions among the runtime packages')
    for (const rel of runtime) fs.cpSync(path.join(ROOT, rel), path.join(root, rel), { recursive: true })
    // whatever the umask of the checkout: everyone reads every file and enters every directory
    const chmod = spawnSync('chmod', ['-R', 'a+rX', root], { encoding: 'utf8' })
    if (chmod.status !== 0) throw new Error(`chmod -R a+rX ${root}: ${chmod.stderr}`)
  } catch (err) {
    fs.rmSync(root, { recursive: true, force: true })
    throw err
  }
  return { root, bin: path.join(root, 'bin', 'viewctl'), dist: path.join(root, 'dist') }
}

/** The nearest directory from / down to `dir` that others may not enter (no o+x), or null. */
function firstClosedAncestor(dir: string): string | null {
  const chain: string[] = []
  for (let d = dir; ; d = path.dirname(d)) {
    chain.unshift(d)
    if (path.dirname(d) === d) break
  }
  return chain.find((d) => (fs.statSync(d).mode & 0o001) === 0) ?? null
}
