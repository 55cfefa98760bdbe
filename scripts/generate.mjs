/**
 * Files generated from the command table (src/cli/spec.ts) after tsc has
 * compiled it: the shell completion scripts in dist/completion/ (for
 * packagers: bash-completion's completions/viewctl, zsh's _viewctl, fish's
 * viewctl.fish) and the manual page dist/man/viewctl.1, which package.json's
 * `man` installs. `viewctl completion <shell>` prints the same scripts.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dist = path.join(root, 'dist')
const { completionScript, COMPLETION_FILES } = await import(pathToFileURL(path.join(dist, 'cli', 'completion', 'index.js')).href)
const { manPage } = await import(pathToFileURL(path.join(dist, 'cli', 'manpage.js')).href)

const completions = path.join(dist, 'completion')
fs.mkdirSync(completions, { recursive: true })
for (const [shell, file] of Object.entries(COMPLETION_FILES)) fs.writeFileSync(path.join(completions, file), completionScript(shell))

const man = path.join(dist, 'man')
fs.mkdirSync(man, { recursive: true })
const epoch = Number(process.env.SOURCE_DATE_EPOCH)
fs.writeFileSync(path.join(man, 'viewctl.1'), manPage(Number.isFinite(epoch) && epoch > 0 ? new Date(epoch * 1000) : new Date()))
