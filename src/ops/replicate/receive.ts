/**
 * The receiving end of a push (or the local end of a pull): the host that
 * writes the view does all the writing, under its own writer lock, in the
 * order that never shows a partial view (docs/replication.md):
 *
 *   1. take the writer lock for the whole session (regenerate, rollback and
 *      gc here wait; a push that cannot get it in time exits 4 naming the
 *      holder), clear leftovers but keep a copy view's `.staging-push-<hash>`;
 *   2. say what is here: nothing to do, a tree to record, a symlink view to
 *      build from its plan, or a staging directory for rsync (a copy view,
 *      with this host's newest tree to share from);
 *   3. a symlink view: check the generation files the sender sent (meta.json
 *      names the hash, the plan hashes to it) and that every link resolves
 *      here, then make the tree from the plan in a staging directory,
 *      hard-linking what the newest tree here has unchanged, exactly as
 *      regenerate builds (store/build/); a copy view, after rsync: check the
 *      staging directory against its plan.tsv and meta.json, flush it;
 *      either way, rename it to `<hash>`;
 *   4. append the journal record (action `push` or `pull`, where from, the
 *      generation's recorded settings), swap the view symlink last;
 *   5. release the lock, then run this host's own gc.
 *
 * A session that ends early (the sender gone, a cut network, a failed
 * transfer) keeps rsync's staging directory, so the next push of the same
 * generation resumes where rsync stopped; a full disk removes it. A build
 * from the plan removes its staging directory when it fails, and the next
 * writer clears what a killed one left.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as sfs from '../../fs.js'
import { ViewError, translateOsError } from '../../errors.js'
import { parsePlanText, type ParsedPlan } from '../../plan/hash.js'
import type { PlanResult } from '../../plan/index.js'
import { Kind, PLAN_FORMAT } from '../../plan/types.js'
import type { BuildSettings, ConflictPolicy } from '../../manifest/types.js'
import { buildGeneration } from '../../store/build/build.js'
import { chooseBase, newestTree } from '../../store/build/share.js'
import { jobs } from '../../store/workers.js'
import { newRecord, type HistoryRecord } from '../../store/journal/history.js'
import type { GenerationMeta } from '../../store/journal/meta.js'
import { readGenerationPlan } from '../../store/journal/plan-file.js'
import { isComplete, nextGenerationNumber, readViewState, type ViewState } from '../../store/journal/state.js'
import { switchView } from '../../store/build/publish.js'
import { generationDir, layoutFor, realGenerationDir, trashDir, type Layout } from '../../store/layout.js'
import { assertNoCollision } from '../../store/places.js'
import { toolVersion } from '../../version.js'
import { recordSettings, sameSettings } from '../settings.js'
import { keepModuleTreeCurrent } from '../../modules/hook.js'
import { DEFAULT_LOCK_TIMEOUT, enterWriter, withWriter, type WriterGuard, type WriterOptions } from '../writer.js'
import { checkGenerationFiles, checkReceivedTree, unresolvedLinks, type ReceivedProblem } from './check.js'
import { rebuildHere } from './rebuild.js'
import { checkVersions, PROTOCOL, type Done, type Greeting, type Hello, type GenerationFiles, type PrefixCopy, type Ready } from './protocol.js'
import { SESSION_FILE, writeSessionFile, type SessionFile } from './session-file.js'

export interface ReceiveOptions {
  /** `push` on the remote host of a push, `pull` on the local host of a pull: the journal's action. */
  action: 'push' | 'pull'
  /** Stops a wait for the lock (the sender went away). */
  signal?: AbortSignal
  /** Root receiving into a store another user owns becomes that owner first (ops/writer.ts, enterWriter); the CLI asks for it. */
  asStoreOwner?: boolean
}

/** The staging directory a push of `hash` fills: one name per generation, so that a second try resumes the first. */
export function pushStagingName(hash: string): string {
  return `.staging-push-${hash}`
}

