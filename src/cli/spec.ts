/**
 * The command line, as data: every command, its positionals and options.
 * Both parsers read this table: the quick one (parse.ts) for a command line
 * that is complete and valid, and yargs (yargs.ts) for help, `--version` in
 * odd places, and every error message. One table, so the two cannot drift.
 */
export interface OptionSpec {
  type: 'boolean' | 'number' | 'string'
  describe: string
  default?: boolean | number | string
  alias?: string
  choices?: readonly string[]
  /** What the shell completes for the value (completion scripts, cli/completion/). */
  complete?: ValueKind
  /** For a boolean that defaults to true: what its `--no-…` form does (completion scripts, the man page). */
  negated?: string
}

/** What a positional or an option value is, for completion: generation numbers come from `viewctl __complete`. */
export type ValueKind = 'manifest' | 'target' | 'generation' | 'directory' | 'shell'

export type Options = Record<string, OptionSpec>

// Each runner declares the arguments its command defines; the parser has checked them by then.
export type Runner = (args: never, out: import('./render.js').Output) => Promise<number>

export interface CommandSpec {
  /** yargs syntax: `name <required> [optional]`; every positional is a string. */
  command: string
  /** The usage line, where `command` cannot show it (exec's `-- <command> …`). */
  usage?: string
  describe: string
  example: [string, string]
  options?: Options
  /** Arguments after `--` are the command's (exec). */
  passThrough?: boolean
  /** Not listed in the help: a command viewctl runs on another host (push's `receive`, pull's `send`). */
  hidden?: boolean
  load: () => Promise<Runner>
}

export const USAGE = '$0 <command> <target> [options]\n\nAtomic, content-addressed environment views. A target is a manifest (*.yaml) or a view path.'

export const GLOBAL_OPTIONS: Options = {
  json: { type: 'boolean', default: false, describe: 'print one JSON object on stdout' },
  quiet: { type: 'boolean', default: false, alias: 'q', describe: 'print nothing but errors' },
  debug: { type: 'boolean', default: false, describe: 'print stack traces on errors' },
}

const WRITER_OPTIONS: Options = {
  'lock-timeout': { type: 'number', default: 30, describe: 'seconds to wait for another writer (0 = fail at once)' },
  lock: { type: 'boolean', default: true, describe: 'take the writer lock (--no-lock only where the filesystem cannot lock)', negated: 'skip the writer lock: only where the filesystem cannot lock and no other writer runs' },
  'break-lock': { type: 'boolean', default: false, describe: 'remove the cross-client lock file of a writer known to be gone (its host crashed) instead of waiting for its heartbeat to go stale' },
  jobs: { type: 'number', describe: 'metadata operations in flight while building and removing (default: the CPUs locally, 16 on a remote filesystem; also VIEWCTL_JOBS)' },
}

