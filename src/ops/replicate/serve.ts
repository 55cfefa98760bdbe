/**
 * The remote ends of the conversation (protocol.ts), as `viewctl receive`
 * and `viewctl send` run them over ssh: one session, driven by the
 * messages of the other end, over any pair of streams.
 */
import { ViewError, exitCodeFor, translateOsError } from '../../errors.js'
import { PLAN_FORMAT } from '../../plan/types.js'
import { Channel, DEFAULT_HEARTBEAT_MS } from './channel.js'
import { checkVersions, PROTOCOL, toWire } from './protocol.js'
import { greeting, ReceiveSession } from './receive.js'
import { openSource } from './source.js'

export const RECEIVE_LOST_HINT = 'the sending viewctl is gone (killed, or the network cut); the staging directory stays for the next push to resume'
export const SEND_LOST_HINT = 'the pulling viewctl is gone (killed, or the network cut); the lease on the generation is dropped'

/** `viewctl receive <view>`: returns the exit status. */
export async function serveReceive(view: string, channel: Channel, opts: { asStoreOwner?: boolean } = {}): Promise<number> {
  // the sender gone (or silent) while this end waits for the lock: stop waiting
  const session = new ReceiveSession(view, { action: 'push', signal: channel.signal, asStoreOwner: opts.asStoreOwner })
  let status = 0
  try {
    channel.send(greeting())
    const hello = await channel.receive('hello')
    channel.keepAlive(hello.heartbeatMs || DEFAULT_HEARTBEAT_MS)
    await session.within(hello, async (ready) => {
      channel.send(ready)
      if (ready.action === 'rebuild') session.acceptPlan((await channel.receive('plan')).text)
      let next = await channel.receive('generation', 'commit', 'abort')
      // a symlink view's generation files come after rsync copied the prefixes this host lacks, if any
      if (next.type === 'generation') {
        session.acceptGeneration(next)
        next = await channel.receive('commit', 'abort')
      }
      if (next.type === 'abort') {
        session.abort(next.discard)
        channel.send({ type: 'aborted', removed: next.discard })
        status = 1
        return
      }
      channel.send(await session.commit())
    })
  } catch (err) {
    const e = err instanceof ViewError ? err : translateOsError(err, `receiving into ${view}`)
    channel.send(toWire(e))
    return exitCodeFor(e.code)
  }
  if (status !== 0) return status
  channel.send({ type: 'gc', ...(await session.collect()) })
  return 0
}

/** `viewctl send <view>` (the far end of a pull): hold the generation's lease while the puller copies it. */
export async function serveSend(target: string, generation: string | undefined, channel: Channel): Promise<number> {
  let source
  try {
    const theirs = await channel.receive('greeting')
    channel.keepAlive(theirs.heartbeatMs || DEFAULT_HEARTBEAT_MS)
    checkVersions(theirs, { protocol: PROTOCOL, planFormat: PLAN_FORMAT }, `the pulling viewctl on ${theirs.host}`)
    source = await openSource(target, generation)
  } catch (err) {
    const e = err instanceof ViewError ? err : translateOsError(err, `sending ${target}`)
    channel.send(toWire(e))
    return exitCodeFor(e.code)
  }
  try {
    channel.send({ type: 'send', dir: source.dir, warnings: source.warnings, hello: source.hello({ noSwitch: false, withPrefixes: false, lockTimeout: 0, heartbeatMs: 0, argv: [] }) })
    for (;;) {
      const m = await channel.receive('commit', 'plan', 'generation')
      if (m.type === 'commit') return 0 // the puller is done with the tree
      // a request: the puller makes the tree from the plan (a symlink view), or checks its own against it (a hardlink view)
      channel.send(m.type === 'generation' ? source.generationFiles() : { type: 'plan', text: source.planText() })
    }
  } catch (err) {
    return err instanceof ViewError ? exitCodeFor(err.code) : 1
  } finally {
    source.release()
  }
}
