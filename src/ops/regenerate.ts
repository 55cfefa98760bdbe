/**
 * regenerate: manifest -> plan -> (build | reuse) -> record -> publish.
 *
 * Everything that can be refused is refused before the first write: the
 * manifest, the prefixes, the conflicts, the state of the view path. The
 * build happens in staging and becomes a generation by one rename; the
 * switch is one more rename. A failure anywhere leaves the view on the
 * generation it had.
 */
import { loadManifestRemembering, type DocumentMemory } from '../manifest/load.js'
import { fromManifestDir, guessViewPath } from '../manifest/target.js'
import type { Manifest } from '../manifest/types.js'
import { readTextNoFollow } from '../fs.js'
import path from 'node:path'
import { assertNoConflicts, createPlan, prefixTable, recallPlanSummary, type PlanResult } from '../plan/index.js'
import { parsePlanText, type ParsedPlan } from '../plan/hash.js'
import { openScanCache, type ScanCache } from '../plan/cache.js'
import { buildGeneration, NOTHING_SHARED, prefixOnAnotherFilesystem, throwIfAborted, type BuildProgress } from '../store/build/build.js'
import { newRecord } from '../store/journal/history.js'
import { generationDir, layoutFor, META_DIR, PLAN_FILE, type Layout } from '../store/layout.js'
import { switchView } from '../store/build/publish.js'
import { PARALLEL_MIN_LINKS, startLinkHelpers, type LinkHelpers } from '../store/build/linker.js'
import { StreamingBuild } from '../store/build/stream.js'
import { enterStore } from '../store/build/workdir.js'
import { chooseBase, type BaseChoice, type ShareOutcome } from '../store/build/share.js'
import { adoptDirectory, type AdoptResult } from '../store/recover/adopt.js'
import { nextGenerationNumber, readViewState, treeCondition, type ViewState } from '../store/journal/state.js'
import { retireTree } from '../store/recover/recover.js'
import { assertNoCollision, notAnOldView } from '../store/places.js'
import { ViewError, translateOsError } from '../errors.js'
import { keepModuleTreeCurrent } from '../modules/hook.js'
import { enterWriter, withWriter, withWriterIfFree, type WriterGuard, type WriterOptions } from './writer.js'
import { ownerToActAs } from '../store/guard/identity.js'
import { filesystemOf } from '../store/guard/filesystem.js'
import { jobs } from '../store/workers.js'
import type { GcResult } from './gc.js'
import { manifestSettings, recordSettings, sameSettings } from './settings.js'

export interface RegenerateOptions extends WriterOptions {
  dryRun?: boolean
  adopt?: boolean
  onProgress?: BuildProgress
  /** Abort (e.g. on SIGINT): honoured until the switch is recorded, never half-way through a publish. */
  signal?: AbortSignal
  /**
   * Let a build make the store the process's working directory while it
   * links, so that each link names its place by a short relative path
   * (store/build/workdir.ts): less kernel time per link. The working directory is
   * the whole process's: the CLI sets this; a library caller with other work
   * in flight that uses relative paths should not.
   */
  workInStore?: boolean
  /** False: create every entry anew, sharing nothing with the generation on disk (`--no-share`; the manifest's `share: false` does the same). */
  share?: boolean
}

export interface RegenerateResult {
  view: string
  store: string
  hash: string
  generation: number | null
  previousGeneration: number | null
  changed: boolean
  /** The tree is the one the view showed, but the manifest's `env:` or `gc:` changed: a new generation shares it. */
  settingsChanged: boolean
  /** A tree was built (false when an existing tree with this hash was reused, or nothing changed). */
  built: boolean
  /** Entries of the built tree hard-linked from the tree it was built beside (store/build/share.ts); 0 when nothing was built. */
  shared: number
  /** That tree: the newest generation recorded for it, and its hash; null when nothing was shared from any. */
  sharedWith: { generation: number; hash: string } | null
  /**
   * Links were made while the prefixes were still being walked (a streamed
   * build, store/build/stream.ts). False for a plan recalled from the scan cache, a
   * busy lock, a dry run, and a walk that found the plan the view already shows.
   */
  streamed: boolean
  dryRun: boolean
  /** Set when --adopt moved a real directory into the store first. */
  adopted: AdoptResult | null
  entries: number
  prefixes: number
  conflicts: number
  excluded: number
  warnings: string[]
  cleared: string[]
  elapsedMs: number
  /** What the automatic gc after a switch did (manifest `gc.auto`); absent when it did not run. */
  gc?: GcResult
}

