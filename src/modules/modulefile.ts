/**
 * One modulefile for a whole view, as Lmod (Lua) or Tcl (Environment Modules,
 * and Lmod, which translates Tcl) text. Pure: the caller says what the file
 * points at and which variables it sets.
 *
 * Every variable but MANPATH is prepended with the tool's own path command,
 * so the tool counts references and `module unload` takes out exactly these
 * entries, whatever other modules did meanwhile.
 *
 * MANPATH needs more, because an empty entry in it stands for the system's
 * manual pages, and so does an unset MANPATH:
 *
 * - MANPATH set, without empty entries (`/a:/b`): the user chose the list;
 *   the view's directories are prepended like any other path.
 * - MANPATH unset or empty: the view's directories and then an empty entry
 *   (`<view>/share/man:`), so `man ls` still finds the system's pages.
 * - MANPATH with an empty entry (`/a:`, `/a::/b`, `:/a`): the view's
 *   directories in front of the value, byte for byte. Lmod 8's path
 *   arithmetic would write `/a:` back as `/a::`, so the value is set whole.
 *
 * In the last two cases the file records, in `__VIEWCTL_MANPATH_<id>`, the
 * value it set, and on unload gives back the value from before only when
 * MANPATH still holds exactly that; when another module changed MANPATH in
 * between, it takes out its own entries and leaves the rest. How the value
 * from before comes back differs between the tools:
 *
 * - Environment Modules: `unsetenv MANPATH <value>` sets that value on
 *   unload (and `setenv` unsets on unload, for a MANPATH that was unset);
 *   the value from before is the recorded one without the view's prefix.
 * - Lmod has no way to set a value on unload but its stack: the value is
 *   set with `pushenv`, whose unload gives back what it replaced, from
 *   `__LMOD_STACK_MANPATH`. The stack is used only while nothing else uses
 *   it, and is removed again on unload. Lmod cannot hold an empty value on
 *   its stack, and sets no value on unload otherwise: a MANPATH that was
 *   empty comes back unset under Lmod (man reads both the same way).
 *
 * docs/modules.md shows the files and explains the choices to users.
 */
import { luaString, tclWord } from './quote.js'

export const MODULE_FORMATS = ['lua', 'tcl'] as const
export type ModuleFormat = (typeof MODULE_FORMATS)[number]

export interface ModulefileSpec {
  format: ModuleFormat
  /** The module's name (`module load <name>`). */
  name: string
  /** The version this file is (`current`, or a generation number), for whatis. */
  version: string
  /** The directory every entry is under: the view path, or one generation's tree. */
  root: string
  /** The view path, for the help text. */
  view: string
  /** The generation the view showed when this was written (or the one the file is pinned to). */
  generation: number | null
  hash: string
  /** True when `root` is one generation's tree rather than the view path. */
  pinned: boolean
  /** Variable -> absolute directories under the root, in activate's order. */
  env: Record<string, string[]>
  family?: string
  /** `conflict <name>` (files in a module tree, where one name has several versions). */
  conflict?: boolean
  /** Identifies this module's MANPATH record (the same for every file of one module). */
  markId: string
}

/** The variable whose unset state means the system's default list. */
const SYSTEM_DEFAULT_VAR = 'MANPATH'

export function renderModulefile(spec: ModulefileSpec): string {
  return spec.format === 'lua' ? renderLua(spec) : renderTcl(spec)
}

function helpText(spec: ModulefileSpec): string {
  const vars = Object.keys(spec.env)
  const gen = spec.generation === null ? `hash ${spec.hash.slice(0, 12)}` : `generation ${spec.generation} (hash ${spec.hash.slice(0, 12)})`
  const lines = [`The viewctl view ${spec.view}.`, vars.length ? `Puts its directories in front of ${vars.join(', ')}.` : 'Sets no variables (its env: is empty).']
  if (spec.pinned) {
    lines.push(`Pinned to ${gen}: ${spec.root}`, 'The shell keeps this tree when the view moves on; unlike `viewctl exec` it holds no lease,', 'so only gc\'s ttl and its scan of running processes keep the tree on disk.')
  } else {
    lines.push(`It follows the view: after a regenerate or a rollback, loaded shells see the new generation.`, `Written when the view showed ${gen}.`)
  }
  lines.push(`To run a job against one generation whatever happens to the view meanwhile:`, `  viewctl exec ${spec.view} -- <command> ...`)
  return lines.join('\n')
}

function whatisLines(spec: ModulefileSpec): string[] {
  return [`Name: ${spec.name}`, `Version: ${spec.version}`, `Description: the viewctl view ${spec.view}${spec.pinned ? ` at ${spec.generation === null ? spec.hash.slice(0, 12) : `generation ${spec.generation}`}` : ''}`]
}