export function greeting(): Greeting {
  return { type: 'greeting', protocol: PROTOCOL, planFormat: PLAN_FORMAT, tool: toolVersion(), host: os.hostname() }
}

export class ReceiveSession {
  readonly layout: Layout
  private hello: Hello | null = null
  private ready: Ready | null = null
  private state: ViewState | null = null
  /** The writer's guard (ops/writer.ts), for the switch at the end. */
  private guard: WriterGuard | null = null
  private staging: string | null = null
  private prefixCopies: PrefixCopy[] = []
  /** The plan the sender sent (actions build and rebuild). */
  private sentPlan: ParsedPlan | null = null
  /** A symlink view's generation files as sent (action build), checked. */
  private sent: { planText: string; metaText: string; manifestText: string; meta: GenerationMeta } | null = null
  private recorded: HistoryRecord | null = null

  constructor(
    view: string,
    private readonly opts: ReceiveOptions,
  ) {
    this.layout = layoutFor(view)
  }

  /**
   * Steps 1 to 4, as a writer (ops/writer.ts: the store made if needed, the
   * writer lock, what dead writers left cleared except this generation's
   * staging directory): say what is here, then `converse` runs the transfer
   * and calls acceptGeneration, acceptPlan, commit or abort; the lock is released when it returns.
   */
  async within<T>(hello: Hello, converse: (ready: Ready) => Promise<T>): Promise<T> {
    checkVersions(hello, { protocol: PROTOCOL, planFormat: PLAN_FORMAT }, `the sending viewctl on ${hello.origin.host}`)
    this.hello = hello
    const { layout } = this
    enterWriter(layout, { asStoreOwner: this.opts.asStoreOwner })
    assertReceivable(readViewState(layout))
    const from = `${hello.origin.host}:${hello.origin.view}${hello.origin.generation === null ? '' : ` generation ${hello.origin.generation}`}`
    const stagingName = pushStagingName(hello.hash)
    // what the store's upkeep had to say (modes it fixed or could not, a mended journal): the sender reports it
    const notes: string[] = []
    const writer: WriterOptions = {
      lockTimeout: hello.lockTimeout ?? DEFAULT_LOCK_TIMEOUT,
      // what a waiting writer here is told holds the lock
      argv: ['viewctl', 'receive', layout.view, `(${this.opts.action} of ${hello.hash.slice(0, 12)} from ${from})`],
      signal: this.opts.signal,
      // only rsync's staging is resumed (a copy view); a symlink view's tree is made from its plan
      keepLeftover: hello.link === 'copy' ? stagingName : undefined,
      warn: (w) => notes.push(w),
    }
    return withWriter(layout, writer, async (_cleared, guard) => {
      this.guard = guard
      const state = guard.state
      assertReceivable(state)
      this.state = state
      this.ready = hello.link === 'hardlink' ? this.readyToRebuild(state, hello) : this.readyForTree(state, hello, stagingName)
      if (notes.length > 0) this.ready.warnings = [...(this.ready.warnings ?? []), ...notes]
      if (this.ready.action === 'transfer' || (this.ready.prefixCopies ?? []).length > 0) this.writeSession()
      try {
        return await converse(this.ready)
      } finally {
        try {
          fs.unlinkSync(path.join(layout.store, SESSION_FILE))
        } catch {
          // not written, or gone
        }
      }
    })
  }

  /**
   * Action `build`, step 3a: the generation files of a symlink view as the
   * sender has them. They must name the hash announced, and the plan must
   * hash to it: then the tree made from it is that generation.
   */
  acceptGeneration(files: GenerationFiles): void {
    const ready = this.expectReady()
    const hash = this.hello!.hash
    if (ready.action !== 'build') throw new ViewError('INTERNAL', 'generation files were sent for a transfer that is not a build', 'this is a bug in viewctl; please report it')
    const checked = checkGenerationFiles(files.meta, files.plan, hash)
    if (checked.problems.length > 0 || checked.plan === null || checked.meta === null) {
      throw new ViewError('TRANSFER_FAILED', `the generation files sent for ${hash} do not describe it (${describeProblems(checked.problems)})`, 'run `viewctl verify` on the sending host; the view here was not changed', { problems: checked.problems.slice(0, 50) })
    }
    this.sentPlan = checked.plan
    this.sent = { planText: files.plan, metaText: files.meta, manifestText: files.manifest, meta: checked.meta }
  }

