/**
 * Quoting for modulefiles. Every path and text a modulefile carries is
 * written so that the module tool reads back exactly those bytes:
 *
 * - Lua: a long bracket `[==[…]==]` whose level is the lowest at which the
 *   closing bracket does not occur in the text, so no character inside is
 *   special (Lmod reads the file with Lua's own parser).
 * - Tcl: every character Tcl would interpret (`$ [ ] { } \ "`, `;`, spaces)
 *   behind a backslash, so one path is one word with no substitution.
 *   Braces cannot carry an unbalanced brace or a trailing backslash.
 *
 * A newline is refused earlier (a PATH entry cannot hold one, and Lmod's Tcl
 * translation cuts lines); so is `:`, the separator of every path list.
 */

/** `s` as a Lua long-bracket string literal. */
export function luaString(s: string): string {
  let level = 0
  while (s.includes(`]${'='.repeat(level)}]`) || s.endsWith(`]${'='.repeat(level)}`)) level++
  const eq = '='.repeat(level)
  // a newline right after the opening bracket is dropped by Lua: keep one that the text starts with
  const lead = s.startsWith('\n') ? '\n' : ''
  return `[${eq}[${lead}${s}]${eq}]`
}

/** `s` as one Tcl word, substituted to exactly itself. */
export function tclWord(s: string): string {
  if (s === '') return '{}'
  return s.replace(/[\\$[\]{}";\s#]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\${c}`))
}
