/**
 * pull: push with the roles swapped, for sites whose hosts may only
 * connect outwards. The writer is always on the host it writes: here.
 * One ssh connection runs `viewctl send` on the other host, which holds a
 * shared lease on the generation while it is copied (gc there leaves it
 * alone) and describes it; this host takes its own writer lock and does
 * every step a receiving push does (receive.ts), with rsync copying from
 * there into the staging directory here.
 */
import { ViewError, translateOsError } from '../../errors.js'
import { PLAN_FORMAT } from '../../plan/types.js'
import { parseDestination, type Destination } from './destination.js'
import { checkVersions, PROTOCOL, type Done, type Ready } from './protocol.js'
import { openRemote, type RemoteEnd } from './remote.js'
import { greeting, ReceiveSession } from './receive.js'
import { rsyncFailure, runRsync, type RsyncOutcome } from './rsync.js'
import { SEND_LOST_HINT } from './serve.js'
import { heartbeatMs, transferMode, type PushAction, type TransferMode } from './push.js'
import { storeSharing } from '../../store/guard/sharing.js'
import { DEFAULT_LOCK_TIMEOUT } from '../writer.js'

export interface PullOptions {
  /** A generation number or hash prefix there; default: its current one. */
  generation?: string
  noSwitch?: boolean
  /** Copy prefixes this host lacks (symlink views). */
  withPrefixes?: boolean
  ssh?: string
  remoteViewctl?: string
  lockTimeout?: number
  argv?: string[]
  onProgress?: (percent: number) => void
  signal?: AbortSignal
  /** Root pulling into a store another user owns becomes that owner first (the CLI asks for it). */
  asStoreOwner?: boolean
}

export interface PullResult {
  /** The view here. */
  view: string
  /** Where it came from, as given. */
  from: string
  /** The generation there, and its hash. */
  source: { generation: number | null; hash: string }
  action: PushAction
  generation: number | null
  hash: string
  switched: boolean
  settingsChanged: boolean
  resumed: boolean
  mode?: TransferMode
  linked?: number
  created?: number
  gc: { removed: number; warnings: string[] }
  warnings: string[]
  elapsedMs: number
}

export async function pull(from: string, view: string, opts: PullOptions = {}): Promise<PullResult> {
  const started = performance.now()
  const source = parseDestination(from)
  const ssh = opts.ssh ?? 'ssh'
  const remoteViewctl = opts.remoteViewctl ?? 'viewctl'
  const beat = heartbeatMs()
  const remote = openRemote(source, ssh, remoteViewctl, ['send', source.view, ...(opts.generation === undefined ? [] : ['--generation', opts.generation])], SEND_LOST_HINT)
  const { channel } = remote
  // the other end gone, or this one interrupted: a lock wait or a build here stops
  const signal = opts.signal ? AbortSignal.any([channel.signal, opts.signal]) : channel.signal
  const session = new ReceiveSession(view, { action: 'pull', signal, asStoreOwner: opts.asStoreOwner })
  const warnings: string[] = []
  let done: Done
  let ready: Ready
  let sourceInfo: PullResult['source']
  try {
    try {
      channel.send({ ...greeting(), heartbeatMs: beat })
      channel.keepAlive(beat)
      const info = await channel.receive('send')
      checkVersions(info.hello, { protocol: PROTOCOL, planFormat: PLAN_FORMAT }, `the viewctl on ${source.login}`)
      warnings.push(...info.warnings.map((w) => `${source.login}: ${w}`))
      sourceInfo = { generation: info.hello.origin.generation, hash: info.hello.hash }
      const hello = { ...info.hello, noSwitch: !!opts.noSwitch, withPrefixes: !!opts.withPrefixes, lockTimeout: opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT, heartbeatMs: beat, argv: opts.argv ?? process.argv.slice(1) }
      ;[ready, done] = await session.within(hello, async (r) => {
        warnings.push(...(r.warnings ?? []))
        await fetchTree(session, source, info.dir, r, remote, { ssh, onProgress: opts.onProgress, signal })
        const d = await session.commit()
        warnings.push(...d.warnings)
        return [r, d] as const
      })
    } catch (err) {
      throw await remote.explain(err)
    }
    channel.send({ type: 'commit' }) // the sender drops its lease
  } catch (err) {
    throw err instanceof ViewError ? err : translateOsError(err, `pulling ${from} into ${view}`)
  } finally {
    await remote.close()
  }
  const gc = await session.collect()
  warnings.push(...gc.warnings.map((w) => `gc: ${w}`))
  return {
    view: session.layout.view,
    from,
    source: sourceInfo,
    action: done.action === 'noop' ? 'noop' : done.action === 'record' ? 'recorded' : done.action === 'rebuild' ? 'rebuilt' : 'pushed',
    generation: done.generation,
    hash: done.hash,
    switched: done.switched,
    settingsChanged: done.settingsChanged,
    resumed: ready.resumed ?? false,
    mode: transferMode(ready.action),
    linked: done.linked,
    created: done.created,
    gc,
    warnings,
    elapsedMs: performance.now() - started,
  }
}

/**
 * What comes from there: a symlink view's generation files (the tree is made
 * here from its plan) or a hardlink view's plan, on the conversation; with
 * rsync, the prefixes this host lacks and a copy view's tree, into the
 * staging directory here.
 */
async function fetchTree(session: ReceiveSession, source: Destination, dir: string, ready: Ready, remote: RemoteEnd, opts: { ssh: string; onProgress?: (percent: number) => void; signal: AbortSignal }): Promise<void> {
  const { channel } = remote
  const planText = async () => {
    channel.send({ type: 'plan', text: '' }) // a request: the sender answers with the generation's plan
    return (await channel.receive('plan')).text
  }
  if (ready.action === 'rebuild') {
    session.acceptPlan(await planText())
    return
  }
  if (ready.action === 'build') {
    channel.send({ type: 'generation', plan: '', meta: '', manifest: '' }) // a request: the sender answers with the generation's files
    session.acceptGeneration(await channel.receive('generation'))
  }
  if (ready.action !== 'transfer' && ready.action !== 'record' && ready.action !== 'build') return
  const { signal } = opts
  const chmod = ready.chmod ?? 'o-w'
  const fail = (outcome: RsyncOutcome, what: string): never => {
    if (channel.failed !== null) throw channel.failed
    session.abort(outcome.diskFull)
    throw rsyncFailure(outcome, what)
  }
  // rsync writes here with this store's umask, as the guard gives a push's rsync there
  const here = (t: Parameters<typeof runRsync>[0]) => withUmask(storeSharing(session.layout).umask, () => runRsync(t))
  for (const copy of ready.prefixCopies ?? []) {
    const outcome = await here({ from: `${source.rsyncHost}:${copy.path}`, to: copy.temp, ssh: opts.ssh, chmod, signal })
    if (outcome.code !== 0) fail(outcome, `copying the prefix ${copy.path} from ${source.login}`)
  }
  // a symlink view's tree is made here from its plan at the commit
  if (ready.action === 'record' || ready.action === 'build') return
  const outcome = await here({ from: `${source.rsyncHost}:${dir}`, to: ready.staging!, ssh: opts.ssh, chmod, linkDest: ready.linkDest ?? null, onProgress: opts.onProgress, signal })
  if (outcome.code !== 0) fail(outcome, `copying ${source.spec}`)
}

/** Start `fn` (which spawns) under `mask`: a child keeps the umask it was started with. */
async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const previous = process.umask(mask)
  let promise: Promise<T>
  try {
    promise = fn()
  } finally {
    process.umask(previous)
  }
  return promise
}