export async function regenerate(manifestFile: string, opts: RegenerateOptions = {}): Promise<RegenerateResult> {
  const started = performance.now()
  const { manifest, layout, cache } = await loadWithCache(manifestFile, opts)
  const before = readViewState(layout)
  assertPublishable(before, opts, manifestFile)
  const unchanged = alreadyShown(layout, before, manifest, cache, !!opts.dryRun)
  if (unchanged) return { ...unchanged, elapsedMs: performance.now() - started }
  // a build is likely: let link workers boot while the prefixes are walked (not on a remote filesystem,
  // where the build keeps many operations in flight from the main thread instead: store/build/lanes.ts)
  const helpers = opts.dryRun || onRemoteFilesystem(layout) ? null : startLinkHelpers()
  try {
    let result: RegenerateResult | null = null
    // The prefixes must be walked (the scan cache recalls no plan) and a build is likely (a new view, a prefix
    // added or dropped, or a prefix directory changed since the last scan): with the lock free, link while walking. Otherwise the
    // walk runs without the lock, which is then held only for the switch (a no-op cron run of a hardlink view).
    if (helpers !== null && before.kind !== 'directory' && recallPlanSummary(manifest, cache) === null && (before.kind !== 'managed' || cache.changedSinceLastScan(prefixTable(manifest)))) {
      const streamed = await withWriterIfFree(layout, opts, (cleared, guard) => streamAndSwitch(manifestFile, manifest, layout, cache, { ...opts, helpers }, cleared, guard, started))
      result = streamed?.value ?? null
    }
    result ??= await planAndSwitch(manifestFile, manifest, layout, cache, { ...opts, helpers }, started)
    if (result.changed && !result.dryRun && manifest.gc.auto) await collectAfterSwitch(result, manifest, layout, opts)
    return result
  } finally {
    helpers?.release()
  }
}

/**
 * The manifest, and the scan cache of its view. The cache is looked up first,
 * in the store of the view the text seems to name (guessViewPath), because it
 * may hold the validated document of this very text: then the manifest is not
 * parsed (manifest/load.ts). If the guess was wrong, the right cache is opened
 * once the view is known.
 *
 * Root acting for another user's store (WriterOptions.asStoreOwner) reads
 * nothing there as root: the guess is not asked when the store it names is
 * another user's, the manifest is parsed, and the writer becomes that user
 * (enterWriter) before the cache is opened.
 */
async function loadWithCache(manifestFile: string, opts: RegenerateOptions): Promise<{ manifest: Manifest; layout: Layout; cache: ScanCache }> {
  const acting = !!opts.asStoreOwner && !opts.dryRun
  const memory = new CacheByGuess(manifestFile, acting)
  const manifest = await loadManifestRemembering(manifestFile, memory)
  const layout = layoutFor(manifest.view)
  if (acting) enterWriter(layout, opts)
  return { manifest, layout, cache: memory.cacheOf(layout) }
}

class CacheByGuess implements DocumentMemory {
  private guessed: { file: string; cache: ScanCache } | null = null
  private learned: { key: string; document: unknown } | null = null

  /** `acting`: root may become the owner of the view's store; a store that is not root's is not read before. */
  constructor(
    private readonly manifestFile: string,
    private readonly acting: boolean,
  ) {}

  recall(key: string, text: string): unknown {
    const view = guessViewPath(text, this.manifestFile)
    if (view === null || (this.acting && ownerToActAs(layoutFor(view)) !== null)) return undefined
    const file = layoutFor(view).scanCache
    this.guessed = { file, cache: openScanCache(file) }
    const document = this.guessed.cache.recallDocument(key)
    // Only a document that names this view: one planted in a store that someone else can write can then
    // describe no other view than that store's own. viewctl itself stores a document only where it is found.
    const named = (document as { view?: unknown } | undefined)?.view
    if (typeof named !== 'string' || fromManifestDir(this.manifestFile, named) !== view) return undefined
    return document
  }

