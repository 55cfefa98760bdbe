/**
 * gc: delete generation trees nobody needs (DESIGN §8).
 *
 * A tree goes only when every generation number that uses it may go, and a
 * generation may go only when all of these hold:
 *
 *   1. it is not current (and does not share the current tree);
 *   2. it is not one of the `keep` spares: walking the other generations
 *      from the newest number down, counting each tree once and skipping
 *      pinned ones, the first `keep` trees are spares (each spare is one more
 *      `rollback` step);
 *   3. it stopped being current longer than `ttl` ago (read from the
 *      journal: the switch away from its tree, or its own record when it
 *      never became current);
 *   4. it is not pinned (pins.json);
 *   5. no live process on this host uses it (/proc scan, store/guard/readers.ts);
 *   6. no `viewctl exec` holds its lease on any host (store/guard/lease.ts), nor
 *      has a fresh lease file in `leases/<hash>/` (store/guard/lease-file.ts:
 *      the leases of jobs on clients whose fcntl locks stay local);
 *   7. on a shared filesystem, it was not current within the last
 *      TWO_MINUTES_S, by the files' own (server) timestamps: the fences of
 *      recent switches and the view symlink itself. Another client may
 *      still resolve the view from its caches to a tree that was current a
 *      moment ago.
 *
 * Under the lock, the view is read fresh (ops/writer.ts). The symlink and
 * the journal must agree: the journal's last switch is the tree the view
 * shows, or one record ahead of it (a writer died between recording and
 * publishing, or this client still sees the previous target), in which case
 * both trees stay. Any other disagreement stops gc with STATE_MISMATCH
 * before anything is deleted.
 *
 * Checks 1–4 are cheap and are made first without the writer lock; when they
 * leave nothing to delete, gc returns without locking (auto-gc after every
 * regenerate then costs a journal read). Otherwise everything is decided
 * again under the lock, the survivors of 1–4 are scanned for in /proc once,
 * and each remaining tree is try-locked exclusively, renamed to `.trash-*`
 * while that lease lock is held (so no exec can start on it), and removed:
 * a large one, or any on a remote filesystem, by `rm -rf` child processes, one per top-level directory,
 * and then the main thread over what is left (store/remove/rm-processes.ts), or,
 * where that cannot be, by the main thread and a worker thread together
 * (store/remove/remover.ts), the worker started before the lock is taken so that it
 * has booted by the time the removal begins. A crash mid-removal leaves
 * trash, which the next writer clears.
 *
 * Hash directories no journal record names are left alone: viewctl did not
 * record them, so it does not claim them.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as sfs from '../fs.js'
import { ViewError, translateOsError } from '../errors.js'
import { formatDuration, parseDuration } from '../manifest/duration.js'
import { viewPathOf } from '../manifest/target.js'
import { DEFAULT_GC } from '../manifest/types.js'
import { readMeta } from '../store/journal/meta.js'
import { switches } from '../store/journal/history.js'
import { generationDir, layoutFor, trashDir, type Layout } from '../store/layout.js'
import { tryExclusiveLease } from '../store/guard/lease.js'
import { describeUse, findProcessUsers, type ProcessScan } from '../store/guard/readers.js'
import type { TreeRemover } from '../store/remove/remover.js'
import { startRemover } from '../store/remove/rm-processes.js'
import { hashesOnDisk, listGenerations, readViewState, requireManaged, type GenerationInfo, type ViewState } from '../store/journal/state.js'
import { keepModuleTreeCurrent } from '../modules/hook.js'
import { findGeneration } from './rollback.js'
import { enterWriter, withWriter, type WriterGuard, type WriterOptions } from './writer.js'
import { pruneFences, recentSwitches, serverNow } from '../store/guard/fence.js'
import { filesystemOf } from '../store/guard/filesystem.js'
import { describeHolder, removeLeaseDir, scanLeaseFiles } from '../store/guard/lease-file.js'

/** Below this, other NFS clients may still resolve an old target from their attribute cache. */
export const MIN_TTL_MS = 5 * 60 * 1000

