/**
 * yargs, set up from the command table (spec.ts): the help, `--version` and
 * every usage error. main.ts loads it only for a command line the quick parse
 * (parse.ts) did not take.
 */
import yargs, { type Argv, type Options as YargsOption } from 'yargs'
import { ViewError } from '../errors.js'
import { toolVersion } from '../version.js'
import type { ParsedCommand } from './parse.js'
import { COMMANDS, GLOBAL_OPTIONS, USAGE, positionalsOf, type CommandSpec, type Options } from './spec.js'

/** Parse with yargs: the command to run, or null when yargs printed help or the version itself. Usage errors throw a ViewError. */
export async function parseWithYargs(argv: string[], opts: { exitProcess?: boolean } = {}): Promise<ParsedCommand | null> {
  let chosen: CommandSpec | null = null
  let parser = withOptions(yargs(argv), GLOBAL_OPTIONS)
    .scriptName('viewctl')
    .usage(USAGE)
    .version(toolVersion())
    .help()
    .alias('help', 'h')
    .strict()
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .exitProcess(opts.exitProcess ?? true)
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err
      throw new ViewError('USAGE', msg ?? 'bad usage', 'see `viewctl --help`, or `viewctl <command> --help` for one command')
    })

  for (const spec of COMMANDS) {
    parser = parser.command(
      spec.command,
      // yargs lists no command described as false
      (spec.hidden ? false : spec.describe) as string,
      (y) => {
        if (spec.passThrough) y = y.parserConfiguration({ 'populate--': true })
        if (spec.usage !== undefined) y = y.usage(`$0 ${spec.usage}\n\n${spec.describe}`)
        for (const p of positionalsOf(spec)) y = y.positional(p.name, { type: 'string' })
        const own = Object.keys(spec.options ?? {})
        // the command's own options first, then the ones every command takes
        if (own.length) y = y.group(own, 'Options:')
        y = y.group([...Object.keys(GLOBAL_OPTIONS), 'version', 'help'], 'Global options:')
        // yargs fills in $0 in an example's command, not in its description
        return withOptions(y, spec.options ?? {}).example(spec.example[0], spec.example[1].replaceAll('$0', 'viewctl'))
      },
      // async on purpose: yargs 18 fills in `--` (populate--) only after a handler's promise settles
      async () => {
        chosen = spec
      },
    )
  }
  const args = (await parser.parseAsync()) as Record<string, unknown>
  return chosen === null ? null : { spec: chosen, args }
}

function withOptions(y: Argv, options: Options): Argv {
  for (const [name, o] of Object.entries(options)) {
    const option: YargsOption = { type: o.type, describe: o.describe }
    if (o.default !== undefined) option.default = o.default
    if (o.alias !== undefined) option.alias = o.alias
    if (o.choices !== undefined) option.choices = [...o.choices]
    y = y.option(name, option)
  }
  return y
}