  remember(key: string, document: unknown): void {
    this.learned = { key, document }
  }

  /**
   * The scan cache of the view the manifest names. It keeps the document the
   * manifest was parsed into (saved by the next run that writes the cache)
   * when the guess leads here, the one place the next run will look.
   */
  cacheOf(layout: Layout): ScanCache {
    const guessed = this.guessed?.file === layout.scanCache ? this.guessed.cache : null
    const cache = guessed ?? openScanCache(layout.scanCache)
    if (guessed !== null && this.learned !== null) cache.rememberDocument(this.learned.key, this.learned.document)
    return cache
  }
}

/** Plan first, then take the lock and build: dry runs, a recalled plan, a busy lock, no link workers. */
async function planAndSwitch(manifestFile: string, manifest: Manifest, layout: Layout, cache: ScanCache, opts: RegenerateOptions & { helpers: LinkHelpers | null }, started: number): Promise<RegenerateResult> {
  const plan = createPlan(manifest, { readDir: cache.readDir, memo: cache })
  assertNoConflicts(plan, manifestFile)
  throwIfAborted(opts.signal)
  if (plan.paths.length >= PARALLEL_MIN_LINKS) opts.helpers?.sendPlan(plan.chunks, plan.paths.length)

  const base = summaryOf(layout, plan, !!opts.dryRun)
  if (opts.dryRun) {
    const state = readViewState(layout)
    return {
      ...base,
      generation: state.current?.generation ?? null,
      previousGeneration: state.current?.generation ?? null,
      changed: state.hash !== plan.hash || settingsDiffer(state, manifest),
      settingsChanged: state.hash === plan.hash && settingsDiffer(state, manifest),
      built: false,
      shared: 0,
      sharedWith: null,
      adopted: null,
      cleared: [],
      elapsedMs: performance.now() - started,
    }
  }

  return withWriter(layout, opts, async (cleared, guard) => {
    cache.save()
    let state = guard.state
    assertPublishable(state, opts, manifestFile)
    let adopted: AdoptResult | null = null
    if (state.kind === 'directory' && opts.adopt) {
      adopted = adoptDirectory(layout, state, manifest, opts.argv ?? process.argv.slice(1), guard)
      state = readViewState(layout)
    }
    const previous = state.current?.generation ?? null
    if (showsPlan(layout, state, plan)) {
      const warnings: string[] = []
      const settings = await recordSettingsChange(layout, state, plan, manifest, opts, guard, warnings)
      if (adopted !== null && settings === null) warnings.push(...(await keepModuleTreeCurrent(layout)).warnings)
      const generation = settings ?? previous
      return { ...base, warnings: [...base.warnings, ...warnings], generation, previousGeneration: previous, changed: adopted !== null || settings !== null, settingsChanged: settings !== null, built: false, adopted, cleared, elapsedMs: performance.now() - started }
    }
    // a tree with this hash on disk is reused: nothing to share
    const choice = intact(layout, plan.hash) ? NO_BASE : baseFor(layout, state, manifest, opts)
    const inFlight = guard.filesystem.remote ? jobs(true) : undefined
    const build = () => buildGeneration(layout, plan, manifest, { onProgress: opts.onProgress, signal: opts.signal, helpers: opts.helpers, workInStore: opts.workInStore, base: choice.base, inFlight })
    const { generation, built, warnings, share } = await switchToNewGeneration(layout, state, plan, manifest, opts, guard, build)
    return { ...base, ...sharing(choice, share), warnings: [...base.warnings, ...guard.notes, ...warnings, ...notes(choice, share)], generation, previousGeneration: previous, changed: true, built, adopted, cleared, elapsedMs: performance.now() - started }
  })
}

const NO_BASE: BaseChoice = { base: null, note: null }

