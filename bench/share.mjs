/**
 * The incremental case of bench/run.mjs (DESIGN §17): a per-file view of
 * every prefix, regenerated after one prefix is replaced by a new version of
 * it at a new path (one prefix of 100 is 1 % of the links, every one of them
 * with a new target), beside the tree the view shows; and what ten such
 * generations take on the filesystem, read with `df` and `du`.
 *
 * A generation's own use is what `du` counts for it after the tree it was
 * built beside: du counts an inode with several names once, under the first
 * tree given, so `du -s old new` shows for `new` only the inodes (and their
 * blocks) that `old` does not have.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { makePrefix, manifestText, spackDirName } from './common.mjs'

/**
 * The prefixes of the incremental view's manifest at each step: step s has
 * replaced s prefixes, one more than step s - 1, each by its next version
 * (made on first use, in `root`, before the timed run).
 */
export class Versions {
  constructor(root, dirs, files, long) {
    this.root = root
    this.dirs = dirs
    this.files = files
    this.long = long
    /** The version each prefix is at, after the last step made. */
    this.at = dirs.map(() => 1)
    this.current = [...dirs]
    this.steps = 0
  }

  /** One more prefix replaced (in turn, round and round); returns the packages of the new step. */
  next() {
    const i = this.steps % this.dirs.length
    this.steps++
    const version = ++this.at[i]
    const name = `p${String(i).padStart(String(this.dirs.length - 1).length, '0')}`
    const dir = this.long ? spackDirName(name, `${version}.0.0`) : `${name}-v${version}`
    if (!fs.existsSync(path.join(this.root, dir))) makePrefix(this.root, name, this.files, dir)
    this.current[i] = dir
    return this.current.map((d) => path.join(this.root, d))
  }
}

/** Write the incremental view's manifest for these packages. */
export function writeIncrementalManifest(file, view, packages, extra = []) {
  fs.writeFileSync(file, manifestText(view, packages, ['fold: false', ...extra]))
}

/** KiB and inodes `du` counts for each path, in the order given (a shared inode counts under the first). */
export function du(paths) {
  const run = (flag) => {
    const r = spawnSync('du', ['-s', flag, ...paths], { encoding: 'utf8', maxBuffer: 1 << 20 })
    if (r.status !== 0) throw new Error(`du -s ${flag} ${paths.join(' ')} exited ${r.status}: ${r.stderr}`)
    return r.stdout.trim().split('\n').map((l) => Number(l.split('\t')[0]))
  }
  const kib = run('-k')
  const inodes = run('--inodes')
  return paths.map((p, i) => ({ path: p, kib: kib[i], inodes: inodes[i] }))
}

/** The filesystem's used KiB and inodes, from `df` (other writers on it count too). */
export function df(dir) {
  const run = (flag) => {
    const r = spawnSync('df', ['-P', flag, dir], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`df ${flag} ${dir} exited ${r.status}: ${r.stderr}`)
    return Number(r.stdout.trim().split('\n').at(-1).split(/\s+/)[2])
  }
  return { kib: run('-k'), inodes: run('-i') }
}

/**
 * Ten incremental generations of a fresh per-file view after its cold one:
 * `df` of the filesystem and `du` of the store before and after, each
 * generation's time, what it shared, and its own use. `run(args)` is the
 * bench's timed viewctl with --json.
 */
export function tenGenerations({ dir, versions, run, settle, count = 10 }) {
  const view = path.join(dir, 'view')
  const store = path.join(dir, '._view')
  const file = path.join(dir, 'env.yaml')
  const extra = [`gc: { keep: ${count + 1} }`]
  writeIncrementalManifest(file, view, versions.current.map((d) => path.join(versions.root, d)), extra)
  settle()
  const cold = run(['regenerate', file])
  const trees = [path.join(store, cold.json.hash)]
  settle()
  const before = { df: df(dir), du: du([store])[0] }
  const generations = []
  for (let g = 1; g <= count; g++) {
    writeIncrementalManifest(file, view, versions.next(), extra)
    settle()
    const r = run(['regenerate', file])
    if (!r.json.built || r.json.shared === 0) throw new Error(`incremental generation ${g} did not build, or shared nothing: ${JSON.stringify(r.json)}`)
    const tree = path.join(store, r.json.hash)
    const own = du([trees.at(-1), tree])[1]
    trees.push(tree)
    generations.push({ generation: r.json.generation, ms: r.ms, shared: r.json.shared, entries: r.json.entries, kib: own.kib, inodes: own.inodes })
  }
  settle()
  const after = { df: df(dir), du: du([store])[0] }
  const coldTree = du([trees[0]])[0]
  return { cold: { ms: cold.ms, entries: cold.json.entries, kib: coldTree.kib, inodes: coldTree.inodes }, before, after, generations }
}