export const COMMANDS: CommandSpec[] = [
  {
    command: 'regenerate <manifest>',
    describe: 'plan, build if needed, publish atomically, record a generation',
    example: ['$0 regenerate /etc/views/hpc.yaml', 'build and switch the view the manifest describes'],
    options: {
      'dry-run': { type: 'boolean', default: false, describe: 'plan and report, write nothing' },
      adopt: { type: 'boolean', default: false, describe: 'move a real directory at the view path into the store first' },
      share: { type: 'boolean', default: true, describe: 'hard-link unchanged entries from the generation on disk (--no-share creates every entry anew, as `share: false` does)' },
      ...WRITER_OPTIONS,
    },
    load: async () => (await import('./commands/regenerate.js')).run,
  },
  {
    command: 'plan <manifest>',
    describe: 'show what would be linked, the conflicts and the hash; writes nothing',
    example: ['$0 plan env.yaml --list', 'print every entry of the plan'],
    options: { list: { type: 'boolean', default: false, describe: 'print every entry (path, kind, source)' } },
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
    options: { history: { type: 'boolean', default: false, describe: 'every switch instead, oldest first: regenerates, rollbacks, switches, pushes' } },
    load: async () => (await import('./commands/inspect.js')).runList,
  },
  {
    command: 'rollback <target>',
    describe: 'switch the view back to an earlier generation in one rename',
    example: ['$0 rollback /opt/views/hpc --to 3', 'switch to generation 3 (or give a hash prefix)'],
    options: {
      to: { type: 'string', complete: 'generation', describe: 'generation number or hash prefix (default: the previous one on disk)' },
      'dry-run': { type: 'boolean', default: false, describe: 'say which generation it would switch to, change nothing' },
      ...WRITER_OPTIONS,
    },
    load: async () => (await import('./commands/rollback.js')).runRollback,
  },
  {
    command: 'switch <target> <generation>',
    describe: 'switch the view to one generation, earlier or later (like nix-env --switch-generation)',
    example: ['$0 switch /opt/views/hpc 7', 'show generation 7 (or a hash prefix) again; `viewctl list` shows the numbers'],
    options: { 'dry-run': { type: 'boolean', default: false, describe: 'say what it would switch to, change nothing' }, ...WRITER_OPTIONS },
    load: async () => (await import('./commands/rollback.js')).runSwitch,
  },
  {
    command: 'diff <target> [from] [to]',
    describe: 'prefixes and paths added, removed or changed between two generations',
    example: ['$0 diff /opt/views/hpc 3 5', 'compare generation 3 with generation 5 (default: previous vs current)'],
    load: async () => (await import('./commands/diff.js')).run,
  },
  {
    command: 'verify <target>',
    describe: 'check the current tree against its recorded plan (exit 5 on problems); --repair re-creates what the plan says',
    example: ['$0 verify /opt/views/hpc', 'report missing, extra, wrong and dangling entries'],
    options: {
      ...WRITER_OPTIONS,
      repair: { type: 'boolean', default: false, describe: 're-create every missing, wrong or extra entry as the plan says, each in one rename (a writer: takes the lock)' },
    },
    load: async () => (await import('./commands/verify.js')).run,
  },
  {
    command: 'gc <target>',
    describe: 'delete old generation trees that nothing needs (current, spares, young, pinned, in use and leased ones stay)',
    example: ['$0 gc /opt/views/hpc --dry-run', 'list what would go and why each survivor stays'],
    options: {
      generation: { type: 'string', complete: 'generation', describe: 'delete this one generation now (refused for the current, a pinned and an in-use one), whatever keep and ttl say' },
      keep: { type: 'number', describe: "spare generations kept besides the current one, whatever their age (default: the manifest's gc.keep, else 2)" },
      ttl: { type: 'string', describe: "delete only generations not current for longer than this, e.g. 7d, 12h (default: the manifest's gc.ttl, else 7d)" },
      'dry-run': { type: 'boolean', default: false, describe: 'decide and report, delete nothing' },
      force: { type: 'boolean', default: false, describe: 'accept a ttl under 5 minutes (no other host reads this view)' },
      ...WRITER_OPTIONS,
    },
    load: async () => (await import('./commands/gc.js')).run,
  },
  {
    command: 'pin <target> <generation>',
    describe: 'protect a generation from gc',
    example: ['$0 pin /opt/views/hpc 7', 'keep generation 7 until it is unpinned'],
    options: { 'dry-run': { type: 'boolean', default: false, describe: 'say what would change, change nothing' }, ...WRITER_OPTIONS },
    load: async () => (await import('./commands/pin.js')).runPin,
  },
  {
    command: 'unpin <target> <generation>',
    describe: 'let gc remove a pinned generation again',
    example: ['$0 unpin /opt/views/hpc 7', 'generation 7 is subject to keep and ttl again'],
    options: { 'dry-run': { type: 'boolean', default: false, describe: 'say what would change, change nothing' }, ...WRITER_OPTIONS },
    load: async () => (await import('./commands/pin.js')).runUnpin,
  },
  {
    command: 'push <source> <destinations..>',
    describe: 'copy a generation to other hosts over ssh (a symlink view as its plan, a copy view by rsync) and switch each there (the remote does its own writing)',
    example: ['$0 push /opt/views/hpc node01:/opt/views/hpc node02:/opt/views/hpc', 'the current generation to two hosts at once'],
    options: {
      generation: { type: 'string', complete: 'generation', describe: 'a generation number or hash prefix (default: the current one)' },
      switch: { type: 'boolean', default: true, describe: 'publish there (--no-switch: copy and record only, for a staged roll-out)' },
      'with-prefixes': { type: 'boolean', default: false, describe: 'also copy prefixes a destination lacks (symlink views; an existing prefix is never overwritten)' },
      ssh: { type: 'string', default: 'ssh', describe: 'the ssh command and its options, like rsync -e (cron: "ssh -o BatchMode=yes")' },
      'remote-viewctl': { type: 'string', default: 'viewctl', describe: "viewctl's command on the remote hosts, like rsync --rsync-path" },
      parallel: { type: 'number', default: 8, describe: 'destinations at once' },
      'lock-timeout': { type: 'number', default: 30, describe: "seconds each remote waits for its view's writer lock (0 = fail at once)" },
    },
    load: async () => (await import('./commands/push.js')).run,
  },
  {
    command: 'pull <source> <view>',
    describe: 'push with the roles swapped: copy a generation from another host and switch the view here to it',
    example: ['$0 pull login01:/opt/views/hpc /opt/views/hpc', 'for hosts that may only connect outwards'],
    options: {
      generation: { type: 'string', describe: 'a generation number or hash prefix there (default: its current one)' },
      switch: { type: 'boolean', default: true, describe: 'publish here (--no-switch: copy and record only)' },
      'with-prefixes': { type: 'boolean', default: false, describe: 'also copy prefixes this host lacks (symlink views; an existing prefix is never overwritten)' },
      ssh: { type: 'string', default: 'ssh', describe: 'the ssh command and its options, like rsync -e' },
      'remote-viewctl': { type: 'string', default: 'viewctl', describe: "viewctl's command on the other host, like rsync --rsync-path" },
      'lock-timeout': { type: 'number', default: 30, describe: "seconds to wait for this view's writer lock (0 = fail at once)" },
    },
    load: async () => (await import('./commands/pull.js')).run,
  },
  {
    command: 'receive <view>',
    describe: 'the receiving end of a push, run over ssh by `viewctl push`',
    example: ['$0 receive /opt/views/hpc', 'not for people: push runs it'],
    options: { rsync: { type: 'boolean', default: false, describe: "run push's rsync under the receiving session's guard" } },
    passThrough: true,
    hidden: true,
    load: async () => (await import('./commands/receive.js')).run,
  },
  {
    command: 'send <view>',
    describe: 'the sending end of a pull, run over ssh by `viewctl pull`',
    example: ['$0 send /opt/views/hpc', 'not for people: pull runs it'],
    options: { generation: { type: 'string', describe: 'a generation number or hash prefix (default: the current one)' } },
    hidden: true,
    load: async () => (await import('./commands/send.js')).run,
  },
  {
    command: 'exec <target>',
    usage: 'exec <target> -- <command> [argument …]',
    describe: 'run a command against the current generation, held by a lease until it ends',
    example: ['$0 exec /opt/views/hpc -- make -j8', 'the job keeps one generation even if the view is regenerated meanwhile'],
    passThrough: true,
    load: async () => (await import('./commands/exec.js')).run,
  },
  {
    command: 'activate <target>',
    describe: 'print shell code that puts the view in PATH, MANPATH, … (for eval)',
    example: ['eval "$($0 activate /opt/views/hpc)"', 'in sh, bash or zsh; fish: `viewctl activate … --shell fish | source`'],
    options: {
      shell: { type: 'string', choices: ['sh', 'bash', 'zsh', 'fish', 'csh'], describe: 'the shell to write for (default: from $SHELL, else sh)' },
      canonical: { type: 'boolean', default: false, describe: "name the current generation's tree instead of the view path (the shell keeps that generation)" },
      deactivate: { type: 'boolean', default: false, describe: "print the undo: remove the view's entries, unset what becomes empty" },
    },
    load: async () => (await import('./commands/activate.js')).run,
  },
  {
    command: 'module <target>',
    describe: 'print one modulefile (Lmod or Tcl) that puts the view in PATH, MANPATH, …',
    example: ['$0 module /opt/views/hpc > ~/modulefiles/hpc.lua', 'then `module use ~/modulefiles; module load hpc`'],
    options: {
      format: { type: 'string', choices: ['lua', 'tcl'], describe: 'lua for Lmod, tcl for Environment Modules (Lmod reads both; default: the tool this shell runs, else lua)' },
      name: { type: 'string', describe: "the module's name (default: the view's basename)" },
      family: { type: 'string', describe: "Lmod family: loading another module of it unloads this one" },
      canonical: { type: 'boolean', default: false, describe: "name the current generation's tree instead of the view path (the shell keeps that generation)" },
      dir: { type: 'string', complete: 'directory', describe: 'write a module tree instead: <dir>/<name>/current(.lua), the default, following the view' },
      generations: { type: 'boolean', default: false, describe: 'with --dir: also one file per generation on disk, pinned to its tree' },
    },
    load: async () => (await import('./commands/module.js')).run,
  },
  {
    command: 'destroy <target>',
    describe: 'remove the whole view: its link first, then its store with every generation (refused while in use)',
    example: ['$0 destroy /opt/views/old --yes', 'without --yes it only says what would go'],
    options: { yes: { type: 'boolean', default: false, describe: 'really remove it (without: say what would go, remove nothing)' }, ...WRITER_OPTIONS },
    load: async () => (await import('./commands/destroy.js')).run,
  },
  {
    command: 'completion [shell]',
    describe: 'print the completion script for bash, zsh or fish (default: from $SHELL)',
    example: ['$0 completion bash > ~/.local/share/bash-completion/completions/viewctl', 'README.md, "Shell completion", has zsh and fish'],
    load: async () => (await import('./commands/completion.js')).run,
  },
]

export interface Positional {
  name: string
  required: boolean
  /** `<name..>` (the last one only): one or more values, given to the runner as an array. */
  variadic: boolean
  /** What the shell completes here. */
  kind: ValueKind | null
}

const POSITIONAL_KINDS: Record<string, ValueKind> = { manifest: 'manifest', target: 'target', source: 'target', view: 'target', generation: 'generation', from: 'generation', to: 'generation', shell: 'shell' }

/** The positionals of `regenerate <manifest>`, `diff <target> [from] [to]`, `push <source> <destinations..>` … */
export function positionalsOf(spec: CommandSpec): Positional[] {
  return spec.command
    .split(' ')
    .slice(1)
    .map((p) => {
      const name = p.slice(1, -1)
      const variadic = name.endsWith('..')
      const bare = variadic ? name.slice(0, -2) : name
      return { name: bare, required: p.startsWith('<'), variadic, kind: POSITIONAL_KINDS[bare] ?? null }
    })
}

export function commandName(spec: CommandSpec): string {
  return spec.command.split(' ', 1)[0]!
}