  /** The plan text of a hardlink view, whose tree is rebuilt here at commit. */
  acceptPlan(planText: string): void {
    this.sentPlan = parsePlanText(planText)
  }

  /** Steps 3 and 4: check, rename, record, publish. The lock is still held when this returns. */
  async commit(): Promise<Done> {
    const ready = this.expectReady()
    const hello = this.hello!
    const state = this.state!
    if (ready.action === 'noop') return { type: 'done', generation: state.current?.generation ?? null, hash: state.hash ?? hello.hash, switched: false, action: 'noop', settingsChanged: false, warnings: ready.warnings ?? [] }
    if (ready.action === 'rebuild') {
      const rebuilt = await rebuildHere(this.layout, hello, this.sentPlan)
      if (rebuilt.noop) return { type: 'done', generation: state.current?.generation ?? null, hash: rebuilt.hash, switched: false, action: 'noop', settingsChanged: false, warnings: rebuilt.warnings }
      return this.keepModuleTree(this.recordAndPublish(rebuilt.hash, rebuilt.warnings))
    }
    this.placePrefixes()
    if (hello.link === 'symlink') this.assertLinksResolve(generationDir(this.layout, hello.hash))
    let made: Pick<Done, 'linked' | 'created' | 'warnings'> = { warnings: [] }
    if (ready.action === 'build') made = await this.buildFromPlan()
    if (ready.action === 'transfer') this.sealStaging()
    const { warnings, ...counts } = made
    return this.keepModuleTree(Object.assign(this.recordAndPublish(hello.hash, warnings), counts))
  }

  /** A received generation changes the set of generations: the module tree the settings name follows (modules/hook.ts), still under the lock. */
  private async keepModuleTree(done: Done): Promise<Done> {
    done.warnings.push(...(await keepModuleTreeCurrent(this.layout)).warnings)
    return done
  }

  /** The sender gave up: keep the staging directory for the next try, or remove it (a full disk). */
  abort(discard: boolean): void {
    if (!discard) return
    if (this.staging !== null) sfs.rmTree(this.staging)
    for (const copy of this.prefixCopies) sfs.rmTree(copy.temp)
  }

  /** Step 5, after the lock is released: this host's gc, by the settings just recorded (skipped when they say `auto: false`). */
  async collect(): Promise<{ removed: number; warnings: string[] }> {
    if (this.recorded === null || this.recorded.gc?.auto === false) return { removed: 0, warnings: [] }
    try {
      const { collectGarbage } = await import('../gc.js')
      const gc = await collectGarbage(this.layout.view, { argv: this.hello?.argv })
      return { removed: gc.removed.length, warnings: gc.warnings }
    } catch (err) {
      return { removed: 0, warnings: [`gc did not run: ${err instanceof Error ? err.message : String(err)}`] }
    }
  }