/** On a shared filesystem, a tree current this recently (server time) is never deleted, whatever the ttl. */
export const TWO_MINUTES_S = 120

export interface GcOptions extends WriterOptions {
  /** Spare generations to keep besides the current one (default: recorded, else 2). */
  keep?: number
  /** Minimum time since a generation stopped being current (default: recorded, else 7d). */
  ttl?: string
  /** Decide and report; delete nothing, take no writer lock. */
  dryRun?: boolean
  /** Accept a ttl under 5 minutes. */
  force?: boolean
  /**
   * Delete this one generation (a number, or a hash prefix) now, whatever
   * keep and ttl say: refused for the current one, a pinned one and one in
   * use; a tree another generation still has stays.
   */
  generation?: string
}

export interface RemovedTree {
  /** The generation numbers that used this tree. */
  generations: number[]
  hash: string
  /** Disk space the tree takes (dry run only: measuring it costs a walk). */
  bytes?: number
}

export interface KeptGeneration {
  generation: number
  hash: string
  reasons: string[]
}

export interface UntrackedTree {
  hash: string
  note: string
}

export interface GcResult {
  view: string
  dryRun: boolean
  policy: { keep: number; ttl: string; from: 'options' | 'recorded' | 'default' }
  removed: RemovedTree[]
  /** Every generation whose tree is on disk and stays, with why. */
  kept: KeptGeneration[]
  /** Hash directories in the store that no history record names: left alone. */
  untracked: UntrackedTree[]
  /** The /proc scan, when one was needed. */
  scan: { scanned: number; unreadable: number; available: boolean; elapsedMs: number } | null
  warnings: string[]
}

interface Policy {
  keep: number
  ttl: string
  ttlMs: number
  from: GcResult['policy']['from']
}

interface Decision {
  rows: GenerationInfo[]
  reasons: Map<number, string[]>
  /** Trees every one of whose generations may go, with those generation numbers. */
  candidates: Map<string, number[]>
}

export async function collectGarbage(target: string, opts: GcOptions = {}): Promise<GcResult> {
  const layout = layoutFor(viewPathOf(target))
  if (!opts.dryRun) enterWriter(layout, opts)
  const first = readViewState(layout)
  requireManaged(first)
  const policy = resolvePolicy(first, opts)
  if (policy.ttlMs < MIN_TTL_MS && !opts.force && !opts.dryRun && opts.generation === undefined) {
    throw new ViewError(
      'TTL_TOO_SHORT',
      `gc ttl ${policy.ttl} for ${layout.view} is under 5 minutes: other NFS clients may keep resolving an old target from their attribute cache (60 s by default) and would find its tree gone`,
      'use a ttl of 5m or more, or pass --force when no other host reads this view; --dry-run shows what it would remove',
    )
  }

  const named = opts.generation
  const choose = (state: ViewState & { hash: string }) => (named === undefined ? decide(state, policy, Date.now()) : decideOne(state, named))
  const quick = choose(first)
  if (!opts.dryRun && quick.candidates.size === 0) return report(first, policy, quick, [], null, [], false)
  if (opts.dryRun) return refuseIfKeptInUse(named, await checkInUse(first, policy, quick, null, null))

  // For big trees, and any tree on a remote filesystem: rm processes (store/remove/rm-processes.ts); or else a removal thread that boots now, while the lock is taken and the /proc scan runs.
  const remover = startRemover(entriesIn(layout, quick.candidates.keys()), { remote: storeIsRemote(layout) })
  try {
    return await withWriter(layout, opts, async (_cleared, guard) => {
      const state = guard.state
      requireManaged(state)
      const result = refuseIfKeptInUse(named, await checkInUse(state, policy, choose(state), remover, guard))
      // the module tree names one file per generation on disk (modules/tree.ts)
      if (result.removed.length) result.warnings.push(...(await keepModuleTreeCurrent(layout)).warnings)
      return result
    })
  } finally {
    await remover.close()
  }
}

/**
 * `--generation N`: that generation's tree is the only candidate. The current
 * one and a pinned one are refused outright; a tree that another generation
 * on disk still has stays, and is reported as kept.
 */
