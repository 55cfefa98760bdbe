/**
 * The command line: parse (yargs), call one library function, render. Each
 * command's implementation is imported only when that command runs, so a
 * rollback does not pay for loading the planner.
 */
import yargs, { type Argv } from 'yargs'
import { ViewError } from '../errors.js'
import { toolVersion } from '../version.js'
import { Output, type OutputFlags } from './render.js'

export interface GlobalArgs extends OutputFlags {
  lockTimeout: number
  lock: boolean
}

// Each runner declares the arguments its command defines; yargs has checked them by then.
type Runner = (args: never, out: Output) => Promise<number>

interface CommandSpec {
  command: string
  describe: string
  example: [string, string]
  builder?: (y: Argv) => Argv
  load: () => Promise<Runner>
}

const writerOptions = (y: Argv) =>
  y
    .option('lock-timeout', { type: 'number', default: 30, describe: 'seconds to wait for another writer (0 = fail at once)' })
    .option('lock', { type: 'boolean', default: true, describe: 'take the writer lock (--no-lock only where the filesystem cannot lock)' })

const COMMANDS: CommandSpec[] = [
  {
    command: 'regenerate <manifest>',
    describe: 'plan, build if needed, publish atomically, record a generation',
    example: ['$0 regenerate /etc/views/hpc.yaml', 'build and switch the view the manifest describes'],
    builder: (y) =>
      writerOptions(y)
        .option('dry-run', { type: 'boolean', default: false, describe: 'plan and report, write nothing' })
        .option('adopt', { type: 'boolean', default: false, describe: 'move a real directory at the view path into the store first' }),
    load: async () => (await import('./commands/regenerate.js')).run,
  },
  {
    command: 'plan <manifest>',
    describe: 'show what would be linked, the conflicts and the hash; writes nothing',
    example: ['$0 plan env.yaml --list', 'print every entry of the plan'],
    builder: (y) => y.option('list', { type: 'boolean', default: false, describe: 'print every entry (path, kind, source)' }),
    load: async () => (await import('./commands/plan.js')).run,
  },
  {
    command: 'status <target>',
    describe: 'current generation, hash, age, prefix count, health',
    example: ['$0 status /opt/views/hpc', 'show what the view points at'],
    load: async () => (await import('./commands/inspect.js')).runStatus,
  },
  {
    command: 'list <target>',
    describe: 'the generations, oldest first, with the current one marked',
    example: ['$0 list /opt/views/hpc', 'like nix-env --list-generations'],
    load: async () => (await import('./commands/inspect.js')).runList,
  },
  {
    command: 'rollback <target>',
    describe: 'switch the view back to an earlier generation in one rename',
    example: ['$0 rollback /opt/views/hpc --to 3', 'switch to generation 3 (or give a hash prefix)'],
    builder: (y) => writerOptions(y).option('to', { type: 'string', describe: 'generation number or hash prefix (default: the previous one on disk)' }),
    load: async () => (await import('./commands/rollback.js')).run,
  },
  {
    command: 'diff <target> [from] [to]',
    describe: 'prefixes and paths added, removed or changed between two generations',
    example: ['$0 diff /opt/views/hpc 3 5', 'compare generation 3 with generation 5 (default: previous vs current)'],
    // hash prefixes like 1e0 must stay strings
    builder: (y) => y.positional('from', { type: 'string' }).positional('to', { type: 'string' }),
    load: async () => (await import('./commands/diff.js')).run,
  },
  {
    command: 'verify <target>',
    describe: 'check the current tree against its recorded plan (exit 5 on problems)',
    example: ['$0 verify /opt/views/hpc', 'report missing, extra, wrong and dangling entries'],
    load: async () => (await import('./commands/verify.js')).run,
  },
  {
    command: 'gc <target>',
    describe: 'delete old generation trees that nothing needs (current, spares, young, pinned, in use and leased ones stay)',
    example: ['$0 gc /opt/views/hpc --dry-run', 'list what would go and why each survivor stays'],
    builder: (y) =>
      writerOptions(y)
        .option('keep', { type: 'number', describe: 'spare generations kept besides the current one, whatever their age (default: the manifest\'s gc.keep, else 2)' })
        .option('ttl', { type: 'string', describe: 'delete only generations not current for longer than this, e.g. 7d, 12h (default: the manifest\'s gc.ttl, else 7d)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'decide and report, delete nothing' })
        .option('force', { type: 'boolean', default: false, describe: 'accept a ttl under 5 minutes (no other host reads this view)' }),
    load: async () => (await import('./commands/gc.js')).run,
  },
  {
    command: 'pin <target> <generation>',
    describe: 'protect a generation from gc',
    example: ['$0 pin /opt/views/hpc 7', 'keep generation 7 until it is unpinned'],
    builder: (y) => writerOptions(y).positional('generation', { type: 'string', describe: 'generation number or hash prefix' }),
    load: async () => (await import('./commands/pin.js')).runPin,
  },
  {
    command: 'unpin <target> <generation>',
    describe: 'let gc remove a pinned generation again',
    example: ['$0 unpin /opt/views/hpc 7', 'generation 7 is subject to keep and ttl again'],
    builder: (y) => writerOptions(y).positional('generation', { type: 'string', describe: 'generation number or hash prefix' }),
    load: async () => (await import('./commands/pin.js')).runUnpin,
  },
  {
    command: 'exec <target>',
    describe: 'run a command against the current generation, held by a lease until it ends: exec <target> -- cmd …',
    example: ['$0 exec /opt/views/hpc -- make -j8', 'the job keeps one generation even if the view is regenerated meanwhile'],
    builder: (y) => y.parserConfiguration({ 'populate--': true }),
    load: async () => (await import('./commands/exec.js')).run,
  },
  {
    command: 'activate <target>',
    describe: 'print shell code that puts the view in PATH, MANPATH, … (for eval)',
    example: ['eval "$($0 activate /opt/views/hpc)"', 'in sh, bash or zsh; fish: `$0 activate … --shell fish | source`'],
    builder: (y) =>
      y
        .option('shell', { choices: ['sh', 'bash', 'zsh', 'fish', 'csh'] as const, describe: 'the shell to write for (default: from $SHELL, else sh)' })
        .option('canonical', { type: 'boolean', default: false, describe: 'name the current generation\'s tree instead of the view path (the shell keeps that generation)' })
        .option('deactivate', { type: 'boolean', default: false, describe: 'print the undo: remove the view\'s entries, unset what becomes empty' }),
    load: async () => (await import('./commands/activate.js')).run,
  },
]

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0
  const wantsJson = argv.includes('--json')
  const out = () => new Output({ json: wantsJson, quiet: argv.includes('--quiet') || argv.includes('-q'), debug: argv.includes('--debug') })

  let parser = yargs(argv)
    .scriptName('viewctl')
    .usage('$0 <command> <target> [options]\n\nAtomic, content-addressed environment views. A target is a manifest (*.yaml) or a view path.')
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'print nothing but errors' })
    .option('debug', { type: 'boolean', default: false, describe: 'print stack traces on errors' })
    .version(toolVersion())
    .help()
    .alias('help', 'h')
    .strict()
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err
      throw new ViewError('USAGE', msg ?? 'bad usage', 'see `viewctl --help`, or `viewctl <command> --help` for one command')
    })

  for (const spec of COMMANDS) {
    parser = parser.command(
      spec.command,
      spec.describe,
      (y) => (spec.builder ? spec.builder(y) : y).example(spec.example[0], spec.example[1]),
      async (args) => {
        const run = await spec.load()
        exitCode = await run(args as never, new Output({ json: !!args.json, quiet: !!args.quiet, debug: !!args.debug }))
      },
    )
  }

  try {
    await parser.parseAsync()
  } catch (err) {
    return out().fail(err)
  }
  return exitCode
}
