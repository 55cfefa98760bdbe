/**
 * One JSON object a line over a pair of streams (an ssh child's pipes, or a
 * process's own stdin and stdout), with a heartbeat each way.
 *
 * Lines that are not JSON before the first message are kept, not fatal: a
 * login shell that prints a banner or a warning on stdout would otherwise
 * look like a broken protocol (rsync says "is your shell clean?"); they are
 * shown when the conversation fails. After the first message, such a line
 * is a broken conversation.
 */
import type { Readable, Writable } from 'node:stream'
import { ViewError } from '../../errors.js'
import type { Message, WireError } from './protocol.js'

/** How often each side says it is alive, unless the sender asks for another pace. */
export const DEFAULT_HEARTBEAT_MS = 5000
/** A side that hears nothing for this many heartbeats takes the connection for lost. */
export const IDLE_HEARTBEATS = 12

export type Received<T extends Message['type']> = Extract<Message, { type: T }>

export class Channel {
  /** The pieces of a line not yet ended (a plan of megabytes arrives in many chunks). */
  private pending: string[] = []
  private readonly queue: Message[] = []
  private waiter: { resolve: (m: Message) => void; reject: (e: Error) => void } | null = null
  private failure: ViewError | null = null
  private started = false
  private heartbeat: NodeJS.Timeout | null = null
  private idleTimer: NodeJS.Timeout | null = null
  private idleMs = 0
  /** Non-JSON lines seen before the first message (a chatty login shell). */
  readonly noise: string[] = []
  private readonly failedController = new AbortController()
  /** Aborted when the conversation fails: for work that must stop with it (an rsync). */
  readonly signal: AbortSignal = this.failedController.signal

  /**
   * `peer` names the other end in errors ("node17:/opt/views/hpc").
   * `lostHint` says what the loss means for this side.
   */
  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    private readonly peer: string,
    private readonly lostHint: string,
  ) {
    input.setEncoding('utf8')
    input.on('data', (chunk: string) => this.onData(chunk))
    input.on('end', () => this.fail(this.lost('closed the connection')))
    input.on('error', (err) => this.fail(this.lost(`broke the connection (${err.message})`)))
    output.on('error', () => this.fail(this.lost('stopped reading')))
  }

  /** Ping every `ms`, and fail when nothing arrives for IDLE_HEARTBEATS of them. */
  keepAlive(ms: number): void {
    this.stopTimers()
    this.idleMs = ms * IDLE_HEARTBEATS
    this.heartbeat = setInterval(() => this.send({ type: 'ping' }), ms)
    this.heartbeat.unref()
    this.touch()
  }

  send(message: Message): void {
    if (this.failure !== null && this.failure.code === 'CONNECTION_LOST') return
    try {
      this.output.write(lineOf(message))
    } catch {
      // a closed pipe: reported by the 'error' handler and the next receive
    }
  }

  /** The next message that is not a ping; an error message from the other end is thrown as a ViewError. */
  async receive<T extends Message['type']>(...types: T[]): Promise<Received<T>> {
    const message = await this.next()
    if (message.type === 'error' && !types.includes('error' as T)) {
      const e = message as WireError
      throw new ViewError(e.code as never, e.message, e.hint, e.details)
    }
    if (!types.includes(message.type as T)) {
      throw new ViewError('PROTOCOL_MISMATCH', `${this.peer} sent \`${message.type}\` where this viewctl expected ${types.map((t) => `\`${t}\``).join(' or ')}`, 'install a viewctl on both hosts whose push protocol agrees (`viewctl --version`)')
    }
    return message as Received<T>
  }

  /** End with an error: every pending and later receive throws it. */
  fail(err: ViewError): void {
    if (this.failure !== null) return
    this.failure = err
    this.stopTimers()
    this.failedController.abort(err)
    const w = this.waiter
    this.waiter = null
    w?.reject(err)
  }

  /** Stop the heartbeat and close our side (the other end sees the end of its input). */
  close(): void {
    this.stopTimers()
    this.failure ??= new ViewError('CONNECTION_LOST', `the conversation with ${this.peer} is over`, '')
    try {
      this.output.end()
    } catch {
      // closed already
    }
    this.input.pause()
  }

  get failed(): ViewError | null {
    return this.failure
  }

  /** A message arrived (the other end speaks the protocol, whatever it said). */
  get spoke(): boolean {
    return this.started
  }

  private next(): Promise<Message> {
    const m = this.queue.shift()
    if (m !== undefined) return Promise.resolve(m)
    if (this.failure !== null) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject }
    })
  }

  private onData(chunk: string): void {
    this.touch()
    // each chunk is searched once: a long line is joined when its end arrives
    let start = 0
    let nl: number
    while ((nl = chunk.indexOf('\n', start)) !== -1) {
      const piece = chunk.slice(start, nl)
      const line = this.pending.length === 0 ? piece : this.pending.join('') + piece
      this.pending = []
      start = nl + 1
      this.onLine(line)
    }
    if (start < chunk.length) this.pending.push(start === 0 ? chunk : chunk.slice(start))
  }

  private onLine(line: string): void {
    if (line.trim() === '') return
    let message: Message
    try {
      message = JSON.parse(line) as Message
      if (typeof message !== 'object' || message === null || typeof message.type !== 'string') throw new Error('not a message')
    } catch {
      if (!this.started) {
        if (this.noise.length < 20) this.noise.push(line.slice(0, 500))
        return
      }
      this.fail(new ViewError('PROTOCOL_MISMATCH', `${this.peer} sent a line that is not part of the push protocol: ${JSON.stringify(line.slice(0, 200))}`, this.lostHint))
      return
    }
    this.started = true
    if (message.type === 'ping') return
    const w = this.waiter
    if (w !== null) {
      this.waiter = null
      w.resolve(message)
    } else this.queue.push(message)
  }

  private touch(): void {
    if (this.idleMs === 0) return
    if (this.idleTimer !== null) this.idleTimer.refresh()
    else {
      this.idleTimer = setTimeout(() => this.fail(this.lost(`said nothing for ${Math.round(this.idleMs / 1000)} s`)), this.idleMs)
      this.idleTimer.unref()
    }
  }

  private stopTimers(): void {
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    if (this.idleTimer !== null) clearTimeout(this.idleTimer)
    this.heartbeat = null
    this.idleTimer = null
  }

  private lost(what: string): ViewError {
    const noise = this.noise.length ? ` (before that it printed: ${this.noise.slice(0, 3).map((l) => JSON.stringify(l)).join(', ')})` : ''
    return new ViewError('CONNECTION_LOST', `the connection to ${this.peer} was lost: it ${what}${noise}`, this.lostHint)
  }
}

/** Lines of megabytes (a plan), serialized once however many destinations a push sends them to. */
const LARGE = 65_536
const large = new WeakMap<Message, string>()

function lineOf(message: Message): string {
  const known = large.get(message)
  if (known !== undefined) return known
  const line = JSON.stringify(message) + '\n'
  if (line.length >= LARGE) large.set(message, line)
  return line
}