function renderLua(spec: ModulefileSpec): string {
  const out: string[] = [`-- -*- lua -*-`, `-- Written by viewctl (viewctl module ${spec.view}); see docs/modules.md.`, '']
  for (const w of whatisLines(spec)) out.push(`whatis(${luaString(w)})`)
  out.push(`help(${luaString(helpText(spec) + '\n')})`, '')
  if (spec.family) out.push(`family(${luaString(spec.family)})`)
  for (const [name, dirs] of Object.entries(spec.env)) {
    if (name === SYSTEM_DEFAULT_VAR) continue
    // prepended last to first, so that the first directory ends up first, as activate orders them
    for (const dir of [...dirs].reverse()) out.push(`prepend_path("${name}", ${luaString(dir)})`)
  }
  const man = spec.env[SYSTEM_DEFAULT_VAR]
  if (man !== undefined && man.length > 0) out.push('', ...luaManpath(man.join(':'), spec.markId))
  return out.join('\n') + '\n'
}

/** The MANPATH block for Lmod (see the top of this file). */
function luaManpath(dirs: string, markId: string): string[] {
  const mark = `__VIEWCTL_MANPATH_${markId}`
  return [
    `-- MANPATH: an empty entry (or none at all) means the system's manual pages; see docs/modules.md`,
    `do`,
    `  local dirs, mark, stack = ${luaString(dirs)}, ${luaString(mark)}, "__LMOD_STACK_MANPATH"`,
    `  local now, set, saved = os.getenv("MANPATH"), os.getenv(mark), os.getenv(mark .. "_STACK")`,
    `  if mode() == "unload" then`,
    `    if set == nil then`,
    `      prepend_path("MANPATH", dirs)  -- on unload: takes out what a plain prepend added`,
    `    else`,
    `      if now ~= set then`,
    `        remove_path("MANPATH", dirs)  -- changed by another module since: take out ours, keep the rest`,
    `      elseif saved ~= nil then`,
    `        pushenv("MANPATH", set)  -- on unload: the value from before, off Lmod's stack`,
    `      else`,
    `        setenv("MANPATH", set)  -- on unload: unset, as before`,
    `      end`,
    `      local left = os.getenv(stack)`,
    `      if saved ~= nil and left ~= nil and (left == saved or left == saved:match("^[^:]*:(.*)$")) then`,
    `        setenv(stack, left)  -- on unload: unset; only this file used the stack`,
    `      end`,
    `      setenv(mark, set)`,
    `      if saved ~= nil then setenv(mark .. "_STACK", saved) end`,
    `    end`,
    `  elseif now ~= nil and now ~= "" and not now:find("^:") and not now:find(":$") and not now:find("::", 1, true) then`,
    `    prepend_path("MANPATH", dirs)`,
    `  elseif now == nil or now == "" then`,
    `    setenv("MANPATH", dirs .. ":")`,
    `    setenv(mark, dirs .. ":")`,
    `  elseif os.getenv(stack) == nil then`,
    `    pushenv("MANPATH", dirs .. ":" .. now)`,
    `    setenv(mark, dirs .. ":" .. now)`,
    `    setenv(mark .. "_STACK", os.getenv(stack))`,
    `  else`,
    `    prepend_path("MANPATH", dirs)  -- another module uses Lmod's MANPATH stack: leave the stack to it`,
    `  end`,
    `end`,
  ]
}

function renderTcl(spec: ModulefileSpec): string {
  const out: string[] = ['#%Module1.0', `## Written by viewctl (viewctl module ${oneLine(spec.view)}); see docs/modules.md.`, '']
  // Lmod translates a Tcl modulefile into Lua and wraps help and whatis text in [===[ ]===]
  const text = (s: string) => s.replace(/\]===\]/g, '] ===]')
  out.push('proc ModulesHelp {} {')
  for (const line of helpText(spec).split('\n')) out.push(`  puts stderr ${tclWord(text(line))}`)
  out.push('}')
  for (const w of whatisLines(spec)) out.push(`module-whatis ${tclWord(text(w))}`)
  out.push('')
  if (spec.conflict) out.push(`conflict ${tclWord(spec.name)}`)
  if (spec.family) out.push(`if {[info commands family] ne {}} { family ${tclWord(spec.family)} }`)
  // Lmod's translation puts path values into Lua strings as they are: a backslash or a quote must be escaped for Lua there
  const needsLuaEscape = /["\\]/.test(spec.root)
  if (needsLuaEscape) {
    out.push(
      'proc viewctl_path {p} {',
      '  if {[info exists ::ModuleTool] && $::ModuleTool eq {Lmod}} { return [string map {\\\\ \\\\\\\\ \\" \\\\\\"} $p] }',
      '  return $p',
      '}',
    )
  }
  const word = (dir: string) => (needsLuaEscape ? `[viewctl_path ${tclWord(dir)}]` : tclWord(dir))
  for (const [name, dirs] of Object.entries(spec.env)) {
    if (name === SYSTEM_DEFAULT_VAR) continue
    for (const dir of [...dirs].reverse()) out.push(`prepend-path ${name} ${word(dir)}`)
  }
  const man = spec.env[SYSTEM_DEFAULT_VAR]
  if (man !== undefined && man.length > 0) out.push('', ...tclManpath(man.join(':'), spec.markId, needsLuaEscape))
  return out.join('\n') + '\n'
}

