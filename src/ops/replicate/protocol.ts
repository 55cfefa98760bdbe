/**
 * The conversation between the two ends of a push or pull (docs/replication.md).
 *
 * One ssh connection carries it: JSON objects, one a line, both ways. The
 * receiving end (the host that writes) speaks first with a greeting that
 * names its protocol and plan format; the sending end checks them before it
 * says anything else, and the receiver checks the sender's in the hello.
 * Two viewctl versions work together whenever these two numbers agree: the
 * tool version is reported, never compared.
 *
 *   receiver                               sender
 *   greeting {protocol, planFormat}  ->
 *                                    <-    hello {hash, link, prefixes, settings, origin, …}
 *   (takes the writer lock: waiting …)
 *   ready {action, staging, …}       ->
 *                                    <-    plan {text}            action `rebuild` (a hardlink view)
 *                                          (rsync, over its own connection: the prefixes to copy, if
 *                                          any, and for action `transfer` (a copy view) the staging
 *                                          directory)
 *                                    <-    generation {plan, meta, manifest}   action `build` (a
 *                                          symlink view: the receiver makes the tree from the plan)
 *                                    <-    commit | abort {discard}
 *   done {generation, switched, …}   ->
 *   gc {…}                           ->    the receiver's own gc, after it released the lock
 *
 * Either side sends `ping` every heartbeat; a side that hears nothing for
 * `idleMs` takes the connection for lost (a cut network, a hung host), so a
 * receiver never holds its lock for a sender that is gone.
 */
import { ViewError, type ErrorCode } from '../../errors.js'
import type { LinkMode } from '../../manifest/types.js'
import type { RecordOrigin } from '../../store/journal/history.js'
import type { Settings } from '../settings.js'

/** Bumped whenever a message changes meaning; both ends must agree. */
export const PROTOCOL = 2

export interface Greeting {
  type: 'greeting'
  protocol: number
  planFormat: number
  tool: string
  host: string
  /** A puller's heartbeat, for the sending end (a pusher's is in its hello). */
  heartbeatMs?: number
}

/** The far end of a pull describes the generation it holds a lease on. */
export interface SendInfo {
  type: 'send'
  /** The tree on that host, for rsync. */
  dir: string
  hello: Hello
  warnings: string[]
}

export interface Hello {
  type: 'hello'
  protocol: number
  planFormat: number
  tool: string
  /** The generation's hash on the sending host. */
  hash: string
  link: LinkMode
  /** meta.json's options: link, fold, relative, conflicts. */
  options: { link: string; fold: boolean; relative: boolean; conflicts: string }
  /** The prefixes the generation links to (absolute). */
  prefixes: string[]
  entries: number
  settings: Settings
  origin: RecordOrigin
  /** Record and keep the tree, do not publish it. */
  noSwitch: boolean
  /** Copy prefixes the receiving host lacks (symlink views). */
  withPrefixes: boolean
  lockTimeout: number
  heartbeatMs: number
  /** The sending command line, for the receiver's lock file and journal. */
  argv: string[]
  /** A hardlink view travels as its manifest (the text of its `.viewctl/manifest.yaml`). */
  manifestText?: string
  /** Where that manifest was, on the sending host (relative prefix paths in it resolve from there). */
  manifestFile?: string
}

export type ReadyAction =
  /** The view shows this generation with these settings already. */
  | 'noop'
  /** The tree is on disk: only record (and switch). */
  | 'record'
  /** A symlink view: the sender sends the generation's files, and the receiver makes the tree from its plan (its links are a function of the plan, which hashes to the generation's name). */
  | 'build'
  /** A copy view: rsync fills `staging`. */
  | 'transfer'
  /** A hardlink view: the receiver plans and builds from its own prefixes. */
  | 'rebuild'

export interface PrefixCopy {
  /** The prefix path, the same on both hosts. */
  path: string
  /** Where rsync puts it first, beside it; renamed into place once complete, never over an existing prefix. */
  temp: string
}

export interface Ready {
  type: 'ready'
  action: ReadyAction
  /** The hash the view shows now, if any. */
  shows: string | null
  /** rsync's destination (action `transfer`). */
  staging?: string
  /** The receiver's newest tree, for `--link-dest`. */
  linkDest?: string | null
  /** The staging directory was there already: an interrupted push resumes. */
  resumed?: boolean
  /** Prefixes to copy first (`--with-prefixes`). */
  prefixCopies?: PrefixCopy[]
  /** rsync's `--chmod` for this store (owners and modes follow the receiving store, not the sender). */
  chmod?: string
  warnings?: string[]
}

export interface PlanMessage {
  type: 'plan'
  text: string
}

/** A symlink view's generation files, as they are on the sending host: the receiver checks them against the hash and builds the tree from the plan. */
export interface GenerationFiles {
  type: 'generation'
  /** `.viewctl/plan.tsv`. */
  plan: string
  /** `.viewctl/meta.json`. */
  meta: string
  /** `.viewctl/manifest.yaml`. */
  manifest: string
}

export interface Commit {
  type: 'commit'
}

export interface Abort {
  type: 'abort'
  /** Remove the staging directory (a full disk); otherwise it stays for the next push to resume. */
  discard: boolean
  reason: string
}

export interface Done {
  type: 'done'
  generation: number | null
  /** The hash recorded (for a hardlink view, the receiver's own). */
  hash: string
  switched: boolean
  action: ReadyAction
  settingsChanged: boolean
  /** Action `build`: entries hard-linked from the newest tree there, and entries made anew. */
  linked?: number
  created?: number
  warnings: string[]
}

export interface Aborted {
  type: 'aborted'
  /** The staging directory was removed (else it stays for the next push to resume). */
  removed: boolean
}

export interface GcReport {
  type: 'gc'
  removed: number
  warnings: string[]
}

export interface WireError {
  type: 'error'
  code: string
  message: string
  hint: string
  details?: Record<string, unknown>
}

export interface Ping {
  type: 'ping'
}

export type Message = Greeting | SendInfo | Hello | Ready | PlanMessage | GenerationFiles | Commit | Abort | Aborted | Done | GcReport | WireError | Ping

export function toWire(err: ViewError): WireError {
  return { type: 'error', code: err.code, message: err.message, hint: err.hint, details: err.details }
}

/** An error the other end reported, as a ViewError with its code (an unknown code from a newer viewctl exits 1). */
export function fromWire(err: WireError, where: string): ViewError {
  return new ViewError(err.code as ErrorCode, `${where}: ${err.message}`, err.hint, err.details)
}

/** Both ends agree on these, or nothing is done. */
export function checkVersions(theirs: { protocol?: unknown; planFormat?: unknown; tool?: unknown }, ours: { protocol: number; planFormat: number }, where: string): void {
  if (theirs.protocol === ours.protocol && theirs.planFormat === ours.planFormat) return
  const tool = typeof theirs.tool === 'string' ? ` (viewctl ${theirs.tool})` : ''
  throw new ViewError(
    'PROTOCOL_MISMATCH',
    `${where}${tool} speaks push protocol ${String(theirs.protocol)} with plan format ${String(theirs.planFormat)}; this viewctl speaks protocol ${ours.protocol} with plan format ${ours.planFormat}`,
    'install a viewctl on both hosts whose push protocol and plan format agree (`viewctl --version` on each); nothing was changed',
  )
}