/** The tree a build under the writer lock shares from (store/build/share.ts), unless `--no-share`. */
function baseFor(layout: Layout, state: ViewState, manifest: Manifest, opts: RegenerateOptions): BaseChoice {
  return opts.share === false ? NO_BASE : chooseBase(layout, state, manifest)
}

function sharing(choice: BaseChoice, share: ShareOutcome): Pick<RegenerateResult, 'shared' | 'sharedWith'> {
  const { base } = choice
  return { shared: share.shared, sharedWith: base !== null && share.shared > 0 ? { generation: base.generation, hash: base.hash } : null }
}

function notes(choice: BaseChoice, share: ShareOutcome): string[] {
  return choice.note === null ? share.notes : [choice.note, ...share.notes]
}

/**
 * Link while walking (store/build/stream.ts), under the writer lock the caller
 * took before the walk. A plan that is refused, or that the view or the
 * store already has, removes what was linked; the view is never touched
 * before the plan is complete and accepted. Null, before anything is done,
 * when the plain path must decide (a hardlink view across filesystems).
 */
async function streamAndSwitch(manifestFile: string, manifest: Manifest, layout: Layout, cache: ScanCache, opts: RegenerateOptions & { helpers: LinkHelpers }, cleared: string[], guard: WriterGuard, started: number): Promise<RegenerateResult | null> {
  const state = guard.state
  // a directory that appeared at the view path since the first look is refused here, --adopt or not (adoption is the plain path's)
  assertPublishable(state, { ...opts, adopt: false }, manifestFile)
  const prefixes = prefixTable(manifest)
  // a hardlink view across filesystems: the plain path says so with both mount points, or finds nothing to build
  if (manifest.link === 'hardlink' && prefixOnAnotherFilesystem(layout, prefixes) !== null) return null
  // links are named from the store while this build runs (store/build/workdir.ts); restored however the build ends
  const leave = opts.workInStore ? enterStore(layout.store) : null
  try {
    const choice = baseFor(layout, state, manifest, opts)
    // the base is the tree the view shows, most of the time: its plan, read once, is the baseline too
    const baseline = choice.base !== null && choice.base.hash === state.hash ? choice.base.plan : shownPlan(layout, state)
    const identities = manifest.link === 'copy' ? [] : null
    const stream = new StreamingBuild({ layout, manifest, prefixes, helpers: opts.helpers, baseline, base: choice.base, identities, onProgress: opts.onProgress, inStore: leave !== null })
    let plan: PlanResult
    try {
      plan = createPlan(manifest, { readDir: cache.readDir, memo: cache, onRelease: stream.onRelease, identities: identities ?? undefined })
      assertNoConflicts(plan, manifestFile)
      cache.save()
      throwIfAborted(opts.signal)
    } catch (err) {
      await stream.abandon()
      // a conflict or a prefix that cannot be read is already a ViewError; a failed mkdir in staging is not
      throw translateOsError(err, `building a generation in ${layout.store}`)
    }
    const base = summaryOf(layout, plan, false)
    const previous = state.current?.generation ?? null
    if (showsPlan(layout, state, plan)) {
      await stream.abandon()
      const warnings: string[] = []
      const settings = await recordSettingsChange(layout, state, plan, manifest, opts, guard, warnings)
      const generation = settings ?? previous
      return { ...base, warnings: [...base.warnings, ...warnings], streamed: stream.linkedWhileWalking, generation, previousGeneration: previous, changed: settings !== null, settingsChanged: settings !== null, built: false, shared: 0, sharedWith: null, adopted: null, cleared, elapsedMs: performance.now() - started }
    }
    const build = async () => {
      const dir = generationDir(layout, plan.hash)
      // a tree with this hash is on disk already (a rollback, then the same manifest again): keep it
      if (intact(layout, plan.hash)) {
        await stream.abandon()
        return { dir, built: false, share: NOTHING_SHARED }
      }
      const share = await stream.finish(plan, { signal: opts.signal })
      return { dir, built: true, share }
    }
    let switched
    try {
      switched = await switchToNewGeneration(layout, state, plan, manifest, opts, guard, build)
    } catch (err) {
      await stream.abandon() // if the switch failed before the build: no worker links on once the working directory is back
      throw err
    }
    const { generation, built, warnings, share } = switched
    const choiceNow = built ? choice : NO_BASE
    return { ...base, ...sharing(choiceNow, share), streamed: stream.linkedWhileWalking, warnings: [...base.warnings, ...guard.notes, ...warnings, ...notes(choiceNow, share)], generation, previousGeneration: previous, changed: true, built, adopted: null, cleared, elapsedMs: performance.now() - started }
  } finally {
    leave?.()
  }
}

