/**
 * The command table (../spec.ts) as the completion scripts see it: each
 * command's flags, which flags take a value and of what kind, and what its
 * positionals are. The scripts are generated from this at build time
 * (scripts/generate.mjs) and by `viewctl completion`, so commands and flags
 * complete without starting Node; only generation numbers ask viewctl
 * (`viewctl __complete generations <target>`, ../complete.ts).
 */
import { COMMANDS, GLOBAL_OPTIONS, commandName, positionalsOf, type OptionSpec, type Positional, type ValueKind } from '../spec.js'

export interface FlagInfo {
  /** `--dry-run`, or `--no-lock` for a boolean that defaults to true. */
  flag: string
  alias?: string
  describe: string
  /** Null for a boolean flag. */
  value: { kind: ValueKind | null; choices: readonly string[] | null; name: string } | null
}

export interface CommandInfo {
  name: string
  describe: string
  flags: FlagInfo[]
  positionals: Positional[]
  /** Words after `--` are a command of its own (exec). */
  passThrough: boolean
}

export function flagsOf(options: Record<string, OptionSpec>): FlagInfo[] {
  return Object.entries(options).map(([name, o]) => {
    const flag = o.type === 'boolean' && o.default === true ? `--no-${name}` : `--${name}`
    const value = o.type === 'boolean' ? null : { kind: o.complete ?? null, choices: o.choices ?? null, name: o.complete ?? (o.type === 'number' ? 'number' : name) }
    return { flag, ...(o.alias ? { alias: `-${o.alias}` } : {}), describe: flag.startsWith('--no-') ? (o.negated ?? o.describe) : o.describe, value }
  })
}

export function globalFlags(): FlagInfo[] {
  return [...flagsOf(GLOBAL_OPTIONS), { flag: '--help', alias: '-h', describe: 'show help', value: null }]
}

/** The commands people type (not the hidden ones, such as `receive`, which `push` runs on the other host). */
export function commandsForCompletion(): CommandInfo[] {
  return COMMANDS.filter((c) => !c.hidden).map((c) => ({ name: commandName(c), describe: c.describe, flags: flagsOf(c.options ?? {}), positionals: positionalsOf(c), passThrough: !!c.passThrough }))
}