function decideOne(state: ViewState & { hash: string }, spec: string): Decision {
  const { layout } = state
  const g = findGeneration(state, spec)
  const rows = listGenerations(state).filter((r) => r.onDisk)
  if (!g.onDisk) {
    throw new ViewError('GENERATION_COLLECTED', `generation ${g.generation} (${g.hash.slice(0, 12)}) of ${layout.view} was collected already; its tree is gone`, '`viewctl list` shows which generations are still on disk')
  }
  if (g.hash === state.hash) {
    const current = state.current?.generation
    const which = current === g.generation ? 'is the current generation' : `shares its tree with the current generation${current === undefined ? '' : ` ${current}`}`
    throw new ViewError('GENERATION_CURRENT', `generation ${g.generation} of ${layout.view} ${which}; gc never removes what the view shows`, 'switch the view to another generation first (`viewctl switch`, `viewctl rollback`), then collect this one')
  }
  if (g.pinned) {
    throw new ViewError('GENERATION_PINNED', `generation ${g.generation} of ${layout.view} is pinned; nothing was removed`, `\`viewctl unpin ${layout.view} ${g.generation}\` first if it may really go`)
  }
  // only the named generation, and those that share its tree, are reported
  const sharing = rows.filter((r) => r.hash === g.hash && r.generation !== g.generation)
  const reasons = new Map<number, string[]>([[g.generation, []], ...sharing.map((r) => [r.generation, ['shares the tree of the generation named by --generation']] as [number, string[]])])
  const candidates = new Map<string, number[]>()
  if (sharing.length) reasons.get(g.generation)!.push(`shares its tree with generation ${sharing.map((r) => r.generation).join(', ')}, which stay${sharing.length === 1 ? 's' : ''}`)
  else candidates.set(g.hash, [g.generation])
  return { rows: rows.filter((r) => reasons.has(r.generation)), reasons, candidates }
}

/** A generation named by --generation that a process or an exec lease uses is a refusal, not a survivor. */
function refuseIfKeptInUse(named: string | undefined, result: GcResult): GcResult {
  if (named === undefined || result.removed.length) return result
  const busy = result.kept.find((k) => k.reasons.some((r) => r.startsWith('in use') || r.startsWith('held by')))
  if (busy) {
    throw new ViewError('GENERATION_IN_USE', `generation ${busy.generation} (${busy.hash.slice(0, 12)}) of ${result.view} is ${busy.reasons.filter((r) => r.startsWith('in use') || r.startsWith('held by')).join('; ')}; nothing was removed`, 'end what uses it (or wait for it to end), then run gc again')
  }
  return result
}

/** Entries in the given generation trees, as their metadata counts them (0 for a tree without). */
function entriesIn(layout: Layout, hashes: Iterable<string>): number {
  let n = 0
  for (const h of hashes) n += readMeta(generationDir(layout, h))?.counts.entries ?? 0
  return n
}

function resolvePolicy(state: ViewState, opts: GcOptions): Policy {
  const recorded = state.current?.gc ?? lastRecordedGc(state)
  const keep = opts.keep ?? recorded?.keep ?? DEFAULT_GC.keep
  if (!Number.isInteger(keep) || keep < 0) {
    throw new ViewError('USAGE', `--keep ${keep}: expected a whole number of generations, 0 or more`, 'e.g. --keep 2 keeps two spare generations besides the current one')
  }
  const ttl = opts.ttl ?? (recorded?.ttl === undefined ? DEFAULT_GC.ttl : String(recorded.ttl))
  const from = opts.keep !== undefined || opts.ttl !== undefined ? 'options' : recorded ? 'recorded' : 'default'
  return { keep, ttl, ttlMs: parseDuration(ttl), from }
}

/** A view whose journal lost its current record still has the settings of its last regenerate. */
function lastRecordedGc(state: ViewState) {
  for (let i = state.records.length - 1; i >= 0; i--) if (state.records[i]!.gc) return state.records[i]!.gc
  return undefined
}

