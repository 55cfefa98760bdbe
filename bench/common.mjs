/**
 * What the benches share: running a command timed (wall clock, and peak RSS
 * and CPU from /usr/bin/time when present), the synthetic prefixes, the
 * manifests, and small tree helpers.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const BIN = path.join(ROOT, 'bin', 'viewctl')
export const TIME = '/usr/bin/time'

export const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
export const haveTime = fs.existsSync(TIME)
/** Where /usr/bin/time writes; removed with the work directory's cleanup. */
export const RSS_FILE = path.join(os.tmpdir(), `viewctl-bench-rss-${process.pid}`)
// bin/viewctl runs as a program, the way users run it (its shell line finds `node` on PATH): this node first
export const childEnv = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` }
delete childEnv.VIEWCTL_TEST_FAULTS

/**
 * What a child may write to stdout or stderr before it is stopped: viewctl's --json answer is a few
 * KiB, and the other tools print nothing when they work. A tool that fails on every file (cp -rs on a
 * filesystem out of inodes) prints a line per file; that is cut short instead of buffered.
 */
export const OUTPUT_CAP = 1 << 20

/** spawnSync with stdout and stderr capped at OUTPUT_CAP; a child that writes more is stopped, and said so. */
export function spawnCapped(file, argv, opts = {}) {
  const r = spawnSync(file, argv, { env: childEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts, maxBuffer: OUTPUT_CAP })
  if (r.error?.code === 'ENOBUFS') {
    throw new Error(`${[file, ...argv].join(' ').slice(0, 300)} wrote more than ${OUTPUT_CAP >> 20} MiB and was stopped; it began:\n${(r.stderr || r.stdout || '').slice(0, 2000)}`)
  }
  if (r.error) throw r.error
  return r
}

/** Run one command; returns { ms, rssKiB, stdout }. Throws on a non-zero exit. */
export function timed(cmd, args, { cwd, env } = {}) {
  let file = cmd
  let argv = args
  let rssFile = null
  if (haveTime) {
    rssFile = RSS_FILE
    file = TIME
    argv = ['-f', '%M %U %S', '-o', rssFile, cmd, ...args]
  }
  const t0 = process.hrtime.bigint()
  const r = spawnCapped(file, argv, { cwd, env: env ? { ...childEnv, ...env } : childEnv })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  let rssKiB = null
  let cpuMs = null
  if (rssFile) {
    try {
      const lines = fs.readFileSync(rssFile, 'utf8').trim().split('\n')
      const [maxrss, user, sys] = lines[lines.length - 1].split(' ').map(Number)
      rssKiB = Number.isFinite(maxrss) ? maxrss : null
      cpuMs = Number.isFinite(user) && Number.isFinite(sys) ? (user + sys) * 1000 : null
    } catch {
      rssKiB = null
    }
  }
  if (r.status !== 0) {
    const err = new Error(`${[cmd, ...args].join(' ').slice(0, 300)} exited ${r.status}\n${r.stderr.slice(0, 2000)}`)
    err.stdout = r.stdout
    throw err
  }
  return { ms, rssKiB, cpuMs, stdout: r.stdout }
}

export function viewctl(args, opts) {
  return timed(BIN, args, opts)
}

export function viewctlJson(args, opts) {
  const r = viewctl([...args, '--json'], opts)
  return { ...r, json: JSON.parse(r.stdout) }
}

export function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true })
}

export function median(xs) {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

export function countTree(dir) {
  let links = 0
  let files = 0
  const stack = [dir]
  while (stack.length) {
    const d = stack.pop()
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) stack.push(path.join(d, e.name))
      else if (e.isSymbolicLink()) links++
      else files++
    }
  }
  return { links, files }
}

/** The type of the filesystem holding `dir`, from the longest matching mount point in /proc/mounts. */
export function fsType(dir) {
  try {
    let best = { point: '', type: 'unknown' }
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, point, type] = line.split(' ')
      if (!point || !type) continue
      const inside = dir === point || dir.startsWith(point.endsWith('/') ? point : `${point}/`)
      if (inside && point.length >= best.point.length) best = { point, type }
    }
    return best.type
  } catch {
    const r = spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' })
    return r.status === 0 ? r.stdout.trim() : 'unknown'
  }
}

// ---------------------------------------------------------------------------
// synthetic prefixes

export function layoutCounts(files) {
  const bin = Math.round(files * 0.2)
  const lib = Math.round(files * 0.3)
  const inc = Math.round(files * 0.3)
  return { bin, lib, inc, man: Math.max(0, files - bin - lib - inc) }
}

export function makePrefixes(root, n, files, { long = false } = {}) {
  const width = String(n - 1).length
  const names = []
  for (let p = 0; p < n; p++) names.push(makePrefix(root, `p${String(p).padStart(width, '0')}`, files, long ? spackDirName(`p${String(p).padStart(width, '0')}`, '1.0.0') : undefined))
  return names
}

/** One synthetic prefix `name` (its files are named after it) in `root/dir`; returns `dir`. */
export function makePrefix(root, name, files, dir = name) {
  const c = layoutCounts(files)
  const top = path.join(root, dir)
  const dirs = { bin: `${top}/bin`, lib: `${top}/lib`, inc: `${top}/include/${name}`, man: `${top}/share/man/man1` }
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true })
  // Empty files: no tool here reads them, and a million of them then cost inodes but no blocks.
  for (let i = 0; i < c.bin; i++) fs.writeFileSync(`${dirs.bin}/${name}-tool${i}`, '', { mode: 0o755 })
  for (let i = 0; i < c.lib; i++) fs.writeFileSync(`${dirs.lib}/lib${name}-${i}.so`, '')
  for (let i = 0; i < c.inc; i++) fs.writeFileSync(`${dirs.inc}/h${i}.h`, '')
  for (let i = 0; i < c.man; i++) fs.writeFileSync(`${dirs.man}/${name}-tool${i}.1`, '')
  return dir
}

/**
 * Where `--long-targets` puts the prefixes, below the work directory: the
 * layout of a Spack install tree, `opt/spack/<platform>-<os>-<target>/<compiler>/`,
 * each prefix in it named `<name>-<version>-<32-character hash>` as Spack
 * names them. A link's target is then 120-odd bytes, as on a real system,
 * which ext4 (and Lustre's ldiskfs) keep in a block of their own.
 */
export const SPACK_ROOT = 'opt/spack/linux-debian12-x86_64_v3/gcc-12.2.0'

/** `name-version-hash`, the hash 32 characters of Spack's base32 alphabet, fixed by name and version. */
export function spackDirName(name, version) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  const digest = createHash('sha256').update(`${name}@${version}`).digest()
  let hash = ''
  for (let i = 0; i < 32; i++) hash += alphabet[digest[i] & 31]
  return `${name}-${version}-${hash}`
}

export function manifestText(view, prefixes, extra) {
  return [`view: ${JSON.stringify(view)}`, ...extra, 'packages:', ...prefixes.map((p) => `  - ${JSON.stringify(p)}`), ''].join('\n')
}
