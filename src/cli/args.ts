/**
 * The options every command is given, whatever it does (spec.ts declares
 * them for the parser). A type of its own, below main.ts, so that the
 * commands, which main.ts loads, need not import main.ts back.
 */
import type { WriterOptions } from '../ops/writer.js'
import type { OutputFlags } from './render.js'

export interface GlobalArgs extends OutputFlags {
  lockTimeout: number
  lock: boolean
}

/**
 * What every writing command passes to its library call: the lock options,
 * the command line for the journal, warnings printed as they come, and
 * `asStoreOwner`: a command run by root on a store another user owns acts as
 * that owner (DESIGN §13). The CLI is the place that may change the
 * process's identity; a library caller decides for itself.
 */
export function writerOptions(args: GlobalArgs, warn: (message: string) => void): WriterOptions {
  return { lockTimeout: args.lockTimeout, noLock: !args.lock, argv: ['viewctl', ...process.argv.slice(2)], asStoreOwner: true, warn }
}