  /**
   * Action `build`: the tree made from the plan the sender sent, as
   * regenerate makes it (store/build/build.ts: a staging directory of its
   * own, link workers, the unchanged entries hard-linked from the newest
   * tree here, meta.json last, one rename), with the sender's generation
   * files written as they are.
   */
  private async buildFromPlan(): Promise<Pick<Done, 'linked' | 'created' | 'warnings'>> {
    const sent = this.sent
    if (sent === null) throw new ViewError('INTERNAL', 'a symlink view was to be built without its generation files', 'this is a bug in viewctl; please report it')
    const { layout } = this
    const hash = this.hello!.hash
    const { meta } = sent
    const plan = this.sentPlan!
    const options = { link: 'symlink' as const, fold: !!meta.options.fold, relative: !!meta.options.relative }
    const result: PlanResult = {
      options,
      prefixes: plan.prefixes,
      paths: plan.paths,
      kinds: plan.kinds,
      sources: plan.sources,
      conflicts: [],
      warnings: [],
      excluded: meta.counts.excluded ?? 0,
      hash,
      chunks: [sent.planText],
      identities: null,
    }
    const settings: BuildSettings = {
      file: meta.manifest,
      text: sent.manifestText,
      ...options,
      share: await sharesUnchanged(meta.manifest, sent.manifestText),
      conflicts: meta.options.conflicts as ConflictPolicy,
    }
    // the store state this receiver read when it took the lock
    const choice = chooseBase(layout, this.state!, settings)
    const built = await buildGeneration(layout, result, settings, {
      base: choice.base,
      signal: this.opts.signal,
      inFlight: this.guard!.filesystem.remote ? jobs(true) : undefined,
      received: { meta, text: sent.metaText },
    })
    let links = 0
    for (const k of plan.kinds) if (k !== Kind.Dir) links++
    // what sharing came to: a symlink of the tree here that no longer points where its plan says is made anew, and said
    const notes = [...(choice.note === null ? [] : [choice.note]), ...built.share.notes]
    return { linked: built.share.shared, created: built.built ? links - built.share.shared : 0, warnings: notes }
  }

  private readyForTree(state: ViewState, hello: Hello, stagingName: string): Ready {
    const { layout } = this
    const shows = state.hash
    const warnings: string[] = []
    if (shows === hello.hash && state.current !== null && isComplete(layout, hello.hash)) {
      if (sameSettings(recordSettings(state.current), hello.settings)) return { type: 'ready', action: 'noop', shows }
      // the same tree with other settings: the record alone would make them current, which --no-switch must not do
      if (hello.noSwitch) return { type: 'ready', action: 'noop', shows, warnings: [`${layout.view} shows this tree with other settings; --no-switch does not record new settings (that would make them current)`] }
    }
    if (hello.link === 'symlink') this.prefixCopies = this.plannedPrefixCopies(hello)
    if (isComplete(layout, hello.hash)) return { type: 'ready', action: 'record', shows, prefixCopies: this.prefixCopies, chmod: chmodFor(layout.store), warnings }
    // a symlink view's tree is made here from its plan
    if (hello.link === 'symlink') return { type: 'ready', action: 'build', shows, prefixCopies: this.prefixCopies, chmod: chmodFor(layout.store), warnings }
    const staging = path.join(layout.store, stagingName)
    this.staging = staging
    const resumed = fs.existsSync(staging)
    // rsync links each file that is the same in this tree, and the check after it looks at every entry
    const linkDest = newestTree(layout, state)
    return {
      type: 'ready',
      action: 'transfer',
      shows,
      staging,
      linkDest: linkDest === null ? null : generationDir(layout, linkDest.hash),
      resumed,
      prefixCopies: this.prefixCopies,
      chmod: chmodFor(layout.store),
      warnings,
    }
  }

  private readyToRebuild(state: ViewState, hello: Hello): Ready {
    const shows = state.hash
    if (shows !== null && state.current !== null && state.current.origin?.hash === hello.hash && isComplete(this.layout, shows) && sameSettings(recordSettings(state.current), hello.settings)) {
      return { type: 'ready', action: 'noop', shows }
    }
    return { type: 'ready', action: 'rebuild', shows }
  }

  /** Symlink views need their prefixes here, at the same paths: refuse before anything is sent, unless asked to copy them. */
  private plannedPrefixCopies(hello: Hello): PrefixCopy[] {
    const missing = hello.prefixes.filter((p) => !isDirectory(p))
    if (missing.length === 0) return []
    if (!hello.withPrefixes) throw missingPrefixes(this.layout, missing)
    return missing.map((p) => {
      const temp = path.join(path.dirname(p), `.${path.basename(p)}.viewctl-incoming`)
      try {
        fs.mkdirSync(path.dirname(p), { recursive: true })
        fs.mkdirSync(temp, { recursive: true })
      } catch (err) {
        throw translateOsError(err, `making room for the prefix ${p}`)
      }
      return { path: p, temp }
    })
  }

