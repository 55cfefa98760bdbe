/**
 * Loading a manifest (DESIGN.md §3): read → parse YAML keeping positions →
 * validate against schemas/manifest.schema.json → normalize (defaults,
 * absolute paths, globs expanded) → check the prefixes. Nothing is written;
 * every way the input can be wrong ends here as a ViewError whose message
 * points at file:line:column, so later stages can trust a `Manifest`.
 *
 * The YAML parser and the validator are loaded only to parse: a caller that
 * remembers the validated document of this exact text (`DocumentMemory`,
 * regenerate's scan cache) gets it back without either, and the manifest is
 * normalized from it as from a fresh parse. Only a problem found then (a
 * prefix gone, say) needs a line and column, and for that the text is parsed
 * after all (positions.ts).
 *
 * Messages name the manifest by the path the user gave (a relative path stays
 * relative), because that is what they typed and what their editor shows.
 */
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { ErrorObject, ValidateFunction } from 'ajv'
import { PREFIX_PERMISSION_HINT, ViewError, translateOsError } from '../errors.js'
import { toolVersion } from '../version.js'
import { formatProblems, notParsed, type Positions, type Problem } from './positions.js'
import { parseDuration } from './duration.js'
import { DEFAULT_ENV, DEFAULT_GC, type ConflictPolicy, type GcPolicy, type LinkMode, type Manifest, type ModuleTreeSettings, type PackageSpec } from './types.js'

/** The schema file; dist/manifest/ and src/manifest/ both sit two levels below the package root. */
export const MANIFEST_SCHEMA_URL = new URL('../../schemas/manifest.schema.json', import.meta.url)
const SCHEMA_HINT = 'see the manifest reference in README.md and schemas/manifest.schema.json (point your editor\'s YAML support at that schema to catch these while typing)'

/** The manifest as the schema guarantees it, before defaults. */
interface RawPackageEntry {
  path?: string
  glob?: string
  include?: string[]
  exclude?: string[]
  priority?: number
}

interface RawManifest {
  view: string
  link?: LinkMode
  fold?: boolean
  relative?: boolean
  share?: boolean
  conflicts?: ConflictPolicy
  packages: Array<string | RawPackageEntry>
  include?: string[]
  exclude?: string[]
  env?: Record<string, string[]>
  gc?: { keep?: number; ttl?: string | number; auto?: boolean }
  modules?: { dir: string; format?: 'lua' | 'tcl'; name?: string; family?: string; generations?: boolean }
}

/**
 * What regenerate remembers of a manifest between runs: its validated
 * document, which is a function of `key` alone (the text and the code that
 * parsed it; `documentKey`). It keeps it in the scan cache, so that a no-op
 * neither loads the YAML parser nor validates (docs/how-it-works.md). Not
 * part of the library's API: a recalled document is not validated again, so
 * only viewctl's own cache may give one.
 */
export interface DocumentMemory {
  /** The document remembered under exactly this key (made from `text`), as plain JSON data; undefined when there is none. */
  recall(key: string, text: string): unknown
  /** Called after a parse and validation, with what to remember. */
  remember(key: string, document: unknown): void
}

export async function loadManifest(file: string): Promise<Manifest> {
  return loadManifestRemembering(file, null)
}

/** loadManifest, with the validated document recalled from `memory` when it knows this text, and given to it when parsed. */
export async function loadManifestRemembering(file: string, memory: DocumentMemory | null): Promise<Manifest> {
  const text = await readManifestText(file)
  const key = memory ? documentKey(text) : ''
  const recalled = memory?.recall(key, text)
  if (recalled !== undefined) {
    try {
      return await normalize(file, text, notParsed(file), recalled as RawManifest)
    } catch (err) {
      // A problem to report needs a line and column (PositionsNeeded): parse after all and report it from
      // there. Anything else but a ViewError (or an internal one) means the memory held something that is
      // not a manifest: parse too.
      if (err instanceof ViewError && err.code !== 'INTERNAL') throw err
    }
  }
  const { positions, raw } = await parseAndValidate(file, text)
  const manifest = await normalize(file, text, positions, raw)
  memory?.remember(key, raw)
  return manifest
}

async function parseAndValidate(file: string, text: string): Promise<{ positions: Positions; raw: RawManifest }> {
  const { parseManifestText } = await import('./yaml-source.js')
  const { positions, data } = parseManifestText(file, text)
  return { positions, raw: await validateManifest(positions, data) }
}

