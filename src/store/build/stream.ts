/**
 * A streamed build: linking starts while the prefixes are still walked.
 *
 * The walk settles a view directory at a time (plan/merge.ts) and tells each
 * settled entry to `onRelease`. The main thread makes the entry's parent
 * directories in staging, puts its link in the current chunk, and posts each
 * full chunk to the link worker(s), which link while the main thread walks on
 * (stream-queue.ts). When the walk is over and the plan is hashed, the main
 * thread checks the finished plan, makes whatever directory nothing was
 * linked into and writes the generation's files while the workers link on
 * (build.ts, writeGenerationFiles), then joins in from the other end of the
 * queue; meta.json and the rename come last (sealGeneration).
 *
 * What this changes, and why it is safe:
 * - Staging is made before the hash is known: `.staging-walk-<pid>-<random>`,
 *   under the writer lock, which the caller takes before the walk. Like any
 *   `.staging-*`, a dead writer's is cleared by the next writer.
 * - A conflict under `conflicts: error`, a bad prefix or a signal found after
 *   linking began removes staging before the error is reported: the view and
 *   the store are as they were.
 * - Directories are made only once something is linked into them, or at the
 *   end from the finished plan: a directory the walk later drops (everything
 *   below it filtered away) is never made. Only files, symlinks and folded
 *   directories are linked early, and the walk never takes those back.
 * - Every name is checked as it is written (one plain component, inside a
 *   directory this build made), and the finished plan is checked once more,
 *   as in a plain build, before anything becomes a generation.
 * - When the view already shows a plan (the `baseline`), nothing is written
 *   while the walk keeps finding that same plan: a regenerate whose scan cache
 *   could not vouch for the prefixes, but which finds nothing new, builds nothing.
 * - Entries the base tree has unchanged (share.ts) are flagged as they are
 *   placed, entry by entry in the order the walk tells them, and the thread
 *   that links a chunk hard-links those from the base (link-entry.ts).
 */
import path from 'node:path'
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import * as sfs from '../../fs.js'
import { translateOsError } from '../../errors.js'
import type { Manifest } from '../../manifest/types.js'
import { Kind, NO_SOURCE } from '../../plan/types.js'
import type { ParsedPlan } from '../../plan/hash.js'
import type { PlanResult } from '../../plan/index.js'
import type { ReleasedEntries } from '../../plan/merge.js'
import { STAGING_MODE, assertContained, metaFor, sealGeneration, throwIfAborted, unsafePath, writeGenerationFiles, type BuildProgress } from './build.js'
import { realGenerationDir, type Layout } from '../layout.js'
import { CHUNK, type LinkHelpers, type LinkWorkerMessage, type WorkerReport } from './linker.js'
import { ACTIVE, BY_MAIN, CONTROL_SLOTS, DONE, FREE, linkStreamChunk, PUBLISHED, SEALED, SEQ, STOP, type StreamChunk } from './stream-queue.js'
import type { LinkPlace, SharedFrom } from './link-entry.js'
import { reviveError, type WorkerError } from '../workers.js'
import { stagingSpelling } from './workdir.js'
import { BaseMatcher, baseSpelling, newShareState, shareOutcome, type ShareBase, type ShareOutcome } from './share.js'
import { NOTHING_SHARED } from './build.js'

/** Claim slots: chunks past this many stay with the main thread (at 1,024 links a chunk, 64 million links). */
const CLAIM_SLOTS = 1 << 16
/** Links between two progress reports. */
const PROGRESS_EVERY = 4 * CHUNK

/** A chunk of links: their paths, and kinds and sources in arrays of CHUNK slots (made once, not grown link by link), paths.length of them used. */
interface Chunk {
  paths: string[]
  kinds: Uint8Array
  sources: Uint32Array
  /** 1 for each entry linked from the base tree; null while none is. */
  shared: Uint8Array | null
  /** Whether no path carries escaped bytes (checked once, on the paths joined to be posted). */
  plain?: boolean
}

function newChunk(): Chunk {
  return { paths: [], kinds: new Uint8Array(CHUNK), sources: new Uint32Array(CHUNK), shared: null }
}

/** The walk's output as onRelease sees it (plan/merge.ts), or a finished plan. */
type WalkOut = ReleasedEntries

export interface StreamingBuildOptions {
  layout: Layout
  manifest: Manifest
  /** The plan's prefix table (plan/index.ts, prefixTable). */
  prefixes: string[]
  /** Started link workers; the caller releases them. */
  helpers: LinkHelpers
  /** The plan the view shows now, if any. */
  baseline: ParsedPlan | null
  /** The tree to share unchanged entries from (share.ts, chooseBase), chosen under the writer lock; null to share nothing. */
  base?: ShareBase | null
  /** Copy views: the array the walk fills with each entry's source identity (plan/index.ts, PlanInputs.identities). */
  identities?: string[] | null
  /** Told of links made: while walking with `total` null (not known yet), then with the plan's size. */
  onProgress?: BuildProgress
  /** The store is the process's working directory until the build is finished or abandoned: links are named from it (workdir.ts). */
  inStore?: boolean
}