/** The MANPATH block for Tcl, with a branch for each tool (see the top of this file). */
function tclManpath(dirs: string, markId: string, escape: boolean): string[] {
  const mark = `__VIEWCTL_MANPATH_${markId}`
  // under Lmod, path values pass through its translation into Lua strings
  const forLmod = escape ? '[viewctl_path $viewctl_dirs]' : '$viewctl_dirs'
  return [
    `# MANPATH: an empty entry (or none at all) means the system's manual pages; see docs/modules.md`,
    `set viewctl_dirs ${tclWord(dirs)}`,
    `set viewctl_mark ${mark}`,
    `set viewctl_lmod [expr {[info exists ModuleTool] && $ModuleTool eq {Lmod}}]`,
    `set viewctl_unset [expr {![info exists env(MANPATH)]}]`,
    `set viewctl_now [expr {$viewctl_unset ? {} : $env(MANPATH)}]`,
    `set viewctl_stack [expr {[info exists env(__LMOD_STACK_MANPATH)] ? $env(__LMOD_STACK_MANPATH) : {}}]`,
    `if {[module-info mode remove]} {`,
    `  if {![info exists env($viewctl_mark)]} {`,
    `    prepend-path MANPATH ${forLmod}`,
    `  } else {`,
    `    set viewctl_set $env($viewctl_mark)`,
    `    set viewctl_saved [expr {[info exists env(\${viewctl_mark}_STACK)] ? $env(\${viewctl_mark}_STACK) : {}}]`,
    `    set viewctl_was [expr {[info exists env(\${viewctl_mark}_WAS)] ? $env(\${viewctl_mark}_WAS) : {}}]`,
    `    if {$viewctl_unset || $viewctl_now ne $viewctl_set} {`,
    `      # changed by another module since: take out ours, keep the rest`,
    `      if {$viewctl_lmod} { remove-path MANPATH ${forLmod} } else { prepend-path MANPATH $viewctl_dirs }`,
    `    } elseif {$viewctl_saved ne {}} {`,
    `      pushenv MANPATH $viewctl_set`,
    `    } elseif {$viewctl_lmod || $viewctl_was eq {unset}} {`,
    `      setenv MANPATH $viewctl_set`,
    `    } else {`,
    `      unsetenv MANPATH [string range $viewctl_set [string length "$viewctl_dirs:"] end]`,
    `    }`,
    `    # Lmod runs what this file asks after reading it: the stack is still as the load left it`,
    `    if {$viewctl_saved ne {} && $viewctl_stack eq $viewctl_saved} { setenv __LMOD_STACK_MANPATH $viewctl_saved }`,
    `    setenv $viewctl_mark $viewctl_set`,
    `    if {$viewctl_saved ne {}} { setenv \${viewctl_mark}_STACK $viewctl_saved }`,
    `    if {$viewctl_was ne {}} { setenv \${viewctl_mark}_WAS $viewctl_was }`,
    `  }`,
    `} elseif {!$viewctl_unset && ![regexp {^$|^:|:$|::} $viewctl_now]} {`,
    `  prepend-path MANPATH ${forLmod}`,
    `} elseif {$viewctl_now eq {}} {`,
    `  setenv MANPATH "$viewctl_dirs:"`,
    `  setenv $viewctl_mark "$viewctl_dirs:"`,
    `  if {$viewctl_unset && !$viewctl_lmod} { setenv \${viewctl_mark}_WAS unset }`,
    `} elseif {!$viewctl_lmod} {`,
    `  setenv MANPATH "$viewctl_dirs:$viewctl_now"`,
    `  setenv $viewctl_mark "$viewctl_dirs:$viewctl_now"`,
    `} elseif {$viewctl_stack eq {}} {`,
    `  # the value from before goes on Lmod's stack first: its translation of Tcl sets MANPATH before the push would read it`,
    `  setenv __LMOD_STACK_MANPATH [binary encode base64 -maxlen 0 $viewctl_now]`,
    `  pushenv MANPATH "$viewctl_dirs:$viewctl_now"`,
    `  setenv $viewctl_mark "$viewctl_dirs:$viewctl_now"`,
    `  # what Lmod's stack holds after that push: the new value, then the one it replaced, in base64`,
    `  setenv \${viewctl_mark}_STACK "[binary encode base64 -maxlen 0 "$viewctl_dirs:$viewctl_now"]:[binary encode base64 -maxlen 0 $viewctl_now]"`,
    `} else {`,
    `  # another module uses Lmod's MANPATH stack: leave the stack to it`,
    `  prepend-path MANPATH ${forLmod}`,
    `}`,
  ]
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]/g, ' ')
}