/**
 * Check a manifest as regenerate does, except its packages: the syntax, the
 * schema, the view path, the values (`env:`, whole numbers) and the gc
 * policy. For the
 * commands that read only the view a manifest names (status, verify), so that
 * a manifest regenerate would refuse is refused there too, while a prefix that
 * has gone missing does not stop a look at the view. Returns the view path.
 */
export async function checkManifest(file: string): Promise<string> {
  const { positions, raw } = await parseAndValidate(file, await readManifestText(file))
  return settingsOf(positions, raw, path.dirname(path.resolve(file))).view
}

/** What a manifest says besides its packages, each value checked: the view path, the values (`env:`, whole numbers) and the gc policy. */
function settingsOf(source: Positions, raw: RawManifest, baseDir: string): { view: string; gc: GcPolicy } {
  const view = resolveView(source, raw, baseDir)
  checkValues(source, raw)
  return { view, gc: resolveGcPolicy(source, raw) }
}

async function normalize(file: string, text: string, source: Positions, raw: RawManifest): Promise<Manifest> {
  const baseDir = path.dirname(path.resolve(file))
  const { view, gc } = settingsOf(source, raw, baseDir)
  const packages = await resolvePackages(source, raw, baseDir, view)
  return {
    file: path.resolve(file),
    text,
    view,
    link: raw.link ?? 'symlink',
    fold: raw.fold ?? true,
    relative: raw.relative ?? false,
    share: raw.share ?? true,
    conflicts: raw.conflicts ?? 'error',
    packages,
    include: raw.include ? normalizePatterns(raw.include) : null,
    exclude: normalizePatterns(raw.exclude ?? []),
    env: copyEnv(raw.env ?? DEFAULT_ENV),
    gc,
    modules: raw.modules ? moduleTreeSettings(raw.modules, baseDir) : null,
  }
}

/**
 * The key a validated document is remembered by: the code that parsed and
 * validated it, and the manifest's text. The same key gives the same document.
 *
 * The code is named by the viewctl version and by this module's URL, size and
 * modification time. In the bundle (scripts/bundle.mjs, what bin/viewctl runs)
 * each file's name holds a hash of its content and of the names of the chunks
 * it imports, the YAML parser's and the validator's among them, so any change
 * to either is a new URL. In dist/ (the library), a rebuild of viewctl
 * rewrites the file, a new mtime; but `yaml` is loaded from node_modules
 * there, and a new `yaml` under an unchanged viewctl is not seen: the
 * document it would parse differently is recalled until viewctl changes.
 */
export function documentKey(text: string): string {
  codePrint ??= codeIdentity()
  return `${codePrint}\n${text}`
}

let codePrint: string | undefined

function codeIdentity(): string {
  let stamp = ''
  try {
    const st = fs.statSync(new URL(import.meta.url))
    stamp = ` ${st.size} ${st.mtimeMs}`
  } catch {
    // not loaded from a file: the version and the URL must do
  }
  return `viewctl ${toolVersion()} ${import.meta.url}${stamp}`
}

// ---------------------------------------------------------------------------
// Reading

async function readManifestText(file: string): Promise<string> {
  try {
    return await fsp.readFile(file, 'utf8')
  } catch (err) {
    throw manifestUnreadable(file, err)
  }
}

function manifestUnreadable(file: string, err: unknown): ViewError {
  const code = (err as NodeJS.ErrnoException).code
  const options = { cause: err }
  if (code === 'EISDIR') {
    return new ViewError('MANIFEST_NOT_FOUND', `manifest ${file} is a directory, not a file`, `pass the manifest file itself, e.g. ${path.join(file, 'env.yaml')}`, undefined, options)
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new ViewError('MANIFEST_NOT_FOUND', `manifest ${file} cannot be read: permission denied`, 'check the permissions of the file and of the directories above it', undefined, options)
  }
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ViewError('MANIFEST_NOT_FOUND', `manifest ${file} does not exist`, 'check the path; a manifest is a YAML file such as env.yaml (see examples/ for working ones)', undefined, options)
  }
  return new ViewError('MANIFEST_NOT_FOUND', `manifest ${file} cannot be read: ${code ?? String(err)}`, 'check the path and the filesystem, then retry', undefined, options)
}

