/**
 * The options every command is given, whatever it does (spec.ts declares
 * them for the parser). A type of its own, below main.ts, so that the
 * commands, which main.ts loads, need not import main.ts back.
 */
import { ViewError } from '../errors.js'
import type { WriterOptions } from '../ops/writer.js'
import type { OutputFlags } from './render.js'

export interface GlobalArgs extends OutputFlags {
  lockTimeout: number
  lock: boolean
  breakLock?: boolean
  jobs?: number
}

/**
 * What every writing command passes to its library call: the lock options,
 * the command line for the journal, warnings printed as they come, and
 * `asStoreOwner`: a command run by root on a store another user owns acts as
 * that owner (DESIGN §13). The CLI is the place that may change the
 * process's identity; a library caller decides for itself. `--jobs N` goes
 * on as VIEWCTL_JOBS, which the builders and removers read
 * (store/workers.ts), as if the user had set it.
 */
export function writerOptions(args: GlobalArgs, warn: (message: string) => void): WriterOptions {
  if (args.jobs !== undefined) {
    if (!Number.isInteger(args.jobs) || args.jobs < 1) throw new ViewError('USAGE', `--jobs ${args.jobs}: expected a whole number of operations in flight, 1 or more`, 'e.g. --jobs 16; the default is the CPUs on a local filesystem and 16 on a remote one')
    process.env.VIEWCTL_JOBS = String(args.jobs)
  }
  return { lockTimeout: args.lockTimeout, noLock: !args.lock, breakLock: args.breakLock, argv: ['viewctl', ...process.argv.slice(2)], asStoreOwner: true, warn }
}