/** When each tree stopped being current: the first switch to another tree after its last switch in. */
export function leftCurrentAt(state: ViewState): Map<string, number> {
  const sw = switches(state.records)
  const left = new Map<string, number>()
  // walking backwards, `until` is when the run of records for one tree ended (never: its own time)
  let until = NaN
  for (let i = sw.length - 1; i >= 0; i--) {
    const next = sw[i + 1]
    if (!next) until = Date.parse(sw[i]!.at)
    else if (next.hash !== sw[i]!.hash) until = Date.parse(next.at)
    if (!left.has(sw[i]!.hash)) left.set(sw[i]!.hash, until) // the last switch to a tree decides
  }
  return left
}

/** Checks 1–4: current, spares, ttl, pins. Pure reading. */
function decide(state: ViewState & { hash: string }, policy: Policy, now: number): Decision {
  const rows = listGenerations(state).filter((g) => g.onDisk)
  const reasons = new Map<number, string[]>(rows.map((g) => [g.generation, []]))
  const add = (g: GenerationInfo, why: string) => reasons.get(g.generation)!.push(why)
  const currentNumber = state.current?.generation ?? null

  const pinnedHashes = new Set(rows.filter((g) => g.pinned).map((g) => g.hash))
  const spares = new Map<string, number>() // hash -> the generation that made it a spare
  for (const g of [...rows].sort((a, b) => b.generation - a.generation)) {
    if (g.hash === state.hash || pinnedHashes.has(g.hash)) continue
    const first = spares.get(g.hash)
    if (first !== undefined) add(g, `spare (shares its tree with spare generation ${first})`)
    else if (spares.size < policy.keep) {
      spares.set(g.hash, g.generation)
      add(g, `spare (keep ${policy.keep})`)
    }
  }

  const left = leftCurrentAt(state)
  for (const g of rows) {
    if (g.hash === state.hash) add(g, g.generation === currentNumber ? 'current' : `shares its tree with the current generation ${currentNumber ?? ''}`.trimEnd())
    if (g.pinned) add(g, 'pinned')
    const since = left.get(g.hash)
    if (g.hash !== state.hash && since !== undefined) {
      const age = now - since
      if (age < policy.ttlMs) add(g, `not current for ${formatDuration(Math.max(0, age))}, under the ttl ${policy.ttl}`)
    }
  }

  // a tree goes only when all its generations may go
  const byHash = new Map<string, GenerationInfo[]>()
  for (const g of rows) {
    const list = byHash.get(g.hash)
    if (list) list.push(g)
    else byHash.set(g.hash, [g])
  }
  const candidates = new Map<string, number[]>()
  for (const [hash, gens] of byHash) {
    const keeper = gens.find((g) => reasons.get(g.generation)!.length > 0)
    if (!keeper) {
      candidates.set(hash, gens.map((g) => g.generation))
      continue
    }
    for (const g of gens) {
      if (reasons.get(g.generation)!.length === 0) add(g, `shares its tree with generation ${keeper.generation}, which is kept`)
    }
  }
  return { rows, reasons, candidates }
}

