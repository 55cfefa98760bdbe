/**
 * The options every command is given, whatever it does (spec.ts declares
 * them for the parser). A type of its own, below main.ts, so that the
 * commands, which main.ts loads, need not import main.ts back.
 */
import type { OutputFlags } from './render.js'

export interface GlobalArgs extends OutputFlags {
  lockTimeout: number
  lock: boolean
}
