import { pin, unpin, type PinResult } from '../../ops/pin.js'
import { shortHash, type Output } from '../render.js'
import { writerOptions, type GlobalArgs } from '../args.js'

type PinArgs = GlobalArgs & { target: string; generation: string | number; dryRun: boolean }

export async function runPin(args: PinArgs, out: Output): Promise<number> {
  return change(pin, args, out)
}

export async function runUnpin(args: PinArgs, out: Output): Promise<number> {
  return change(unpin, args, out)
}

async function change(op: typeof pin, args: PinArgs, out: Output): Promise<number> {
  try {
    const r: PinResult = await op(args.target, String(args.generation), { dryRun: args.dryRun, ...writerOptions(args, (w) => out.warn(w)) })
    out.result(r, () => {
      const what = `generation ${r.generation} (${shortHash(r.hash)}) of ${r.view}`
      if (r.dryRun) return r.changed ? `dry run: would ${r.pinned ? 'pin' : 'unpin'} ${what}; nothing changed` : `dry run: ${what} ${r.pinned ? 'is already pinned' : 'is not pinned'}; nothing would change`
      if (!r.changed) return `${what} ${r.pinned ? 'was already pinned' : 'was not pinned'}`
      return r.pinned ? `pinned ${what}: gc will not remove it` : `unpinned ${what}: gc may remove it once it is past the ttl and the spares`
    })
    return 0
  } catch (err) {
    return out.fail(err)
  }
}
