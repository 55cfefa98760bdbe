/**
 * The command line: parse, call one library function, render. A valid
 * command line is parsed quickly (parse.ts); yargs is loaded only for help
 * and usage errors (yargs.ts). Each command's implementation is imported only
 * when that command runs, so a rollback does not pay for loading the planner.
 */
import { toolVersion } from '../version.js'
import { parseQuickly, type ParsedCommand } from './parse.js'
import { Output } from './render.js'

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 1 && argv[0] === '--version') {
    process.stdout.write(`${toolVersion()}\n`)
    return 0
  }
  let parsed: ParsedCommand | null = parseQuickly(argv)
  if (parsed === null) {
    try {
      const { parseWithYargs } = await import('./yargs.js')
      parsed = await parseWithYargs(argv)
    } catch (err) {
      return new Output({ json: argv.includes('--json'), quiet: argv.includes('--quiet') || argv.includes('-q'), debug: argv.includes('--debug') }).fail(err)
    }
    if (parsed === null) return 0 // yargs printed the help or the version
  }
  const { spec, args } = parsed
  const out = new Output({ json: !!args.json, quiet: !!args.quiet, debug: !!args.debug })
  try {
    const run = await spec.load()
    return await run(args as never, out)
  } catch (err) {
    return out.fail(err)
  }
}