  /** rsync has filled each prefix's temporary name: rename it into place, unless a prefix appeared there meanwhile. */
  private placePrefixes(): void {
    for (const copy of this.prefixCopies) {
      if (fs.existsSync(copy.path)) {
        sfs.rmTree(copy.temp) // never over an existing prefix
        continue
      }
      try {
        sfs.rename(copy.temp, copy.path)
        sfs.fsyncDir(path.dirname(copy.path))
      } catch (err) {
        throw translateOsError(err, `moving the copied prefix ${copy.temp} to ${copy.path}`)
      }
    }
  }

  /** Step 3: the staging directory holds exactly the generation; then it becomes `<hash>`. */
  private sealStaging(): void {
    const { layout } = this
    const hash = this.hello!.hash
    const staging = this.staging!
    let finalReal: string
    try {
      finalReal = realGenerationDir(layout, hash)
    } catch (err) {
      throw translateOsError(err, `resolving ${layout.store}`)
    }
    let checked
    try {
      checked = checkReceivedTree(staging, finalReal, hash)
    } catch (err) {
      throw translateOsError(err, `checking the received tree ${staging}`)
    }
    if (checked.problems.length > 0) {
      // what arrived is not what was announced: never resume from it
      sfs.rmTree(staging)
      const hint = 'push again; if it happens again, run `viewctl verify` on the sending host'
      throw new ViewError('TRANSFER_FAILED', `the tree received in ${staging} does not match its plan (${describeProblems(checked.problems)}); it was removed`, hint, { problems: checked.problems.slice(0, 50) })
    }
    const finalDir = generationDir(layout, hash)
    try {
      if (fs.existsSync(finalDir)) sfs.rename(finalDir, trashDir(layout, hash)) // an incomplete tree under the final name
      sfs.rename(staging, finalDir)
      sfs.fsyncDir(layout.store)
    } catch (err) {
      throw translateOsError(err, `renaming ${staging} to ${finalDir}`)
    }
    this.staging = null
  }

  /** Before the swap: every link resolves here, or the push is refused with the missing prefixes. */
  private assertLinksResolve(dir: string): void {
    const plan = this.sentPlan ?? readGenerationPlan(this.layout, path.basename(dir))
    const missing = unresolvedLinks(plan)
    if (missing.count === 0) return
    if (missing.prefixes.length > 0) throw missingPrefixes(this.layout, missing.prefixes, missing.entries)
    const shown = missing.entries.slice(0, 10).join(', ')
    throw new ViewError(
      'PREFIX_MISSING',
      `${missing.count} link${missing.count === 1 ? '' : 's'} of the view would not resolve on ${os.hostname()}: the prefixes are here but lack ${shown}${missing.entries.length > 10 ? ` and ${missing.entries.length - 10} more` : ''}`,
      'install the same builds of the prefixes here (the same files at the same paths), or push with --with-prefixes after removing the differing ones; the view was not changed',
      { entries: missing.entries.slice(0, 100) },
    )
  }

  /** Step 4: one journal record, then the swap (unless --no-switch). */
  private recordAndPublish(hash: string, warnings: string[]): Done {
    const { layout } = this
    const hello = this.hello!
    const state = readViewState(layout)
    const sameTree = state.hash === hash && state.current !== null
    const generation = nextGenerationNumber(state)
    const record = newRecord({
      generation,
      hash,
      action: this.opts.action,
      argv: hello.argv,
      env: hello.settings.env,
      gc: hello.settings.gc,
      // a sender older than the setting sends none: no module tree
      modules: hello.settings.modules ?? null,
      origin: hello.origin,
      ...(hello.noSwitch && !sameTree ? { published: false } : {}),
    })
    // the view shows this tree already (other settings), or --no-switch: the record alone (store/build/publish.ts)
    try {
      warnings.push(...switchView(layout, state, record, this.guard!, { publish: !sameTree && !hello.noSwitch }))
    } catch (err) {
      throw translateOsError(err, `recording the ${this.opts.action} in ${layout.history}`)
    }
    this.recorded = record
    if (sameTree) return { type: 'done', generation, hash, switched: true, action: this.ready!.action, settingsChanged: true, warnings }
    if (hello.noSwitch) return { type: 'done', generation, hash, switched: false, action: this.ready!.action, settingsChanged: false, warnings }
    return { type: 'done', generation, hash, switched: true, action: this.ready!.action, settingsChanged: false, warnings }
  }