function decodePointer(pointer: string): string[] {
  if (pointer === '') return []
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

// ---------------------------------------------------------------------------
// Validation

/**
 * The ajv options the manifest is validated with. Exported so the tests (and a
 * future standalone precompile) build the very same validator with strict checks on.
 * strictRequired stays off because `oneOf: [{required: [path]}, {required: [glob]}]` is the point.
 */
export const MANIFEST_AJV_OPTIONS = { allErrors: true, verbose: true, allowUnionTypes: true, strictRequired: false } as const

let validatorPromise: Promise<ValidateFunction> | undefined

/**
 * The validator, loaded once per process. It is precompiled from the schema
 * (scripts/build-validator.mjs, with MANIFEST_AJV_OPTIONS) into
 * schema-validator.ts: importing and compiling ajv at every run cost ~90 ms
 * (docs/benchmarks.md); the standalone module loads in a few. The test suite
 * checks that it matches the schema and compiles the schema itself, strictly.
 */
function getValidator(): Promise<ValidateFunction> {
  validatorPromise ??= loadValidator().catch((err: unknown) => {
    validatorPromise = undefined
    throw err
  })
  return validatorPromise
}

async function loadValidator(): Promise<ValidateFunction> {
  const { default: validate } = await import('./schema-validator.js')
  return validate as unknown as ValidateFunction
}

async function validateManifest(source: Positions, data: Record<string, unknown>): Promise<RawManifest> {
  const validate = await getValidator()
  if (validate(data)) return data as unknown as RawManifest
  const problems = describeSchemaErrors(source, data, validate.errors ?? [])
  const lines = formatProblems(source, problems)
  throw new ViewError('MANIFEST_INVALID', lines.join('\n'), SCHEMA_HINT, { errors: lines })
}

const PACKAGE_ITEM = /^\/packages\/(\d+)(?=\/|$)/

function describeSchemaErrors(source: Positions, data: unknown, errors: ErrorObject[]): Problem[] {
  const byPackage = new Map<number, ErrorObject[]>()
  const problems: Problem[] = []
  for (const error of errors) {
    const item = PACKAGE_ITEM.exec(error.instancePath)
    if (item) {
      const index = Number(item[1])
      byPackage.set(index, [...(byPackage.get(index) ?? []), error])
    } else {
      problems.push(...describeError(source, data, error))
    }
  }
  for (const [index, itemErrors] of byPackage) problems.push(...describePackageItem(source, data, index, itemErrors))
  return problems
}

/**
 * A package item is `string | {path|glob, …}`, so ajv reports both branches of
 * the oneOf for every bad item. Decide from the data which branch the user
 * meant and say one thing about it, keeping errors nested inside an entry
 * (`packages[2].path: must be a string`, unknown keys) as they are.
 */
function describePackageItem(source: Positions, data: unknown, index: number, errors: ErrorObject[]): Problem[] {
  const pointer = ['packages', String(index)]
  const item = (data as { packages: unknown[] }).packages[index]
  const name = `packages[${index}]`
  const offset = source.valueOffset(pointer)
  if (typeof item === 'string') return [{ offset, text: `${name}: must not be an empty path` }]
  if (!isPlainObject(item)) return [{ offset, text: `${name}: must be a path string or a mapping with \`path\` or \`glob\`` }]

  const problems: Problem[] = []
  const hasPath = 'path' in item
  if (hasPath === 'glob' in item) {
    problems.push({ offset, text: hasPath ? `${name}: has both \`path\` and \`glob\`; give one of them` : `${name}: needs \`path\` or \`glob\`` })
  }
  const itemPath = `/packages/${index}`
  for (const error of errors) {
    const nested = error.instancePath !== itemPath
    if (nested || error.keyword === 'additionalProperties') problems.push(...describeError(source, data, error))
  }
  return problems
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Patterns the schema uses, in words. `always` marks values whose every rule
 * (type, minimum, pattern) is best answered by the one sentence: `gc.ttl: true`
 * and `gc.ttl: 7x` both want "must be a duration".
 */
const PATTERN_MEANINGS: Record<string, { text: string; always: boolean }> = {
  '^[0-9]+[smhdw]?$': { text: 'must be a duration like 30s, 5m, 12h, 7d or 2w, or a number of seconds', always: true },
  '^[^/]': { text: 'must be a directory relative to the view root (no leading /)', always: false },
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  null: 'empty',
}

function describeError(source: Positions, data: unknown, error: ErrorObject): Problem[] {
  const pointer = decodePointer(error.instancePath)
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty)
      const allowed = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {})
      return [{ offset: source.keyOffset(pointer, key), text: `${dataPath(data, [...pointer, key])}: unknown key (allowed: ${allowed.join(', ')})` }]
    }
    case 'propertyNames': {
      const key = String(params.propertyName)
      return [{ offset: source.keyOffset(pointer, key), text: `${dataPath(data, [...pointer, key])}: not a valid variable name (letters, digits and _, not starting with a digit)` }]
    }
    case 'required': {
      const key = String(params.missingProperty)
      return [{ offset: source.valueOffset(pointer), text: `${dataPath(data, [...pointer, key])}: required key is missing` }]
    }
    case 'pattern':
      // propertyNames reports its own error for the same key; this one would only repeat it.
      if (error.schemaPath.includes('/propertyNames/')) return []
      break
  }
  const value = valueAt(data, pointer)
  return [{ offset: source.valueOffset(pointer), text: `${dataPath(data, pointer)}: ${describeRule(error, value)}` }]
}