function summaryOf(layout: Layout, plan: PlanResult, dryRun: boolean) {
  return {
    view: layout.view,
    store: layout.store,
    hash: plan.hash,
    dryRun,
    entries: plan.paths.length,
    prefixes: plan.prefixes.length,
    conflicts: plan.conflicts.length,
    excluded: plan.excluded,
    warnings: [...plan.warnings],
    streamed: false,
    settingsChanged: false,
    shared: 0,
    sharedWith: null,
  }
}

/** The manifest's settings differ from those recorded for the generation the view shows. */
function settingsDiffer(state: ViewState, manifest: Manifest): boolean {
  return state.current !== null && !sameSettings(recordSettings(state.current), manifestSettings(manifest))
}

/**
 * The view already shows this plan's tree. When the manifest's settings
 * differ from the ones recorded for it, record a new generation that shares
 * the tree, as a rollback record does (the symlink already points at it, so
 * the record alone makes it current); returns its number, or null when
 * nothing changed.
 */
async function recordSettingsChange(layout: Layout, state: ViewState, plan: PlanResult, manifest: Manifest, opts: RegenerateOptions, guard: WriterGuard, warnings: string[]): Promise<number | null> {
  if (!settingsDiffer(state, manifest)) return null
  const generation = nextGenerationNumber(state)
  switchView(layout, state, newRecord({ generation, hash: plan.hash, action: 'regenerate', argv: opts.argv ?? process.argv.slice(1), manifest: manifest.file, ...manifestSettings(manifest) }), guard, { publish: false })
  // the module tree names the generation, and may have moved with modules:
  warnings.push(...(await keepModuleTreeCurrent(layout)).warnings)
  return generation
}

/** A tree that may be reused as it is (checked without a walk: store/journal/state.ts); a damaged one is rebuilt, never republished. */
function intact(layout: Layout, hash: string): boolean {
  return treeCondition(layout, hash).state === 'intact'
}

/** Up to date only when the tree the view points at is really there and intact; a deleted or damaged tree is rebuilt and republished. */
function showsPlan(layout: Layout, state: ViewState, plan: PlanResult): boolean {
  return state.kind === 'managed' && state.hash === plan.hash && state.current !== null && intact(layout, plan.hash)
}

/** The plan of the tree the view shows, read back from its plan file; null when there is none or it cannot be read. */
function shownPlan(layout: Layout, state: ViewState): ParsedPlan | null {
  if (state.kind !== 'managed' || state.hash === null || !intact(layout, state.hash)) return null
  try {
    return parsePlanText(readTextNoFollow(path.join(generationDir(layout, state.hash), META_DIR, PLAN_FILE)))
  } catch {
    return null
  }
}

/** The automatic gc (manifest `gc.auto`) runs after the lock is released (DESIGN §5.5); its failure does not undo the switch. */
async function collectAfterSwitch(result: RegenerateResult, manifest: Manifest, layout: Layout, opts: RegenerateOptions): Promise<void> {
  try {
    const { collectGarbage } = await import('./gc.js')
    result.gc = await collectGarbage(layout.view, { keep: manifest.gc.keep, ttl: manifest.gc.ttl, lockTimeout: opts.lockTimeout, noLock: opts.noLock, argv: opts.argv, warn: opts.warn })
    result.warnings.push(...result.gc.warnings.map((w) => `gc: ${w}`))
  } catch (err) {
    result.warnings.push(`automatic gc did not run: ${err instanceof Error ? err.message : String(err)} (the view was switched; run \`viewctl gc\` later)`)
  }
}

