/**
 * `viewctl send <view>` is what a pull runs on the other host, over ssh: it
 * holds a lease on the generation while the puller copies it. The
 * conversation is on stdin and stdout, so nothing else may be printed there.
 */
import { Channel } from '../../ops/replicate/channel.js'
import { SEND_LOST_HINT, serveSend } from '../../ops/replicate/serve.js'
import { Output } from '../render.js'
import type { GlobalArgs } from '../args.js'

export async function run(args: GlobalArgs & { view: string; generation?: string }, out: Output): Promise<number> {
  try {
    return await serveSend(args.view, args.generation, new Channel(process.stdin, process.stdout, 'the pulling viewctl', SEND_LOST_HINT))
  } catch (err) {
    return new Output({ json: false, quiet: false, debug: out.flags.debug }).fail(err)
  }
}
