/**
 * viewctl(1), written in roff from the command table (spec.ts) at build
 * time (scripts/generate.mjs writes dist/man/viewctl.1, which package.json's
 * `man` installs), so the manual lists exactly the commands and options the
 * parsers accept.
 */
import { COMMANDS, GLOBAL_OPTIONS, type OptionSpec } from './spec.js'
import { toolVersion } from '../version.js'

/** Text for roff: backslashes doubled, a leading dot or quote kept from being read as a request, dashes as minus signs. */
function roff(text: string): string {
  const escaped = text.replace(/\\/g, '\\e').replace(/-/g, '\\-')
  return /^[.']/.test(escaped) ? `\\&${escaped}` : escaped
}

function optionLines(name: string, o: OptionSpec): string[] {
  const flag = o.type === 'boolean' && o.default === true ? `--no-${name}` : `--${name}`
  const value = o.type === 'boolean' ? '' : ` \\fI${o.choices ? o.choices.join('|') : o.type === 'number' ? 'N' : name.toUpperCase()}\\fR`
  const alias = o.alias ? `\\fB-${o.alias}\\fR, ` : ''
  const def = o.default !== undefined && o.type !== 'boolean' ? ` (default: ${o.default})` : ''
  return ['.TP', `${alias}\\fB${roff(flag)}\\fR${value}`, roff((flag.startsWith('--no-') ? (o.negated ?? o.describe) : o.describe) + def)]
}

function synopsisOf(spec: (typeof COMMANDS)[number]): string {
  const usage = spec.usage ?? spec.command
  const [name, ...rest] = usage.split(' ')
  const args = rest.map((w) => (/^[<[]/.test(w) ? `\\fI${roff(w)}\\fR` : roff(w))).join(' ')
  return `\\fBviewctl ${roff(name!)}\\fR ${args}${spec.options && Object.keys(spec.options).length ? ' [\\fIoptions\\fR]' : ''}`.trimEnd()
}

/** `date`: the month the page names (SOURCE_DATE_EPOCH, when set, makes builds reproducible). */
export function manPage(date = new Date()): string {
  const month = date.toISOString().slice(0, 7)
  const out: string[] = [
    `.TH VIEWCTL 1 "${month}" "viewctl ${toolVersion()}" "User Commands"`,
    '.SH NAME',
    'viewctl \\- atomic, content\\-addressed environment views of install prefixes',
    '.SH SYNOPSIS',
    '\\fBviewctl\\fR \\fIcommand\\fR \\fItarget\\fR [\\fIoptions\\fR]',
    '.br',
    '\\fBviewctl \\-\\-version\\fR',
    '.SH DESCRIPTION',
    roff('viewctl merges many install prefixes (Spack, Nix, EasyBuild, Conda, hand-built trees) into one directory tree of links, a view, that users point PATH, MANPATH, PKG_CONFIG_PATH and CMAKE_PREFIX_PATH at. Each version of a view, a generation, is built in a hidden directory beside it and published by atomically renaming one symlink: readers never see a view half built, and earlier generations stay for rollback until gc proves them unused.'),
    '.PP',
    roff('A target is a manifest (a file ending in .yaml or .yml) or a view path. Commands given a manifest use only its view: line, except regenerate and plan.'),
    '.SH COMMANDS',
  ]
  for (const spec of COMMANDS) {
    if (spec.hidden) continue // run by viewctl itself (receive, on the other end of a push)
    out.push('.SS ' + synopsisOf(spec), roff(spec.describe.charAt(0).toUpperCase() + spec.describe.slice(1) + '.'))
    for (const [name, o] of Object.entries(spec.options ?? {})) out.push(...optionLines(name, o))
    out.push('.PP', 'Example:', '.RS', '.nf', roff(spec.example[0].replaceAll('$0', 'viewctl')), '.fi', '.RE', roff(spec.example[1].replaceAll('$0', 'viewctl')))
  }
  out.push('.SH GLOBAL OPTIONS', 'Every command takes these.')
  for (const [name, o] of Object.entries(GLOBAL_OPTIONS)) out.push(...optionLines(name, o))
  out.push('.TP', '\\fB\\-h\\fR, \\fB\\-\\-help\\fR', 'Show the help of viewctl, or of one command.')
  out.push(
    '.SH EXIT STATUS',
    '.TP', '0', 'Success.',
    '.TP', '1', roff('Runtime failure (I/O, permission, disk full, a refusal such as a generation in use); the view is unchanged.'),
    '.TP', '2', roff('Bad input: usage, YAML, schema, prefixes, a path that cannot be exported, destroy without --yes.'),
    '.TP', '3', 'Conflicts between prefixes.',
    '.TP', '4', roff('The writer lock was not acquired in time (--lock-timeout).'),
    '.TP', '5', roff('verify found problems, or status found the view not healthy.'),
    '.SH FILES',
    '.TP', '\\fIview\\fR', roff('A relative symlink ._<name>/<hash> beside it, replaced atomically.'),
    '.TP', '\\fI._name/\\fR', roff('The store: one directory per generation tree, history.jsonl (the journal of switches), pins.json, .lock.'),
    '.SH ENVIRONMENT',
    '.TP', '\\fBSHELL\\fR', roff('The default shell for activate and completion.'),
    '.TP', '\\fBLMOD_CMD\\fR, \\fBMODULES_CMD\\fR', roff('Which module tool this shell runs: the default --format of module (tcl under Environment Modules, else lua).'),
    '.TP', '\\fBVIEWCTL_VIEW\\fR, \\fBVIEWCTL_ROOT\\fR, \\fBVIEWCTL_HASH\\fR, \\fBVIEWCTL_GENERATION\\fR, \\fBVIEWCTL_LEASE_FD\\fR', roff('Set by exec for the command it runs.'),
    '.SH SEE ALSO',
    roff('The README and docs/ of the viewctl package: how-it-works.md, generations.md, modules.md, safety.md. viewctl completion bash|zsh|fish prints the shell completion scripts.'),
  )
  return out.join('\n') + '\n'
}