  private writeSession(): void {
    const session: SessionFile = {
      pid: process.pid,
      host: os.hostname(),
      hash: this.hello!.hash,
      destinations: [...(this.staging === null ? [] : [this.staging]), ...this.prefixCopies.map((c) => c.temp)],
    }
    writeSessionFile(this.layout, session)
  }

  private expectReady(): Ready {
    if (this.ready === null) throw new ViewError('INTERNAL', 'the receiving session was used before it was opened', 'this is a bug in viewctl; please report it')
    return this.ready
  }
}

/**
 * rsync's `--chmod` for trees in this store (DESIGN §13, store/guard/sharing.ts): nothing ever
 * writable by others; writable by the group where the store is (a
 * group-shared store, whose members collect each other's trees).
 */
export function chmodFor(store: string): string {
  const mode = fs.statSync(store).mode
  return mode & 0o020 ? 'o-w,g+w' : 'o-w'
}

function assertReceivable(state: ViewState): void {
  const { layout } = state
  if (state.kind !== 'managed') assertNoCollision(layout)
  if (state.kind === 'directory') {
    throw new ViewError('NOT_MANAGED', `${layout.view} is a real directory on ${os.hostname()}, not a view managed by viewctl; refusing to replace it`, 'move it away (or adopt it there with `viewctl regenerate --adopt`), or push to another view path')
  }
  if (state.kind === 'foreign') {
    throw new ViewError('NOT_MANAGED', `${layout.view} exists on ${os.hostname()} and is not a viewctl view (it is a file, or a symlink that does not point into ${layout.store})`, 'move it away, or push to another view path')
  }
}

function missingPrefixes(layout: Layout, prefixes: string[], entries: string[] = []): ViewError {
  const listed = prefixes.slice(0, 20).map((p) => `  ${p}`)
  if (prefixes.length > 20) listed.push(`  … and ${prefixes.length - 20} more`)
  return new ViewError(
    'PREFIX_MISSING',
    `${layout.view} on ${os.hostname()} would link to ${prefixes.length} prefix${prefixes.length === 1 ? '' : 'es'} that ${prefixes.length === 1 ? 'is' : 'are'} not there:\n${listed.join('\n')}`,
    'install them there at the same paths, or push with --with-prefixes to copy the missing ones; the view was not changed',
    { missingPrefixes: prefixes, missingEntries: entries.slice(0, 100) },
  )
}

function describeProblems(problems: ReceivedProblem[]): string {
  const shown = problems.slice(0, 5).map((p) => `${p.path}: ${p.problem}, ${p.detail}`)
  return `${problems.length}${problems.length >= 200 ? '+' : ''} problem${problems.length === 1 ? '' : 's'}: ${shown.join('; ')}`
}

/** A manifest's `share:` (default true): whether a generation made here from its plan shares from the newest tree here, as regenerate there would. */
async function sharesUnchanged(file: string, manifestText: string): Promise<boolean> {
  // the YAML parser is loaded only for a manifest that names the key at all (most do not)
  if (!manifestText.includes('share')) return true
  try {
    const { parseManifestText } = await import('../../manifest/yaml-source.js')
    return parseManifestText(file, manifestText).data.share !== false
  } catch {
    // the sender built from this manifest: a copy that does not parse here shares, as the default does
    return true
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(sfs.fsPath(p)).isDirectory()
  } catch {
    return false
  }
}