/** Checks 5 to 7, then (unless a dry run, which has no remover and no lock) retire and remove the trees that pass. */
async function checkInUse(state: ViewState & { hash: string }, policy: Policy, decision: Decision, remover: TreeRemover | null, guard: WriterGuard | null): Promise<GcResult> {
  const dryRun = remover === null
  const { layout } = state
  const warnings: string[] = [...(guard?.notes ?? [])]
  let scan: ProcessScan | null = null
  const keepTree = (hash: string, why: string) => {
    for (const n of decision.candidates.get(hash) ?? []) decision.reasons.get(n)!.push(why)
    decision.candidates.delete(hash)
  }
  const nowMs = keepForOtherClients(state, guard, decision, keepTree)

  if (decision.candidates.size > 0) {
    const stores = [layout.store]
    try {
      stores.unshift(fs.realpathSync(layout.store))
    } catch {
      // the store vanished under us; the lease step will say so
    }
    const needMaps = [...decision.candidates.keys()].some((h) => readMeta(generationDir(layout, h))?.options.link !== 'symlink')
    scan = findProcessUsers(stores, decision.candidates.keys(), { maps: needMaps })
    if (!scan.available) warnings.push('no /proc on this system: processes using old generations could not be checked; the ttl and the spares protect them')
    for (const [hash, uses] of scan.uses) {
      const shown = uses.slice(0, 3).map(describeUse).join('; ')
      keepTree(hash, `in use on this host: ${shown}${uses.length > 3 ? ` and ${uses.length - 3} more` : ''}`)
    }
  }

  const retired: Array<{ hash: string; generations: number[]; trash: string }> = []
  const removed: RemovedTree[] = []
  let lockWarning = false
  for (const [hash, generations] of [...decision.candidates]) {
    const dir = generationDir(layout, hash)
    let lease
    try {
      lease = tryExclusiveLease(dir)
    } catch (err) {
      keepTree(hash, `its lease could not be checked: ${translateOsError(err, `opening the lease of ${dir}`).message}`)
      continue
    }
    if (lease.state === 'held') {
      keepTree(hash, 'held by a lease (a viewctl exec runs in it, or a viewctl push or pull is sending it, on this or another host)')
      continue
    }
    const leaseFiles = scanLeaseFiles(layout, hash, nowMs)
    if (leaseFiles.holding.length > 0) {
      if (lease.state === 'free') fs.closeSync(lease.fd)
      const shown = leaseFiles.holding.slice(0, 3).map(describeHolder).join('; ')
      keepTree(hash, `held by a viewctl exec lease file (${shown}${leaseFiles.holding.length > 3 ? ` and ${leaseFiles.holding.length - 3} more` : ''})`)
      continue
    }
    if (lease.state === 'unsupported' && !lockWarning) {
      lockWarning = true
      warnings.push(`the filesystem refused a lock on ${lease.file} (${lease.code}): exec leases cannot be seen here, only the ttl and the spares protect running commands`)
    }
    if (dryRun) {
      if (lease.state === 'free') fs.closeSync(lease.fd)
      removed.push({ generations, hash, bytes: diskUsage(dir) })
      continue
    }
    const trash = trashDir(layout, hash)
    try {
      guard?.assertHeld()
      sfs.rename(dir, trash)
    } catch (err) {
      if (err instanceof ViewError && err.code === 'LOCK_LOST') throw err
      const why = translateOsError(err, `renaming ${dir} to ${path.basename(trash)}`).message
      keepTree(hash, `could not be retired: ${why}`)
      warnings.push(`generation tree ${hash} stays: ${why}`)
      continue
    } finally {
      // released only after the rename: an exec that waited on the lease re-resolves the view
      if (lease.state === 'free') fs.closeSync(lease.fd)
    }
    retired.push({ hash, generations, trash })
  }

  if (retired.length) {
    try {
      sfs.fsyncDir(layout.store)
    } catch {
      // the renames happened; a power cut could only bring a tree back, never lose a kept one
    }
  }
  // removed under the writer lock: the next writer treats any trash it finds as a dead writer's
  for (const r of retired) {
    try {
      await remover!.remove(r.trash)
    } catch (err) {
      warnings.push(`${translateOsError(err, `removing ${r.trash}`).message}; the tree is out of the view's reach and the next writer removes it`)
    }
    removeLeaseDir(layout, r.hash)
    removed.push({ generations: r.generations, hash: r.hash })
  }
  return report(state, policy, decision, removed, scan, warnings, dryRun)
}

/**
 * Rule 7 and the journal/symlink agreement, for the candidates left by 1-4;
 * also prunes old fences. Returns the time by the filesystem's clock, for
 * judging lease files. A dry run (no guard) reads only: this host's clock,
 * no pruning.
 */
