/**
 * push: copy one generation of a local view to other hosts and publish it
 * there, the remote host doing all its own writing (docs/replication.md).
 *
 * The generation is leased here for the whole push (gc here leaves it
 * alone; no writer lock, so regenerates here go on). For each destination,
 * at most `parallel` at once: one ssh connection runs `viewctl receive`
 * there (the conversation of protocol.ts), rsync fills the staging
 * directory it names over a connection of its own, and the receiver checks,
 * records and switches. Each destination is reported; the result's exit
 * code is 0 only if all succeeded, else that of the first failed one in the
 * order given.
 */
import { ViewError, exitCodeFor, translateOsError } from '../../errors.js'
import { DEFAULT_HEARTBEAT_MS } from './channel.js'
import { parseDestination, remoteCommand, type Destination } from './destination.js'
import { checkVersions, PROTOCOL, type Done, type Ready, type ReadyAction } from './protocol.js'
import { PLAN_FORMAT } from '../../plan/types.js'
import { openRemote, type RemoteEnd } from './remote.js'
import { rsyncFailure, runRsync } from './rsync.js'
import { RECEIVE_LOST_HINT } from './serve.js'
import { openSource, type SourceGeneration } from './source.js'
import { DEFAULT_LOCK_TIMEOUT } from '../writer.js'

export interface PushOptions {
  /** A generation number or hash prefix; default: the current one. */
  generation?: string
  /** Copy and record, do not publish (a staged roll-out). */
  noSwitch?: boolean
  /** Copy prefixes that a destination lacks (symlink views). */
  withPrefixes?: boolean
  /** The ssh command and its options (rsync's -e); default `ssh`. */
  ssh?: string
  /** The viewctl command on the remote hosts (rsync's --rsync-path); default `viewctl`. */
  remoteViewctl?: string
  /** Seconds each remote waits for its writer lock. */
  lockTimeout?: number
  /** Destinations at once (default 8). */
  parallel?: number
  argv?: string[]
  onProgress?: (event: PushProgress) => void
  signal?: AbortSignal
}

export interface PushProgress {
  destination: string
  phase: 'connecting' | 'transferring' | 'finishing' | 'done' | 'failed'
  /** Of the transfer, when rsync reports it. */
  percent?: number
}

export type PushAction = 'noop' | 'pushed' | 'recorded' | 'rebuilt'

export interface DestinationResult {
  destination: string
  host: string
  view: string
  ok: boolean
  exitCode: number
  action?: PushAction
  /** The generation recorded there (null for a no-op on a view without records). */
  generation?: number | null
  /** The hash recorded there (a hardlink view's differs from the source's). */
  hash?: string
  switched?: boolean
  settingsChanged?: boolean
  /** An interrupted push of the same generation was resumed. */
  resumed?: boolean
  /** `plan`: a symlink view, made there from its plan; `full`: a copy view, sent by rsync (unchanged files linked there from its newest tree). */
  mode?: TransferMode
  /** Mode `plan`: entries hard-linked from the newest tree there, and entries made anew. */
  linked?: number
  created?: number
  gc?: { removed: number; warnings: string[] }
  warnings: string[]
  elapsedMs: number
  error?: { code: string; message: string; hint: string; details?: Record<string, unknown> }
}

export interface PushResult {
  view: string
  hash: string
  generation: number | null
  ok: boolean
  exitCode: number
  destinations: DestinationResult[]
  warnings: string[]
  elapsedMs: number
}

export type TransferMode = 'plan' | 'full'

/** How the tree travelled, by what the receiver asked for: a symlink view's plan (`build`), or a copy view's tree by rsync (`transfer`). */
export function transferMode(action: ReadyAction): TransferMode | undefined {
  return action === 'build' ? 'plan' : action === 'transfer' ? 'full' : undefined
}

export const DEFAULT_PARALLEL = 8

