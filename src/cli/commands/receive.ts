/**
 * `viewctl receive <view>` is what a push runs on the remote host, over ssh:
 * the conversation is on stdin and stdout, so nothing else may be printed
 * there. With `--rsync -- <rsync server arguments>` it is the guard that
 * push's rsync runs instead of rsync itself (ops/replicate/guard.ts).
 */
import { Channel } from '../../ops/replicate/channel.js'
import { runGuardedRsync } from '../../ops/replicate/guard.js'
import { RECEIVE_LOST_HINT, serveReceive } from '../../ops/replicate/serve.js'
import { Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { view: string; rsync: boolean; '--'?: Array<string | number> }, out: Output): Promise<number> {
  try {
    // root receiving into another user's store acts as its owner (DESIGN §13)
    if (args.rsync) return await runGuardedRsync(args.view, (args['--'] ?? []).map(String), { asStoreOwner: true })
    return await serveReceive(args.view, new Channel(process.stdin, process.stdout, 'the sending viewctl', RECEIVE_LOST_HINT), { asStoreOwner: true })
  } catch (err) {
    // stdout carries the conversation (or rsync's protocol): the error goes to stderr only
    return new Output({ json: false, quiet: false, debug: out.flags.debug }).fail(err)
  }
}