function keepForOtherClients(state: ViewState & { hash: string }, guard: WriterGuard | null, decision: Decision, keepTree: (hash: string, why: string) => void): number {
  const { layout } = state
  const sw = switches(state.records)
  const last = sw[sw.length - 1]
  if (last !== undefined && last.hash !== state.hash) {
    const before = sw[sw.length - 2]
    if (before?.hash !== state.hash) {
      throw new ViewError(
        'STATE_MISMATCH',
        `${layout.view} points at ${state.hash.slice(0, 12)}, but the journal's last switch is generation ${last.generation} (${last.hash.slice(0, 12)}), and the one before it is not that tree either; gc deletes nothing while they disagree`,
        'if another client has just switched the view, run gc again in a minute; otherwise make them agree with `viewctl rollback --to N` or a regenerate',
      )
    }
    keepTree(last.hash, `recorded as the switch after the current one (generation ${last.generation}): its writer died before publishing it, or this client still sees the previous target`)
  }
  const filesystem = guard?.filesystem ?? filesystemOf(layout.store)
  if (!filesystem.remote || decision.candidates.size === 0) return Date.now()
  const nowMs = guard === null ? Date.now() : serverNow(layout, filesystem)
  const recent = (atMs: number) => (nowMs - atMs) / 1000 < TWO_MINUTES_S
  for (const f of recentSwitches(layout, sw.length, nowMs, TWO_MINUTES_S)) {
    const why = `current within the last ${TWO_MINUTES_S} s (switch ${f.n}, ${Math.round((nowMs - f.atMs) / 1000)} s ago by the server's clock): another client may still resolve the view to it`
    if (f.from !== null) keepTree(f.from, why)
    keepTree(f.to, why)
  }
  // stores switched before fences existed: the symlink's own time says when the previous tree stopped being current
  try {
    const since = fs.lstatSync(layout.view).mtimeMs
    const previous = sw.length >= 2 ? sw[sw.length - 2]! : null
    if (previous !== null && recent(since)) keepTree(previous.hash, `current within the last ${TWO_MINUTES_S} s (the view's symlink changed ${Math.round((nowMs - since) / 1000)} s ago by the server's clock)`)
  } catch {
    // the view vanished: the lease step says so
  }
  if (guard !== null) pruneFences(layout, storeNames(layout), sw.length, nowMs)
  return nowMs
}

function report(state: ViewState, policy: Policy, decision: Decision, removed: RemovedTree[], scan: ProcessScan | null, warnings: string[], dryRun: boolean): GcResult {
  const going = new Set(removed.map((r) => r.hash))
  const kept: KeptGeneration[] = decision.rows
    .filter((g) => !going.has(g.hash))
    .map((g) => ({ generation: g.generation, hash: g.hash, reasons: decision.reasons.get(g.generation)! }))
  const recorded = new Set(state.records.map((r) => r.hash))
  const untracked = hashesOnDisk(state.layout)
    .filter((h) => !recorded.has(h))
    .sort()
    .map((hash) => ({ hash, note: 'no history record names this tree; gc leaves it alone (remove it by hand if nothing uses it)' }))
  return {
    view: state.layout.view,
    dryRun,
    policy: { keep: policy.keep, ttl: policy.ttl, from: policy.from },
    removed: removed.sort((a, b) => a.generations[0]! - b.generations[0]!),
    kept,
    untracked,
    scan: scan ? { scanned: scan.scanned, unreadable: scan.unreadable, available: scan.available, elapsedMs: Math.round(scan.elapsedMs) } : null,
    warnings,
  }
}

function storeNames(layout: Layout): string[] {
  try {
    return fs.readdirSync(layout.store)
  } catch {
    return []
  }
}

/** Blocks a tree takes (what deleting it frees); files with other hardlinks are not counted. */
function diskUsage(dir: string): number {
  let total = 0
  const walk = (d: string) => {
    let entries: fs.Dirent[]
    try {
      entries = fs.readdirSync(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const p = `${d}/${e.name}`
      try {
        const st = fs.lstatSync(p)
        if (e.isDirectory()) walk(p)
        if (e.isDirectory() || st.nlink <= 1) total += st.blocks * 512
      } catch {
        // vanished
      }
    }
  }
  try {
    total += fs.lstatSync(dir).blocks * 512
  } catch {
    return 0
  }
  walk(dir)
  return total
}

function storeIsRemote(layout: Layout): boolean {
  try {
    return filesystemOf(layout.store).remote
  } catch {
    return false // the lock step reports what is wrong with the store
  }
}