export async function push(target: string, destinations: string[], opts: PushOptions = {}): Promise<PushResult> {
  const started = performance.now()
  if (destinations.length === 0) throw new ViewError('USAGE', 'push needs at least one destination', 'e.g. viewctl push /opt/views/hpc node17:/opt/views/hpc')
  const parsed = destinations.map(parseDestination)
  const parallel = opts.parallel ?? DEFAULT_PARALLEL
  if (!Number.isInteger(parallel) || parallel < 1) throw new ViewError('USAGE', `--parallel ${parallel}: expected a whole number, 1 or more`, 'e.g. --parallel 8 (the default)')
  const source = await openSource(target, opts.generation)
  try {
    const results: DestinationResult[] = new Array(parsed.length)
    let next = 0
    const worker = async () => {
      while (next < parsed.length) {
        const i = next++
        results[i] = await pushOne(source, parsed[i]!, opts)
      }
    }
    await Promise.all(Array.from({ length: Math.min(parallel, parsed.length) }, worker))
    const failed = results.find((r) => !r.ok)
    return {
      view: source.layout.view,
      hash: source.hash,
      generation: source.generation,
      ok: failed === undefined,
      exitCode: failed?.exitCode ?? 0,
      destinations: results,
      warnings: source.warnings,
      elapsedMs: performance.now() - started,
    }
  } finally {
    source.release()
  }
}

/** The heartbeat of a push; tests shorten it (VIEWCTL_PUSH_HEARTBEAT_MS) to see a cut network sooner. */
export function heartbeatMs(): number {
  const ms = Number(process.env.VIEWCTL_PUSH_HEARTBEAT_MS)
  return Number.isFinite(ms) && ms > 0 ? ms : DEFAULT_HEARTBEAT_MS
}

async function pushOne(source: SourceGeneration, dest: Destination, opts: PushOptions): Promise<DestinationResult> {
  const started = performance.now()
  const base = { destination: dest.spec, host: dest.login, view: dest.view, warnings: [] as string[] }
  const progress = (phase: PushProgress['phase'], percent?: number) => opts.onProgress?.({ destination: dest.spec, phase, percent })
  const ssh = opts.ssh ?? 'ssh'
  const remoteViewctl = opts.remoteViewctl ?? 'viewctl'
  progress('connecting')
  let remote: RemoteEnd | null = null
  try {
    remote = openRemote(dest, ssh, remoteViewctl, ['receive', dest.view], RECEIVE_LOST_HINT)
    const { channel } = remote
    const greet = await channel.receive('greeting')
    checkVersions(greet, { protocol: PROTOCOL, planFormat: PLAN_FORMAT }, `the viewctl on ${dest.login}`)
    const beat = heartbeatMs()
    channel.keepAlive(beat)
    channel.send(source.hello({ noSwitch: !!opts.noSwitch, withPrefixes: !!opts.withPrefixes, lockTimeout: opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT, heartbeatMs: beat, argv: opts.argv ?? process.argv.slice(1) }))
    const ready = await channel.receive('ready')
    base.warnings.push(...(ready.warnings ?? []))
    await sendTree(source, dest, ready, remote, { ssh, remoteViewctl, onProgress: (p) => progress('transferring', p), signal: opts.signal })
    if (opts.signal?.aborted) {
      // interrupted (SIGINT, SIGTERM) before the commit: the receiver lets it go, nothing is switched there
      channel.send({ type: 'abort', discard: false, reason: 'interrupted' })
      try {
        await channel.receive('aborted')
      } catch {
        // gone already: its lock went with it
      }
      throw new ViewError('INTERRUPTED', `interrupted before ${dest.spec} was switched; the view there was not changed`, 'push again when ready')
    }
    progress('finishing')
    channel.send({ type: 'commit' })
    const done: Done = await channel.receive('done')
    base.warnings.push(...done.warnings)
    let gc: DestinationResult['gc']
    try {
      const report = await channel.receive('gc')
      gc = { removed: report.removed, warnings: report.warnings }
      base.warnings.push(...report.warnings.map((w) => `gc there: ${w}`))
    } catch {
      base.warnings.push('the remote gc did not report (the connection ended after the switch)')
    }
    progress('done')
    return {
      ...base,
      ok: true,
      exitCode: 0,
      action: actionOf(done),
      generation: done.generation,
      hash: done.hash,
      switched: done.switched,
      settingsChanged: done.settingsChanged,
      resumed: ready.resumed ?? false,
      mode: transferMode(ready.action),
      linked: done.linked,
      created: done.created,
      gc,
      elapsedMs: performance.now() - started,
    }
  } catch (err) {
    progress('failed')
    const explained = remote === null ? err : await remote.explain(err)
    const e = explained instanceof ViewError ? explained : translateOsError(explained, `pushing to ${dest.spec}`)
    const message = e.message.includes(dest.login) ? e.message : `${dest.spec}: ${e.message}`
    return { ...base, ok: false, exitCode: exitCodeFor(e.code), error: { code: e.code, message, hint: e.hint, details: e.details }, elapsedMs: performance.now() - started }
  } finally {
    await remote?.close()
  }
}