function describeRule(error: ErrorObject, value: unknown): string {
  const params = error.params as Record<string, unknown>
  const pattern = (error.parentSchema as { pattern?: string } | undefined)?.pattern
  const meaning = pattern === undefined ? undefined : PATTERN_MEANINGS[pattern]
  if (meaning && (meaning.always || error.keyword === 'pattern')) return meaning.text
  switch (error.keyword) {
    case 'type':
      return `must be ${String(params.type).split(',').map((t) => TYPE_WORDS[t] ?? t).join(' or ')}`
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).map(String).join(', ')} (got ${JSON.stringify(value)})`
    case 'minLength':
      return 'must not be empty'
    case 'minItems':
      return params.limit === 1 ? 'must not be an empty list' : `must list at least ${String(params.limit)} items`
    case 'minimum':
      return `must be ${String(params.limit)} or more`
    default:
      return error.message ?? `breaks the schema rule ${error.schemaPath}`
  }
}

function valueAt(data: unknown, pointer: string[]): unknown {
  let current = data
  for (const segment of pointer) {
    if (current === null || typeof current !== 'object') return undefined
    current = (current as Record<string, unknown>)[segment]
  }
  return current
}

/** `packages[2].path`, `gc.kep`, `env["MY VAR"]`: how a user would name the node. */
function dataPath(data: unknown, pointer: string[]): string {
  let text = ''
  let current = data
  for (const segment of pointer) {
    if (Array.isArray(current)) text += `[${segment}]`
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) text += text ? `.${segment}` : segment
    else text += `[${JSON.stringify(segment)}]`
    current = current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[segment] : undefined
  }
  return text || '(the manifest)'
}

// ---------------------------------------------------------------------------
// Normalization

function resolveView(source: Positions, raw: RawManifest, baseDir: string): string {
  const view = path.resolve(baseDir, raw.view)
  if (view === path.parse(view).root) {
    throw new ViewError('MANIFEST_INVALID', `${source.at(source.valueOffset(['view']))}: view: ${view} cannot be a view (it is the filesystem root)`, 'name a path such as /opt/views/hpc; viewctl keeps a store beside it, so its parent must be writable')
  }
  if (view.includes(':')) {
    // activate and exec put the view in PATH-like lists, where ':' separates entries
    throw new ViewError('MANIFEST_INVALID', `${source.at(source.valueOffset(['view']))}: view: ${view} contains ':', which separates the entries of PATH and the other variables a view is exported in`, 'choose a view path without a colon')
  }
  return view
}

/** Strip the spellings that mean the same pattern (`./bin/` is `bin`); an empty result means everything. */
function normalizePatterns(patterns: string[]): string[] {
  return patterns.map((pattern) => {
    let p = pattern
    while (p.startsWith('./')) p = p.slice(2)
    while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1)
    return p === '' || p === '.' || p === '/' ? '**' : p
  })
}

/**
 * Numbers the schema calls integers but JSON Schema lets through: YAML's
 * `.inf` and `1e400` are numbers with no fractional part, and would be
 * stored as null in the journal (JSON has no infinity), silently becoming
 * the default. Only whole numbers a double holds exactly are accepted. A
 * document recalled from the scan cache is checked again: a value that is
 * not a number there at all is refused the same way.
 */
function wholeNumberProblems(source: Positions, raw: RawManifest): Problem[] {
  const problems: Problem[] = []
  const check = (value: unknown, pointer: string[]) => {
    if (value === undefined || (typeof value === 'number' && Number.isSafeInteger(value))) return
    const shown = typeof value === 'number' && !Number.isFinite(value) ? 'infinity' : JSON.stringify(value)
    problems.push({ offset: source.valueOffset(pointer), text: `${dataPath(raw, pointer)}: must be a whole number (got ${shown})` })
  }
  check(raw.gc?.keep, ['gc', 'keep'])
  if (typeof raw.gc?.ttl !== 'string') check(raw.gc?.ttl, ['gc', 'ttl'])
  raw.packages.forEach((entry, i) => {
    if (typeof entry === 'object' && entry !== null) check(entry.priority, ['packages', String(i), 'priority'])
  })
  return problems
}

/**
 * `env:` entries are directories inside the view: `activate` and `exec` put
 * them in PATH-like lists for every user of the view, so an entry that
 * leads out of it (`../../../etc`) or carries the list separator `:` (which
 * would add a directory of its own) is refused here, at load, rather than
 * by every shell that later activates the view.
 */
function envProblems(source: Positions, raw: RawManifest): Problem[] {
  const problems: Problem[] = []
  for (const [name, dirs] of Object.entries(raw.env ?? {})) {
    if (!Array.isArray(dirs)) continue
    dirs.forEach((dir, i) => {
      if (typeof dir !== 'string') return
      const normal = path.posix.normalize(dir)
      let why: string | null = null
      if (normal === '..' || normal.startsWith('../')) why = 'leads outside the view'
      else if (dir.includes(':')) why = "contains ':', which separates the entries of PATH-like variables"
      if (why !== null) problems.push({ offset: source.valueOffset(['env', name, String(i)]), text: `${dataPath(raw, ['env', name, String(i)])}: ${JSON.stringify(dir)} ${why}` })
    })
  }
  return problems
}

/** Values the schema accepts but a view cannot use: every one of them reported at once, in file order. */
function checkValues(source: Positions, raw: RawManifest): void {
  const numbers = wholeNumberProblems(source, raw)
  const env = envProblems(source, raw)
  if (numbers.length + env.length === 0) return
  const lines = formatProblems(source, [...numbers, ...env])
  const hints = [
    numbers.length > 0 ? 'write whole numbers such as 2 or 10 (YAML reads .inf, 1e400 and 2.5 as numbers, but none of them counts generations or ranks a package)' : '',
    env.length > 0 ? 'list env directories inside the view, relative to its root, e.g. bin or lib/pkgconfig ("." is the root itself)' : '',
  ]
  throw new ViewError('MANIFEST_INVALID', lines.join('\n'), hints.filter(Boolean).join('; '), { errors: lines })
}

function moduleTreeSettings(raw: NonNullable<RawManifest['modules']>, baseDir: string): ModuleTreeSettings {
  const settings: ModuleTreeSettings = { dir: path.resolve(baseDir, raw.dir), format: raw.format ?? 'lua', generations: raw.generations ?? false }
  if (raw.name !== undefined) settings.name = raw.name
  if (raw.family !== undefined) settings.family = raw.family
  return settings
}

function copyEnv(env: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(env).map(([name, dirs]) => [name, [...dirs]]))
}

function resolveGcPolicy(source: Positions, raw: RawManifest): GcPolicy {
  const ttl = raw.gc?.ttl === undefined ? DEFAULT_GC.ttl : String(raw.gc.ttl)
  let ttlMs: number
  try {
    ttlMs = parseDuration(ttl)
  } catch (err) {
    throw new ViewError('MANIFEST_INVALID', `${source.at(source.valueOffset(['gc', 'ttl']))}: gc.ttl: ${(err as Error).message}`, (err as ViewError).hint)
  }
  return {
    keep: raw.gc?.keep ?? DEFAULT_GC.keep,
    ttl,
    ttlMs,
    auto: raw.gc?.auto ?? DEFAULT_GC.auto,
  }
}

// ---------------------------------------------------------------------------
// Packages

/** A prefix named by the manifest, before it is checked on disk. */
interface Candidate {
  spec: Omit<PackageSpec, 'realPath'>
  /** Where to point when this prefix is wrong: the path string or the glob (asked only then: it may need a parse). */
  where: () => number
}

/** A problem that stops the load, with the code and advice for its kind; placed only when reported. */
interface PrefixProblem {
  code: 'PREFIX_INVALID' | 'PREFIX_UNREADABLE' | 'GLOB_EMPTY' | 'VIEW_INSIDE_PREFIX' | 'VIEW_PATH_INVALID'
  text: string
  hint: string
  where: () => number
}

async function resolvePackages(source: Positions, raw: RawManifest, baseDir: string, view: string): Promise<PackageSpec[]> {
  const problems: PrefixProblem[] = []
  // Entries are looked at concurrently (a shared filesystem answers faster that way) and kept in manifest order.
  const expanded = await Promise.all(raw.packages.map((entry, index) => expandEntry(source, entry, index, baseDir, problems)))
  const candidates = expanded.flat()
  const [checked, viewTree] = await Promise.all([Promise.all(candidates.map((c) => checkPrefix(c, baseDir))), viewTreeOf(view)])
  if (viewTree.blockedBy !== null) {
    problems.push({
      code: 'VIEW_PATH_INVALID',
      where: () => source.valueOffset(['view']),
      text: `view: ${view} cannot be made: ${viewTree.blockedBy} is not a directory`,
      hint: `a view and its store live in a directory; name a path whose parent is a directory (or does not exist yet), not one below the file ${viewTree.blockedBy}`,
    })
  }
  const packages: PackageSpec[] = []
  const seen = new Set<string>()
  for (const [i, result] of checked.entries()) {
    if ('code' in result) {
      problems.push(result)
      continue
    }
    const overlap = overlapWithView(candidates[i], result.realPath, viewTree)
    if (overlap) problems.push(overlap)
    // The first mention wins, so its options and its place in the merge order are kept.
    if (seen.has(result.realPath)) continue
    seen.add(result.realPath)
    packages.push({ ...candidates[i].spec, realPath: result.realPath })
  }
  if (problems.length > 0) throw prefixError(source, problems)
  return packages
}

function prefixError(source: Positions, prefixProblems: PrefixProblem[]): ViewError {
  const problems = prefixProblems.map((p) => ({ ...p, offset: p.where() }))
  const first = [...problems].sort((a, b) => a.offset - b.offset)[0]
  const lines = formatProblems(source, problems)
  return new ViewError(first.code, lines.join('\n'), first.hint, { errors: lines })
}

async function expandEntry(source: Positions, entry: string | RawPackageEntry, index: number, baseDir: string, problems: PrefixProblem[]): Promise<Candidate[]> {
  const origin = `packages[${index}]`
  if (typeof entry === 'string') {
    return [{ spec: packageSpec(path.resolve(baseDir, entry), {}, origin), where: () => source.valueOffset(['packages', String(index)]) }]
  }
  if (entry.path !== undefined) {
    return [{ spec: packageSpec(path.resolve(baseDir, entry.path), entry, origin), where: () => source.valueOffset(['packages', String(index), 'path']) }]
  }
  const glob = entry.glob as string
  const where = () => source.valueOffset(['packages', String(index), 'glob'])
  const matches = await expandGlob(glob, baseDir, origin)
  if (matches.length === 0) {
    problems.push({ code: 'GLOB_EMPTY', where, text: `${origin}.glob: ${glob} matches no directory`, hint: `check the pattern (relative patterns start from ${baseDir}; fast-glob syntax), install the packages it should find, or remove the entry` })
  }
  return matches.map((match) => ({ spec: packageSpec(match, entry, `${origin} (glob ${glob})`), where }))
}

function packageSpec(prefix: string, entry: RawPackageEntry, origin: string): Omit<PackageSpec, 'realPath'> {
  return {
    path: prefix,
    include: entry.include ? normalizePatterns(entry.include) : null,
    exclude: normalizePatterns(entry.exclude ?? []),
    priority: entry.priority ?? 0,
    origin,
  }
}

async function expandGlob(pattern: string, baseDir: string, origin: string): Promise<string[]> {
  // Loaded on demand: most manifests list plain paths and should not pay for fast-glob.
  const { default: fg } = await import('fast-glob')
  let matches: string[]
  try {
    matches = await fg(pattern, { cwd: baseDir, onlyDirectories: true, absolute: true, dot: true, followSymbolicLinks: true })
  } catch (err) {
    throw translateOsError(err, `expanding ${origin}.glob ${pattern}`)
  }
  // Plain code-unit order: the merge order must not depend on the locale.
  return matches.map((m) => path.resolve(m)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

async function checkPrefix(candidate: Candidate, baseDir: string): Promise<{ realPath: string } | PrefixProblem> {
  const { path: prefix, origin } = candidate.spec
  const invalid = (what: string, hint: string): PrefixProblem => ({ code: 'PREFIX_INVALID', where: candidate.where, text: `${origin}: ${prefix} ${what}`, hint })
  const missingHint = `check the path (relative paths resolve from ${baseDir}); install the package first or remove it from packages`
  try {
    const stat = await fsp.stat(prefix)
    if (!stat.isDirectory()) return invalid('is not a directory', 'a prefix is an install directory (the one holding bin/, lib/, include/ …); name that directory, not a file in it')
    return { realPath: await fsp.realpath(prefix) }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return invalid('does not exist', missingHint)
    if (code === 'EACCES' || code === 'EPERM') {
      // a permission problem, not a wrong path: exit 1, like a directory inside the prefix that cannot be read (plan/merge.ts)
      return { ...invalid('cannot be reached: permission denied (search permission is missing on a directory above it)', PREFIX_PERMISSION_HINT), code: 'PREFIX_UNREADABLE' }
    }
    if (code === 'ELOOP') return invalid('is a symlink loop', 'fix the symlink so that it points at the install directory')
    return invalid(`cannot be checked (${code ?? String(err)})`, 'check the path and the filesystem, then retry')
  }
}

// ---------------------------------------------------------------------------
// The view must not overlap its inputs

interface ViewTree {
  view: string
  /** The view path with every existing ancestor resolved, but not the view itself (it is our symlink). */
  viewReal: string
  storeReal: string
  /** The deepest existing ancestor of the view, when it is not a directory (a file): the view cannot be made. */
  blockedBy: string | null
}

async function viewTreeOf(view: string): Promise<ViewTree> {
  const { real, existing } = await realpathOfDeepestAncestor(path.dirname(view))
  const viewReal = path.join(real, path.basename(view))
  let blockedBy: string | null = null
  try {
    if (existing !== null && !(await fsp.stat(existing)).isDirectory()) blockedBy = existing
  } catch {
    // gone since: the writer finds out
  }
  return { view, viewReal, storeReal: path.join(path.dirname(viewReal), `._${path.basename(viewReal)}`), blockedBy }
}

/**
 * realpath() of the deepest part of `p` that exists, with the rest appended: where `p` will be once created;
 * and that deepest existing part, as `p` names it (null when nothing of it resolves).
 */
async function realpathOfDeepestAncestor(p: string): Promise<{ real: string; existing: string | null }> {
  const missing: string[] = []
  let current = p
  for (;;) {
    try {
      return { real: path.join(await fsp.realpath(current), ...missing.reverse()), existing: current }
    } catch {
      const parent = path.dirname(current)
      if (parent === current) return { real: p, existing: null }
      missing.push(path.basename(current))
      current = parent
    }
  }
}

function isWithin(child: string, ancestor: string): boolean {
  if (child === ancestor) return true
  const withSep = ancestor.endsWith(path.sep) ? ancestor : ancestor + path.sep
  return child.startsWith(withSep)
}

function overlapWithView(candidate: Candidate, realPath: string, tree: ViewTree): PrefixProblem | null {
  const { path: prefix, origin } = candidate.spec
  const shown = realPath === prefix ? prefix : `${prefix} (really ${realPath})`
  const problem = (what: string): PrefixProblem => ({
    code: 'VIEW_INSIDE_PREFIX',
    where: candidate.where,
    text: `${origin}: ${shown} ${what}`,
    hint: `keep the view and its store (._${path.basename(tree.view)} beside it) outside every prefix, and do not list the view or anything under it as a package`,
  })
  if (realPath === tree.viewReal) return problem('is the view itself; the view would end up inside its own input')
  if (realPath === tree.storeReal) return problem('is the view\'s store; the view would end up inside its own input')
  if (isWithin(tree.viewReal, realPath)) return problem(`contains the view ${tree.view}; the view would end up inside its own input`)
  if (isWithin(realPath, tree.storeReal)) return problem(`lies inside the view's store ${tree.storeReal}; a view cannot take its own generations as input`)
  if (isWithin(realPath, tree.viewReal)) return problem(`lies inside the view ${tree.view}; a view cannot take its own contents as input`)
  return null
}