/**
 * The no-op, decided without the writer lock: the scan cache recalls the plan
 * these inputs made while every directory it was made from is unchanged, and
 * the view already shows that plan's complete tree. Nothing would be written
 * (not even the cache: a new manifest document, after an edit of comments
 * only, waits for the next run that writes), so nothing needs the lock; a
 * writer switching the view at this moment is simply ordered after this run.
 * Leftovers of a dead writer stay until the next run that writes.
 */
function alreadyShown(layout: Layout, state: ViewState, manifest: Manifest, cache: ScanCache, dryRun: boolean): Omit<RegenerateResult, 'elapsedMs'> | null {
  if (state.kind !== 'managed' || state.current === null) return null
  const recalled = recallPlanSummary(manifest, cache)
  if (recalled === null || recalled.hash !== state.hash || cache.dirty || !intact(layout, recalled.hash) || settingsDiffer(state, manifest)) return null
  const generation = state.current.generation
  return {
    view: layout.view,
    store: layout.store,
    hash: recalled.hash,
    dryRun,
    entries: recalled.entries,
    prefixes: recalled.prefixes,
    conflicts: 0, // a plan with conflicts is never remembered
    excluded: recalled.excluded,
    warnings: [...recalled.warnings],
    generation,
    previousGeneration: generation,
    changed: false,
    settingsChanged: false,
    built: false,
    shared: 0,
    sharedWith: null,
    streamed: false,
    adopted: null,
    cleared: [],
  }
}

async function switchToNewGeneration(layout: Layout, state: ViewState, plan: PlanResult, manifest: Manifest, opts: RegenerateOptions, guard: WriterGuard, build: () => Promise<{ built: boolean; dir: string; share: ShareOutcome }>) {
  const { built, dir, share } = await build()
  if (opts.signal?.aborted && built) retireTree(layout, dir, plan.hash) // nobody will record it: leave nothing behind
  throwIfAborted(opts.signal)
  const generation = nextGenerationNumber(state)
  const record = newRecord({
    generation,
    hash: plan.hash,
    action: 'regenerate',
    argv: opts.argv ?? process.argv.slice(1),
    manifest: manifest.file,
    ...manifestSettings(manifest),
  })
  const warnings = switchView(layout, state, record, guard)
  warnings.push(...(await keepModuleTreeCurrent(layout)).warnings)
  return { generation, built, warnings, share }
}

/**
 * A view path that is a real directory or a foreign symlink is never
 * replaced silently, and a view that would collide with another view's store
 * is refused (store/places.ts). `--adopt` is suggested only for a directory
 * that could be an old view, and refused for one whose adoption would harm.
 */
function assertPublishable(state: ViewState, opts: RegenerateOptions, manifestFile: string): void {
  const { layout } = state
  if (state.kind !== 'managed') assertNoCollision(layout)
  if (state.kind === 'directory') {
    const notView = notAnOldView(layout.view, manifestFile)
    if (notView !== null && (notView.unsafe || !opts.adopt)) {
      throw new ViewError(
        'NOT_MANAGED',
        `${layout.view} is a real directory, not a view managed by viewctl, and ${notView.why}; refusing to ${opts.adopt ? 'adopt' : 'replace'} it`,
        'choose another view path (a new name: viewctl creates it)',
      )
    }
    if (!opts.adopt) {
      throw new ViewError(
        'NOT_MANAGED',
        `${layout.view} is a real directory, not a view managed by viewctl; refusing to replace it`,
        'pass --adopt to move it into the store as generation 1 (rollback can return to it), or choose another view path',
      )
    }
  }
  if (state.kind === 'foreign') {
    throw new ViewError(
      'NOT_MANAGED',
      `${layout.view} exists and is not a viewctl view (it is a file, or a symlink that does not point into ${layout.store})`,
      'move it away or choose another view path',
    )
  }
}

/** Whether the view's store is (or, for a new view, will be) on a remote filesystem. */
function onRemoteFilesystem(layout: Layout): boolean {
  for (const dir of [layout.store, path.dirname(layout.view)]) {
    try {
      return filesystemOf(dir).remote
    } catch {
      // not there yet: ask its parent
    }
  }
  return false
}