function actionOf(done: Done): PushAction {
  if (done.action === 'noop') return 'noop'
  if (done.action === 'record') return 'recorded'
  if (done.action === 'rebuild') return 'rebuilt'
  return 'pushed'
}

interface TransferOptions {
  ssh: string
  remoteViewctl: string
  onProgress: (percent: number) => void
  signal?: AbortSignal
}

/**
 * What travels for one destination: a symlink view's generation files on
 * the conversation (the tree is made there from its plan), a hardlink
 * view's plan (it is rebuilt there from its manifest); with rsync, the
 * prefixes it lacks (each into its temporary name) and a copy view's tree.
 * A failed rsync is reported to the receiver, which keeps the staging
 * directory for the next push, or removes it when the disk is full.
 */
async function sendTree(source: SourceGeneration, dest: Destination, ready: Ready, remote: RemoteEnd, opts: TransferOptions): Promise<void> {
  const { channel } = remote
  if (ready.action === 'rebuild') {
    channel.send({ type: 'plan', text: source.planText() })
    return
  }
  if (ready.action !== 'transfer' && ready.action !== 'record' && ready.action !== 'build') return
  const guard = remoteCommand(opts.remoteViewctl, ['receive', dest.view, '--rsync', '--'])
  // rsync stops the moment the conversation does (the receiver gone, a cut network)
  const signal = opts.signal ? AbortSignal.any([opts.signal, channel.signal]) : channel.signal
  const chmod = ready.chmod ?? 'o-w'
  const fail = async (outcome: Awaited<ReturnType<typeof runRsync>>, what: string) => {
    // rsync stopped because the conversation did: say that, not what rsync said about being stopped
    const lost = channel.failed
    if (lost !== null) throw lost
    channel.send({ type: 'abort', discard: outcome.diskFull, reason: what })
    try {
      await channel.receive('aborted')
    } catch {
      // the receiver is gone: its staging stays for the next push
    }
    throw rsyncFailure(outcome, what)
  }
  for (const copy of ready.prefixCopies ?? []) {
    const outcome = await runRsync({ from: copy.path, to: `${dest.rsyncHost}:${copy.temp}`, ssh: opts.ssh, rsyncPath: guard, chmod, signal })
    if (outcome.code !== 0) await fail(outcome, `copying the prefix ${copy.path} to ${dest.spec}`)
  }
  if (ready.action === 'record') return
  if (ready.action === 'build') {
    // after the prefixes: a refusal of these files is then the receiver's last word, not a failed rsync's
    channel.send(source.generationFiles())
    return
  }
  const outcome = await runRsync({
    from: source.dir,
    to: `${dest.rsyncHost}:${ready.staging!}`,
    ssh: opts.ssh,
    rsyncPath: guard,
    chmod,
    linkDest: ready.linkDest ?? null,
    onProgress: opts.onProgress,
    signal,
  })
  if (outcome.code !== 0) await fail(outcome, `copying generation ${source.hash.slice(0, 12)} to ${dest.spec}`)
}
