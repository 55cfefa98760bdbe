/**
 * The quick parse: a command line that names a command first and is complete
 * and valid is parsed here with yargs-parser, the parser under yargs, set up
 * from the same table (spec.ts). Anything else (help, a typo, a missing or
 * extra argument, a value of the wrong type) returns null, and main.ts hands
 * the command line to yargs, which prints the help or the error.
 *
 * Why two: loading yargs costs about 90 ms (cliui and string-width, for help
 * layout), more than half of a no-op regenerate's whole budget (DESIGN §11),
 * and a valid command line never needs them. test/cli-parse.test.ts checks
 * that both parsers give a runner the same arguments.
 */
import parser from 'yargs-parser'
import { COMMANDS, GLOBAL_OPTIONS, commandName, positionalsOf, type CommandSpec, type OptionSpec } from './spec.js'

export interface ParsedCommand {
  spec: CommandSpec
  args: Record<string, unknown>
}

export function parseQuickly(argv: string[]): ParsedCommand | null {
  const spec = COMMANDS.find((c) => commandName(c) === argv[0])
  if (spec === undefined) return null
  const dashes = argv.indexOf('--')
  if (dashes >= 0 && !spec.passThrough) return null

  const options: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...spec.options }
  const config = {
    boolean: [] as string[],
    number: [] as string[],
    string: [] as string[],
    alias: {} as Record<string, string>,
    default: {} as Record<string, unknown>,
  }
  const known = new Set(['_', '--'])
  for (const [name, o] of Object.entries(options)) {
    config[o.type].push(name)
    if (o.alias !== undefined) config.alias[name] = o.alias
    if (o.default !== undefined) config.default[name] = o.default
    for (const key of [name, camelCase(name), o.alias]) if (key !== undefined) known.add(key)
  }
  const args = parser(argv.slice(1), {
    ...config,
    configuration: { 'populate--': true, 'parse-positional-numbers': false },
  }) as Record<string, unknown> & { _: Array<string | number>; '--'?: Array<string | number> }

  for (const key of Object.keys(args)) if (!known.has(key)) return null
  for (const [name, o] of Object.entries(options)) {
    const value = args[name]
    if (value === undefined) continue
    if (typeof value !== o.type || (o.type === 'number' && Number.isNaN(value))) return null
    if (o.choices !== undefined && !o.choices.includes(value as string)) return null
  }
  const given = args._.map(String)
  const positionals = positionalsOf(spec)
  const variadic = positionals[positionals.length - 1]?.variadic === true
  if (given.length < positionals.filter((p) => p.required).length || (!variadic && given.length > positionals.length)) return null
  const out: Record<string, unknown> = { ...args, _: [commandName(spec)] }
  if (!spec.passThrough) delete out['--']
  positionals.forEach((p, i) => {
    if (p.variadic) out[p.name] = given.slice(i)
    else if (i < given.length) out[p.name] = given[i]
  })
  return { spec, args: out }
}

function camelCase(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
}