export interface FinishOptions {
  signal?: AbortSignal
}

export class StreamingBuild {
  readonly staging: string
  private made = false
  /** The walk's output as last told (its paths array is the plan's, unless the plan was recalled). */
  private walked: WalkOut | null = null
  /** Staging became the generation (finish). */
  private sealed = false
  private readonly created = new Set<string>([''])
  private lastParent = ''
  private readonly chunks: Chunk[] = []
  private current: Chunk = newChunk()
  /** Entries the walk has told so far. */
  private told = 0
  /** True while every entry told matches the baseline: nothing is placed yet. */
  private holding: boolean
  /** No more chunks go out: a conflict that stops the run, or a worker stopped. */
  private stopped = false
  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4))
  private readonly claims = new Int32Array(new SharedArrayBuffer(CLAIM_SLOTS * 4))
  private readonly ports: MessagePort[] = []
  private readonly reports: Array<Promise<WorkerReport & { died?: boolean }>> = []
  private readonly setup: LinkPlace & { share: SharedFrom }
  private readonly opts: StreamingBuildOptions
  /** Links done when progress was last told. */
  private reported = 0
  private walking = true
  private chunksWhileWalking = 0
  private readonly matcher: BaseMatcher | null
  private readonly shareState: Int32Array | null

  constructor(opts: StreamingBuildOptions) {
    this.opts = opts
    const { layout, manifest, prefixes } = opts
    this.staging = path.join(layout.store, `.staging-walk-${process.pid}-${Math.random().toString(16).slice(2, 10)}`)
    this.holding = opts.baseline !== null
    const relative = manifest.link === 'symlink' && manifest.relative
    // staging sits beside the final directory, so a link relative to one is relative to the other
    const realFinalDir = relative ? realGenerationDir(layout, 'staging') : ''
    const base = opts.base ?? null
    this.matcher = base === null ? null : new BaseMatcher(base, prefixes)
    this.shareState = base === null ? null : newShareState()
    this.setup = {
      staging: this.staging,
      at: stagingSpelling(this.staging, opts.inStore ?? false),
      mode: manifest.link,
      relative,
      prefixes,
      prefixFromRoot: relative ? prefixes.map((p) => path.relative(realFinalDir, p)) : [],
      share: base === null ? null : { from: baseSpelling(base, opts.inStore ?? false), state: this.shareState! },
    }
    for (const helper of opts.helpers.helpers) {
      const { port1, port2 } = new MessageChannel()
      helper.worker.ref() // it has work now: the process waits for its report
      helper.worker.postMessage({ kind: 'stream', setup: { ...this.setup, port: port2, control: this.control, claims: this.claims } } satisfies LinkWorkerMessage, [port2])
      this.ports.push(port1)
      this.reports.push(helper.ended)
    }
  }

  /** The walk's Release callback (plan/merge.ts): place what it settled. Runs inside the walk; a throw ends the walk. */
  readonly onRelease = (out: WalkOut, from: number, to: number, blocked: boolean): void => {
    this.walked = out
    if (this.stopped) return
    if (blocked || Atomics.load(this.control, STOP) !== 0) {
      this.stopped = true // the run will fail: link nothing more
      return
    }
    if (this.holding) {
      if (this.matchesBaseline(out, from, to)) {
        this.told = to
        return
      }
      this.holding = false
      from = 0 // nothing was placed while holding
    }
    for (let i = from; i < to; i++) this.place(out, i)
    this.told = to
  }

  /**
   * Link what is left, with the workers, check the finished plan, make the
   * directories nothing was linked into, and seal the generation.
   * On any failure staging is removed and the error thrown.
   */
  async finish(plan: PlanResult, opts: FinishOptions = {}): Promise<ShareOutcome> {
    this.walking = false
    try {
      const total = plan.paths.length
      // entries the walk did not tell (a plan recalled from the scan cache), or held back while they matched the baseline
      const from = this.holding ? 0 : this.told
      this.holding = false
      for (let i = from; i < total; i++) this.place(plan, i)
      if (this.current.paths.length > 0) this.publish()
      this.ensureStaging()
      this.seal()
      // while the workers link: the containment check, the empty directories and the generation's files,
      // so that only meta.json and the rename are left once the last link is made
      this.checkAndMakeDirs(plan)
      writeGenerationFiles(this.staging, plan, this.opts.manifest)
      await this.linkRest(opts, total)
      throwIfAborted(opts.signal)
      sealGeneration(this.opts.layout, this.staging, plan, metaFor(plan, this.opts.manifest))
      this.sealed = true
      this.opts.onProgress?.(total, total)
      return this.opts.base && this.shareState ? shareOutcome(this.opts.base, this.shareState) : NOTHING_SHARED
    } catch (err) {
      await this.abandon()
      throw translateOsError(err, `building generation ${plan.hash} in ${this.opts.layout.store}`)
    }
  }

  /** Whether chunks of links went out to the link workers before the walk was over (false for a plan that matched the baseline throughout). */
  get linkedWhileWalking(): boolean {
    return this.chunksWhileWalking > 0
  }

  /** Stop the workers and remove staging (a refused plan, an interruption, a tree that exists already). Nothing, once the generation is sealed. */
  async abandon(): Promise<void> {
    if (this.sealed) return
    this.walking = false
    this.stopped = true
    Atomics.store(this.control, STOP, 1)
    this.bump()
    await this.quiesce()
    this.closePorts()
    if (!this.made) return
    try {
      sfs.rmTree(this.staging)
    } catch {
      // best effort: the next writer clears leftovers
    }
  }

  /**
   * After STOP: wait until no worker is inside a chunk (ACTIVE at 0), so that
   * nothing is written into staging any more. Not for a worker's report: a
   * worker still booting, or one that will never take a chunk, is not waited
   * for (the caller terminates it). A worker that dies inside a chunk holds
   * ACTIVE up, but its report (`died`) then ends the wait.
   */
  private async quiesce(): Promise<void> {
    while (Atomics.load(this.control, ACTIVE) !== 0) {
      const settled = await Promise.race([Promise.all(this.reports).then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 5))])
      if (settled) return
    }
  }

  private matchesBaseline(out: WalkOut, from: number, to: number): boolean {
    const base = this.opts.baseline!
    const { prefixes } = this.opts
    for (let i = from; i < to; i++) {
      if (i >= base.paths.length || out.paths[i] !== base.paths[i] || out.kinds[i] !== base.kinds[i]) return false
      const a = out.sources[i]!
      const b = base.sources[i]!
      if ((a === NO_SOURCE ? null : prefixes[a]) !== (b === NO_SOURCE ? null : base.prefixes[b])) return false
    }
    return true
  }

  private ensureStaging(): void {
    if (this.made) return
    sfs.mkdir(this.staging, false, STAGING_MODE)
    this.made = true
  }

  /** Put entry i in the current chunk, after making its parent directories. Directory entries wait (see above). */
  private place(out: WalkOut, i: number): void {
    const kind = out.kinds[i]!
    if (kind === Kind.Dir) return
    this.ensureStaging()
    const rel = out.paths[i]!
    let parent: string
    const name = out.names?.[i]
    if (name !== undefined) {
      // told by the walk, with its name and its directory: the path itself is not read (reading it would flatten it)
      if (!isPlainName(name)) throw unsafePath(rel)
      parent = out.dirs![out.parentIds![i]!]!
    } else {
      // a plan read back from text
      const slash = rel.lastIndexOf('/')
      assertPlainName(rel, rel.slice(slash + 1))
      parent = slash === -1 ? '' : rel.slice(0, slash)
    }
    // most entries share the previous one's parent (the same string, so one comparison)
    if (parent !== this.lastParent) {
      if (!this.created.has(parent)) this.makeParents(rel, parent)
      this.lastParent = parent
    }
    const cur = this.current
    const n = cur.paths.length
    const source = out.sources[i]!
    cur.kinds[n] = kind
    cur.sources[n] = source
    cur.paths.push(rel)
    if (this.matcher?.matches(rel, kind, source, this.opts.identities?.[i])) (cur.shared ??= new Uint8Array(CHUNK))[n] = 1
    if (n + 1 >= CHUNK) this.publish()
  }

  private makeParents(rel: string, parent: string): void {
    let at = ''
    for (const name of parent.split('/')) {
      assertPlainName(rel, name)
      at = at === '' ? name : `${at}/${name}`
      if (this.created.has(at)) continue
      sfs.mkdir(`${this.staging}/${at}`) // fails on anything already there, a symlink included: nothing is written through one
      this.created.add(at)
    }
  }

  private publish(): void {
    const chunk = this.current
    this.current = newChunk()
    const id = this.chunks.length
    this.chunks.push(chunk)
    if (this.stopped || id >= CLAIM_SLOTS || this.ports.length === 0) return
    if (this.walking) this.chunksWhileWalking++
    const rels = chunk.paths.join('\0')
    chunk.plain = !sfs.hasEscapes(rels)
    const n = chunk.paths.length
    const message: StreamChunk = { id, rels, kinds: chunk.kinds.slice(0, n), sources: chunk.sources.slice(0, n), shared: chunk.shared?.slice(0, n) ?? null }
    for (const port of this.ports) port.postMessage(message)
    Atomics.add(this.control, PUBLISHED, 1)
    this.bump()
    const done = Atomics.load(this.control, DONE)
    if (this.opts.onProgress && done - this.reported >= PROGRESS_EVERY) {
      this.reported = done
      this.opts.onProgress(done, null)
    }
  }

  private seal(): void {
    Atomics.store(this.control, SEALED, 1)
    this.bump()
  }

  private bump(): void {
    Atomics.add(this.control, SEQ, 1)
    Atomics.notify(this.control, SEQ)
  }

  /** The main thread's share: chunks from the last one down, until it meets the workers' (or all, with none). */
  private async linkRest(opts: FinishOptions, total: number): Promise<void> {
    const { onProgress } = this.opts
    const links = this.chunks.reduce((n, c) => n + c.paths.length, 0)
    const made = total - links
    let mine = 0
    const tell = () => {
      const done = mine + Atomics.load(this.control, DONE)
      this.reported = done
      onProgress?.(made + done, total)
    }
    tell()
    const linkChunk = async (c: number) => {
      const chunk = this.chunks[c]!
      linkStreamChunk(this.setup, chunk.paths, chunk.kinds, chunk.sources, chunk.plain ?? !sfs.hasEscapes(chunk.paths.join('\0')), chunk.shared)
      mine += chunk.paths.length
      throwIfAborted(opts.signal)
      if (mine + Atomics.load(this.control, DONE) - this.reported >= PROGRESS_EVERY) tell()
      await new Promise<void>((resolve) => setImmediate(resolve)) // let signals and worker reports in
    }
    let c = this.chunks.length - 1
    for (; c >= 0; c--) {
      if (Atomics.load(this.control, STOP) !== 0) break
      if (c < CLAIM_SLOTS && Atomics.compareExchange(this.claims, c, FREE, BY_MAIN) !== FREE) break
      await linkChunk(c)
    }
    if (c < 0) {
      // every chunk was the main thread's (a small plan, or a worker still booting): no worker has anything to finish
      this.closePorts()
      return
    }
    let failed: WorkerError | null = null
    for (const report of this.reports) {
      const r = await report
      if (!r.ok && !r.died && failed === null) failed = r.error
    }
    this.closePorts()
    if (failed !== null) throw reviveError(failed)
    // a worker that died without a word (out of memory, killed) leaves its chunks free: take them
    for (let c = 0; c < Math.min(this.chunks.length, CLAIM_SLOTS); c++) {
      if (Atomics.compareExchange(this.claims, c, FREE, BY_MAIN) === FREE) await linkChunk(c)
    }
    if (mine + Atomics.load(this.control, DONE) !== links) {
      throw new Error(`a link worker stopped in the middle of its work: ${mine + Atomics.load(this.control, DONE)} of ${links} links were made`)
    }
  }

  /** The finished plan, checked entry by entry as a plain build does; then the directories nothing was linked into. */
  private checkAndMakeDirs(plan: PlanResult): void {
    const dirs = new Set<string>([''])
    const last = { parent: '' }
    const { paths, kinds } = plan
    // the plan this walk made: each entry's directory and name are at hand (merge.ts), the paths need not be taken apart
    const walked = this.walked?.paths === paths ? this.walked : null
    const names = walked?.names
    const parentIds = walked?.parentIds
    const walkedDirs = walked?.dirs
    for (let i = 0; i < paths.length; i++) {
      const rel = paths[i]!
      if (names !== undefined && parentIds !== undefined && walkedDirs !== undefined) {
        // the same rule as assertContained: one plain name, directly inside a directory entry met before
        const parent = walkedDirs[parentIds[i]!]!
        if (parent !== last.parent) {
          if (!dirs.has(parent)) throw unsafePath(rel)
          last.parent = parent
        }
        if (!isPlainName(names[i]!)) throw unsafePath(rel)
      } else {
        assertContained(rel, dirs, last)
      }
      if (kinds[i] !== Kind.Dir) continue
      dirs.add(rel)
      if (this.created.has(rel)) continue
      sfs.mkdir(`${this.staging}/${rel}`)
      this.created.add(rel)
    }
    for (const d of this.created) {
      if (!dirs.has(d)) throw unsafePath(d)
    }
  }

  private closePorts(): void {
    for (const port of this.ports) port.close()
    this.ports.length = 0
  }
}

/** One plain path component: not empty, `.` or `..`, and without a slash. */
function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/')
}

/** `name`, the last component of `rel`, is plain, and `rel` is not absolute. */
function assertPlainName(rel: string, name: string): void {
  if (!isPlainName(name) || rel.charCodeAt(0) === 47) throw unsafePath(rel)
}
