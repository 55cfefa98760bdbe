import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { parse as parseYaml } from 'yaml'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ViewError } from '../src/errors.js'
import { formatDuration, parseDuration } from '../src/manifest/duration.js'
import { MANIFEST_AJV_OPTIONS, MANIFEST_SCHEMA_URL, documentKey, loadManifest, loadManifestRemembering, type DocumentMemory } from '../src/manifest/load.js'
import { guessViewPath } from '../src/manifest/target.js'
import { DEFAULT_ENV, DEFAULT_GC } from '../src/manifest/types.js'

function tempDir(): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-')))
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Create directories (prefixes) under `root`. */
function mkdirs(root: string, ...rels: string[]): void {
  for (const rel of rels) fs.mkdirSync(path.join(root, rel), { recursive: true })
}

function writeManifest(dir: string, text: string, name = 'env.yaml'): string {
  const file = path.join(dir, name)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, text)
  return file
}

async function loadError(file: string): Promise<ViewError> {
  const err = await loadManifest(file).then(
    () => null,
    (e: unknown) => e,
  )
  expect(err, 'loadManifest should have failed').toBeInstanceOf(ViewError)
  return err as ViewError
}

describe('schemas/manifest.schema.json', () => {
  const schema = JSON.parse(fs.readFileSync(MANIFEST_SCHEMA_URL, 'utf8')) as Record<string, unknown>

  // loadManifest skips these checks to start fast; this is where they happen.
  it('is valid JSON Schema 2020-12 and compiles in ajv strict mode', () => {
    const ajv = new Ajv2020({ ...MANIFEST_AJV_OPTIONS, strict: true })
    expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).toBe(true)
    expect(() => ajv.compile(schema)).not.toThrow()
    expect(schema).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', $id: expect.any(String), title: expect.any(String) })
  })

  it('describes every property', () => {
    const undescribed: string[] = []
    const visit = (node: unknown, where: string): void => {
      if (node === null || typeof node !== 'object') return
      const obj = node as Record<string, unknown>
      for (const [name, sub] of Object.entries((obj.properties ?? {}) as Record<string, unknown>)) {
        if (!(sub as { description?: string }).description) undescribed.push(`${where}.${name}`)
        visit(sub, `${where}.${name}`)
      }
      for (const [name, sub] of Object.entries((obj.$defs ?? {}) as Record<string, unknown>)) {
        if (!(sub as { description?: string }).description) undescribed.push(`$defs.${name}`)
        visit(sub, `$defs.${name}`)
      }
      for (const key of ['items', 'additionalProperties', 'propertyNames']) visit(obj[key], `${where}[${key}]`)
    }
    visit(schema, '')
    expect(undescribed).toEqual([])
  })

  it('accepts the example manifest of DESIGN.md §3', () => {
    const example = parseYaml([
      'view: /opt/views/hpc',
      'link: symlink',
      'fold: true',
      'relative: false',
      'conflicts: error',
      'packages:',
      '  - /opt/spack/linux-x86_64/gcc-12/zlib-1.3-abcdef',
      '  - path: /opt/apps/hdf5/1.14.3',
      '    exclude: ["share/doc/**"]',
      '    priority: 10',
      '  - glob: /opt/apps/python/3.12.*',
      'include: ["bin/**", "lib/**", "include/**", "share/**"]',
      'exclude: ["**/*.la", ".spack/**"]',
      'env:',
      '  PATH: [bin]',
      '  MANPATH: [share/man]',
      '  PKG_CONFIG_PATH: [lib/pkgconfig, share/pkgconfig]',
      '  CMAKE_PREFIX_PATH: ["."]',
      'gc:',
      '  keep: 2',
      '  ttl: 7d',
      '  auto: true',
    ].join('\n')) as unknown
    const validate = new Ajv2020({ ...MANIFEST_AJV_OPTIONS, strict: true }).compile(schema)
    expect(validate(example), JSON.stringify(validate.errors)).toBe(true)
  })
})

describe('loadManifest: normalization', () => {
  it('fills in every default from DESIGN §3', async () => {
    const dir = tempDir()
    mkdirs(dir, 'prefixes/zlib')
    const text = 'view: views/hpc\npackages:\n  - prefixes/zlib\n'
    const file = writeManifest(dir, text)

    const m = await loadManifest(file)

    expect(m).toEqual({
      file,
      text,
      view: path.join(dir, 'views/hpc'),
      link: 'symlink',
      fold: true,
      relative: false,
      share: true,
      conflicts: 'error',
      packages: [{ path: path.join(dir, 'prefixes/zlib'), realPath: path.join(dir, 'prefixes/zlib'), include: null, exclude: [], priority: 0, origin: 'packages[0]' }],
      include: null,
      exclude: [],
      env: DEFAULT_ENV,
      gc: DEFAULT_GC,
      modules: null,
    })
    // Callers may mutate what they get; the module's defaults must not change under them.
    expect(m.env).not.toBe(DEFAULT_ENV)
    expect(m.env.PATH).not.toBe(DEFAULT_ENV.PATH)
    expect(m.gc).not.toBe(DEFAULT_GC)
  })

  it('keeps every field that is given, normalizing pattern spellings', async () => {
    const dir = tempDir()
    mkdirs(dir, 'a', 'b')
    const file = writeManifest(dir, [
      'view: /opt/views/hpc',
      'link: hardlink',
      'fold: false',
      'relative: true',
      'conflicts: last',
      'packages:',
      '  - path: a',
      '    include: ["./bin/", "lib/**"]',
      '    exclude: [share/doc/]',
      '    priority: -3',
      '  - path: b',
      '    priority: 10',
      'include: ["./", "bin"]',
      'exclude: ["**/*.la", ".spack/"]',
      'env:',
      '  PATH: [bin, sbin]',
      '  LD_LIBRARY_PATH: [lib]',
      'gc:',
      '  ttl: 12h',
      '',
    ].join('\n'))

    const m = await loadManifest(file)

    expect(m.view).toBe('/opt/views/hpc')
    expect(m.link).toBe('hardlink')
    expect(m.fold).toBe(false)
    expect(m.relative).toBe(true)
    expect(m.conflicts).toBe('last')
    expect(m.packages.map((p) => [p.path, p.include, p.exclude, p.priority, p.origin])).toEqual([
      [path.join(dir, 'a'), ['bin', 'lib/**'], ['share/doc'], -3, 'packages[0]'],
      [path.join(dir, 'b'), null, [], 10, 'packages[1]'],
    ])
    expect(m.include).toEqual(['**', 'bin'])
    expect(m.exclude).toEqual(['**/*.la', '.spack'])
    // A given env replaces the defaults entirely.
    expect(m.env).toEqual({ PATH: ['bin', 'sbin'], LD_LIBRARY_PATH: ['lib'] })
    // A given gc is merged into the defaults.
    expect(m.gc).toEqual({ keep: 2, ttl: '12h', ttlMs: 12 * 3600_000, auto: true })
  })

  it('reads a bare number as a ttl in seconds', async () => {
    const dir = tempDir()
    mkdirs(dir, 'a')
    const file = writeManifest(dir, 'view: v\npackages: [a]\ngc: {keep: 0, ttl: 3600, auto: false}\n')
    expect((await loadManifest(file)).gc).toEqual({ keep: 0, ttl: '3600', ttlMs: 3600_000, auto: false })
  })

  it('resolves relative view and package paths from the manifest folder, not the working directory', async () => {
    const dir = tempDir()
    mkdirs(dir, 'prefixes/hdf5', 'prefixes/zlib')
    const file = writeManifest(dir, 'view: ../views/hpc\npackages:\n  - ../prefixes/zlib\n  - path: ../prefixes/./hdf5/\n', 'conf/env.yaml')
    expect(process.cwd()).not.toBe(path.dirname(file))

    const m = await loadManifest(file)

    expect(m.view).toBe(path.join(dir, 'views/hpc'))
    expect(m.packages.map((p) => p.path)).toEqual([path.join(dir, 'prefixes/zlib'), path.join(dir, 'prefixes/hdf5')])
  })

  it('takes bare strings as package paths, even when they look like globs', async () => {
    const dir = tempDir()
    mkdirs(dir, 'opt/app-[1]', 'opt/app-1')
    const file = writeManifest(dir, `view: v\npackages:\n  - ${dir}/opt/app-[1]\n`)
    const m = await loadManifest(file)
    expect(m.packages.map((p) => p.path)).toEqual([path.join(dir, 'opt/app-[1]')])
  })

  it('expands a glob into one prefix per matching directory, sorted, with its origin', async () => {
    const dir = tempDir()
    mkdirs(dir, 'python/3.12.10', 'python/3.12.2', 'python/3.12.9', 'python/3.11.0', 'zlib')
    fs.writeFileSync(path.join(dir, 'python/3.12.notes'), 'a file, not a prefix')
    const file = writeManifest(dir, 'view: v\npackages:\n  - zlib\n  - glob: python/3.12.*\n    priority: 5\n')

    const m = await loadManifest(file)

    expect(m.packages.map((p) => [path.relative(dir, p.path), p.priority, p.origin])).toEqual([
      ['zlib', 0, 'packages[0]'],
      ['python/3.12.10', 5, 'packages[1] (glob python/3.12.*)'],
      ['python/3.12.2', 5, 'packages[1] (glob python/3.12.*)'],
      ['python/3.12.9', 5, 'packages[1] (glob python/3.12.*)'],
    ])
  })

  it('removes duplicates by real path, keeping the first mention', async () => {
    const dir = tempDir()
    mkdirs(dir, 'real/zlib', 'other')
    fs.symlinkSync(path.join(dir, 'real/zlib'), path.join(dir, 'zlib-link'))
    const file = writeManifest(dir, [
      'view: v',
      'packages:',
      '  - path: zlib-link',
      '    priority: 1',
      '  - other',
      '  - real/zlib',
      '  - glob: real/*',
      '',
    ].join('\n'))

    const m = await loadManifest(file)

    expect(m.packages.map((p) => [p.path, p.realPath, p.priority, p.origin])).toEqual([
      [path.join(dir, 'zlib-link'), path.join(dir, 'real/zlib'), 1, 'packages[0]'],
      [path.join(dir, 'other'), path.join(dir, 'other'), 0, 'packages[1]'],
    ])
  })
})

describe('loadManifest: the manifest file itself', () => {
  it('reports a missing manifest', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'nope.yaml')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_NOT_FOUND')
    expect(err.message).toBe(`manifest ${file} does not exist`)
    expect(err.hint).toMatch(/check the path/)
  })

  it('reports a directory given as the manifest', async () => {
    const dir = tempDir()
    const err = await loadError(dir)
    expect(err.code).toBe('MANIFEST_NOT_FOUND')
    expect(err.message).toBe(`manifest ${dir} is a directory, not a file`)
    expect(err.hint).toBe(`pass the manifest file itself, e.g. ${path.join(dir, 'env.yaml')}`)
  })

  it('reports an empty file, and one holding only comments', async () => {
    const dir = tempDir()
    for (const text of ['', '# nothing yet\n\n']) {
      const file = writeManifest(dir, text)
      const err = await loadError(file)
      expect(err.code).toBe('MANIFEST_INVALID')
      expect(err.message).toBe(`${file}:1:1: the manifest is empty`)
    }
  })

  it('reports a document that is not a mapping', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, '- view: v\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toBe(`${file}:1:1: the manifest must be a mapping of keys (view:, packages:, …), not a list`)
  })

  it('names the manifest by the path as given, so a relative path stays relative', async () => {
    const dir = tempDir()
    const file = path.relative(process.cwd(), writeManifest(dir, 'packages: [a]\n'))
    expect(path.isAbsolute(file)).toBe(false)
    const err = await loadError(file)
    expect(err.message).toBe(`${file}:1:1: view: required key is missing`)
  })
})

describe('loadManifest: YAML syntax', () => {
  it('reports a syntax error with line, column and the first line of the parser message', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, 'view: v\npackages:\n  - "/opt/a\\q"\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_YAML')
    expect(err.message).toBe(`${file}:3:12: Invalid escape sequence \\q`)
    expect(err.hint).toMatch(/fix the YAML syntax/)
    expect(err.details).toEqual({ errors: [err.message] })
  })

  it('reports a duplicate key at the second occurrence', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, 'view: a\npackages: [p]\nview: b\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_YAML')
    expect(err.message).toBe(`${file}:3:1: Map keys must be unique`)
  })

  it('reports tabs used for indentation', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, 'view: v\npackages:\n\t- a\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_YAML')
    expect(err.message.split('\n')[0]).toBe(`${file}:3:1: Tabs are not allowed as indentation`)
  })

  it('reports an alias to an anchor that does not exist at the alias', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, 'view: v\npackages: *pkgs\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_YAML')
    expect(err.message).toBe(`${file}:2:11: Unresolved alias (the anchor must be set before the alias): pkgs`)
  })
})

describe('loadManifest: schema errors', () => {
  it('reports a missing view at the top of the mapping', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, '# my view\npackages: [a]\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toBe(`${file}:2:1: view: required key is missing`)
    expect(err.hint).toMatch(/schemas\/manifest\.schema\.json/)
  })

  it('reports an unknown top-level key at the key, listing the allowed ones', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, 'view: v\npackages: [a]\nlinks: copy\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toBe(`${file}:3:1: links: unknown key (allowed: view, link, fold, relative, share, conflicts, packages, include, exclude, env, modules, gc)`)
  })

  it('reports unknown nested keys (gc.kep, packages[1].prio) at the key', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, [
      'view: v',
      'packages:',
      '  - a',
      '  - path: b',
      '    prio: 3',
      'gc:',
      '  kep: 4',
      '',
    ].join('\n'))
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toBe([
      `${file}:5:5: packages[1].prio: unknown key (allowed: path, glob, include, exclude, priority)`,
      `${file}:7:3: gc.kep: unknown key (allowed: keep, ttl, auto)`,
    ].join('\n'))
    expect(err.details).toEqual({ errors: err.message.split('\n') })
  })

  it('reports a wrong type at the offending value, once per package item', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, [
      'view: v',
      'packages:',
      '  - a',
      '  - b',
      '  - include: [bin]',
      '    path: 12',
      '',
    ].join('\n'))
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toBe(`${file}:6:11: packages[2].path: must be a string`)
  })

  it('says one sensible thing about each malformed package item', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, [
      'view: v',
      'packages:',
      '  - 42',
      '  - ""',
      '  - {}',
      '  - {path: a, glob: "b/*"}',
      '  - [a, b]',
      '  - glob: x',
      '    exclude: doc',
      '',
    ].join('\n'))
    const err = await loadError(file)
    expect(err.message).toBe([
      `${file}:3:5: packages[0]: must be a path string or a mapping with \`path\` or \`glob\``,
      `${file}:4:5: packages[1]: must not be an empty path`,
      `${file}:5:5: packages[2]: needs \`path\` or \`glob\``,
      `${file}:6:5: packages[3]: has both \`path\` and \`glob\`; give one of them`,
      `${file}:7:5: packages[4]: must be a path string or a mapping with \`path\` or \`glob\``,
      `${file}:9:14: packages[5].exclude: must be a list`,
    ].join('\n'))
  })

  it('lists the allowed values of an enum', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, 'view: v\nlink: softlink\nconflicts: newest\npackages: [a]\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toBe([
      `${file}:2:7: link: must be one of symlink, hardlink, copy (got "softlink")`,
      `${file}:3:12: conflicts: must be one of error, first, last (got "newest")`,
    ].join('\n'))
  })

  it('explains booleans, lists, integers, empty values and durations in words', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, [
      'view:',
      'fold: yes',
      'packages: []',
      'exclude: "**/*.la"',
      'env:',
      '  PATH: [/usr/bin, 3]',
      '  9LIVES: [bin]',
      'gc:',
      '  keep: -1',
      '  ttl: 1d12h',
      '',
    ].join('\n'))
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toBe([
      `${file}:1:1: view: must be a string`,
      `${file}:2:7: fold: must be true or false`,
      `${file}:3:11: packages: must not be an empty list`,
      `${file}:4:10: exclude: must be a list`,
      `${file}:6:10: env.PATH[0]: must be a directory relative to the view root (no leading /)`,
      `${file}:6:20: env.PATH[1]: must be a string`,
      `${file}:7:3: env["9LIVES"]: not a valid variable name (letters, digits and _, not starting with a digit)`,
      `${file}:9:9: gc.keep: must be 0 or more`,
      `${file}:10:8: gc.ttl: must be a duration like 30s, 5m, 12h, 7d or 2w, or a number of seconds`,
    ].join('\n'))
  })

  it('answers every kind of bad ttl with what a duration looks like', async () => {
    const dir = tempDir()
    for (const ttl of ['true', '-5', '"7 days"', '[7d]']) {
      const file = writeManifest(dir, `view: v\npackages: [a]\ngc:\n  ttl: ${ttl}\n`)
      const err = await loadError(file)
      expect(err.message).toBe(`${file}:4:8: gc.ttl: must be a duration like 30s, 5m, 12h, 7d or 2w, or a number of seconds`)
    }
  })

  it('caps a long list of errors', async () => {
    const dir = tempDir()
    const keys = Array.from({ length: 25 }, (_, i) => `bad${i}: 1`)
    const file = writeManifest(dir, ['view: v', 'packages: [a]', ...keys, ''].join('\n'))
    const err = await loadError(file)
    const lines = err.message.split('\n')
    expect(lines).toHaveLength(21)
    expect(lines[0]).toMatch(/:3:1: bad0: unknown key/)
    expect(lines[20]).toBe('… and 5 more')
  })

  it('refuses the filesystem root as the view', async () => {
    const dir = tempDir()
    mkdirs(dir, 'a')
    const file = writeManifest(dir, 'view: /\npackages: [a]\n')
    const err = await loadError(file)
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toBe(`${file}:1:7: view: / cannot be a view (it is the filesystem root)`)
  })
})

describe('loadManifest: prefixes', () => {
  it('reports a missing prefix at its line, naming the resolved path', async () => {
    const dir = tempDir()
    mkdirs(dir, 'a')
    const file = writeManifest(dir, 'view: v\npackages:\n  - a\n  - path: apps/hdf5\n')
    const err = await loadError(file)
    expect(err.code).toBe('PREFIX_INVALID')
    expect(err.message).toBe(`${file}:4:11: packages[1]: ${path.join(dir, 'apps/hdf5')} does not exist`)
    expect(err.hint).toBe(`check the path (relative paths resolve from ${dir}); install the package first or remove it from packages`)
  })

  it('reports a prefix that is a file', async () => {
    const dir = tempDir()
    fs.writeFileSync(path.join(dir, 'zlib.tar'), '')
    const file = writeManifest(dir, 'view: v\npackages: [zlib.tar]\n')
    const err = await loadError(file)
    expect(err.code).toBe('PREFIX_INVALID')
    expect(err.message).toBe(`${file}:2:12: packages[0]: ${path.join(dir, 'zlib.tar')} is not a directory`)
  })

  it('reports every bad prefix at once, in file order', async () => {
    const dir = tempDir()
    const file = writeManifest(dir, 'view: v\npackages:\n  - x\n  - glob: "none/*"\n  - y\n')
    const err = await loadError(file)
    expect(err.code).toBe('PREFIX_INVALID')
    expect(err.message).toBe([
      `${file}:3:5: packages[0]: ${path.join(dir, 'x')} does not exist`,
      `${file}:4:11: packages[1].glob: none/* matches no directory`,
      `${file}:5:5: packages[2]: ${path.join(dir, 'y')} does not exist`,
    ].join('\n'))
  })

  it('reports a glob that matches no directory', async () => {
    const dir = tempDir()
    mkdirs(dir, 'a')
    fs.writeFileSync(path.join(dir, 'a.txt'), 'files do not count')
    const file = writeManifest(dir, 'view: v\npackages:\n  - a\n  - glob: a.*\n')
    const err = await loadError(file)
    expect(err.code).toBe('GLOB_EMPTY')
    expect(err.message).toBe(`${file}:4:11: packages[1].glob: a.* matches no directory`)
    expect(err.hint).toMatch(new RegExp(`relative patterns start from ${dir}`))
  })

  it('refuses a view inside a prefix', async () => {
    const dir = tempDir()
    mkdirs(dir, 'opt/views')
    const file = writeManifest(dir, `view: opt/views/hpc\npackages:\n  - ${dir}/opt\n`)
    const err = await loadError(file)
    expect(err.code).toBe('VIEW_INSIDE_PREFIX')
    expect(err.message).toBe(`${file}:3:5: packages[0]: ${dir}/opt contains the view ${dir}/opt/views/hpc; the view would end up inside its own input`)
    expect(err.hint).toBe('keep the view and its store (._hpc beside it) outside every prefix, and do not list the view or anything under it as a package')
  })

  it('refuses a prefix that is an ancestor of the view, also through a symlink and before the view exists', async () => {
    const dir = tempDir()
    mkdirs(dir, 'real/views')
    fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'alias'))
    // The view's parent does not exist yet; its nearest existing ancestor goes through the symlink.
    const file = writeManifest(dir, 'view: alias/views/new/hpc\npackages: [real/views]\n')
    const err = await loadError(file)
    expect(err.code).toBe('VIEW_INSIDE_PREFIX')
    expect(err.message).toBe(`${file}:2:12: packages[0]: ${dir}/real/views contains the view ${dir}/alias/views/new/hpc; the view would end up inside its own input`)
  })

  it('refuses the view itself, its store, and anything inside them as a prefix', async () => {
    const dir = tempDir()
    mkdirs(dir, 'views/._hpc/0123456789abcdef/bin')
    fs.symlinkSync('._hpc/0123456789abcdef', path.join(dir, 'views/hpc'))
    const file = writeManifest(dir, [
      'view: views/hpc',
      'packages:',
      '  - views/hpc',
      '  - views/._hpc',
      '  - views/._hpc/0123456789abcdef/bin',
      '',
    ].join('\n'))
    const err = await loadError(file)
    const store = path.join(dir, 'views/._hpc')
    expect(err.code).toBe('VIEW_INSIDE_PREFIX')
    expect(err.message).toBe([
      `${file}:3:5: packages[0]: ${dir}/views/hpc (really ${store}/0123456789abcdef) lies inside the view's store ${store}; a view cannot take its own generations as input`,
      `${file}:4:5: packages[1]: ${store} is the view's store; the view would end up inside its own input`,
      `${file}:5:5: packages[2]: ${store}/0123456789abcdef/bin lies inside the view's store ${store}; a view cannot take its own generations as input`,
    ].join('\n'))
  })

  it('refuses a prefix inside an unmanaged view directory', async () => {
    const dir = tempDir()
    mkdirs(dir, 'view/bin')
    const file = writeManifest(dir, 'view: view\npackages: [view/bin]\n')
    const err = await loadError(file)
    expect(err.code).toBe('VIEW_INSIDE_PREFIX')
    expect(err.message).toBe(`${file}:2:12: packages[0]: ${dir}/view/bin lies inside the view ${dir}/view; a view cannot take its own contents as input`)
  })

  it('accepts a view beside its prefixes', async () => {
    const dir = tempDir()
    mkdirs(dir, 'opt/apps/a', 'opt/views')
    const file = writeManifest(dir, 'view: opt/views/hpc\npackages: [opt/apps/a]\n')
    await expect(loadManifest(file)).resolves.toMatchObject({ view: path.join(dir, 'opt/views/hpc') })
  })
})

/** A DocumentMemory in a Map, counting what it was asked. */
function mapMemory() {
  const documents = new Map<string, unknown>()
  const counts = { recalled: 0, remembered: 0 }
  const memory: DocumentMemory = {
    recall(key) {
      const document = documents.get(key)
      if (document !== undefined) counts.recalled++
      return document === undefined ? undefined : structuredClone(document)
    },
    remember(key, document) {
      counts.remembered++
      documents.set(key, structuredClone(document))
    },
  }
  return { memory, documents, counts }
}

async function failure(load: Promise<unknown>): Promise<{ code: string; message: string; hint: string | undefined }> {
  const err = await load.then(() => null, (e: unknown) => e)
  expect(err, 'the load should have failed').toBeInstanceOf(ViewError)
  const { code, message, hint } = err as ViewError
  return { code, message, hint }
}

describe('loadManifest: a remembered document (the no-op without a parse)', () => {
  it('remembers the validated document under the text, and a recall gives the manifest a parse gives', async () => {
    const dir = tempDir()
    mkdirs(dir, 'apps/a', 'apps/b', 'opt/c')
    const text = 'view: views/hpc   # the view\nfold: false\nconflicts: last\npackages:\n  - apps/a\n  - glob: "opt/*"\n    priority: 3\n    exclude: [share/]\n  - path: apps/b\ninclude: [bin, lib]\nenv:\n  PATH: [bin]\ngc: {keep: 4, ttl: 2d, auto: false}\n'
    const file = writeManifest(dir, text)
    const { memory, documents, counts } = mapMemory()
    const parsed = await loadManifestRemembering(file, memory)
    expect(counts).toEqual({ recalled: 0, remembered: 1 })
    expect([...documents.keys()]).toEqual([documentKey(text)])
    const recalled = await loadManifestRemembering(file, memory)
    expect(counts).toEqual({ recalled: 1, remembered: 1 })
    expect(recalled).toEqual(parsed)
    expect(recalled).toEqual(await loadManifest(file))
  })

  it('uses what is recalled as it is: the key is the whole text, so the memory is trusted', async () => {
    const dir = tempDir()
    mkdirs(dir, 'a')
    const file = writeManifest(dir, 'view: v\npackages: [a]\n')
    const memory: DocumentMemory = { recall: () => ({ view: 'elsewhere', packages: ['a'] }), remember: () => undefined }
    expect((await loadManifestRemembering(file, memory)).view).toBe(path.join(dir, 'elsewhere'))
  })

  it('keys by the exact text and the code that parsed it (version, module, its size and mtime)', () => {
    const key = documentKey('view: v\n')
    expect(key).not.toBe(documentKey('view: v \n'))
    expect(key.endsWith('\nview: v\n')).toBe(true)
    const version = (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
    expect(key).toMatch(new RegExp(`^viewctl ${version.replace(/\./g, '\\.')} file:///\\S+/load\\.(ts|js) \\d+ [\\d.]+\n`))
  })

  it('parses when what is recalled is not a manifest after all', async () => {
    const dir = tempDir()
    mkdirs(dir, 'a')
    const file = writeManifest(dir, 'view: v\npackages: [a]\n')
    for (const odd of [{ view: 'v', packages: 'a' }, { view: 'v', packages: [7] }, null, 'view: v', [1]]) {
      const memory: DocumentMemory = { recall: () => odd, remember: () => undefined }
      expect(await loadManifestRemembering(file, memory)).toEqual(await loadManifest(file))
    }
  })

  it('remembers nothing that YAML or the schema refuses', async () => {
    const dir = tempDir()
    const { memory, counts } = mapMemory()
    await failure(loadManifestRemembering(writeManifest(dir, 'view: [\n', 'a.yaml'), memory))
    await failure(loadManifestRemembering(writeManifest(dir, 'view: v\npackages: []\n', 'b.yaml'), memory))
    expect(counts.remembered).toBe(0)
  })

  // Each case: a manifest that loads, then a change on disk that makes it wrong. The recalled document has
  // no positions; the error must still be the one a parse gives, line and column included.
  it.each([
    ['a prefix removed', 'view: v\npackages:\n  - a\n  - path: b\n', (dir: string) => fs.rmSync(path.join(dir, 'b'), { recursive: true })],
    ['a prefix replaced by a file', 'view: v\npackages: [a, b]\n', (dir: string) => {
      fs.rmSync(path.join(dir, 'b'), { recursive: true })
      fs.writeFileSync(path.join(dir, 'b'), '')
    }],
    ['a glob that no longer matches', 'view: v\npackages:\n  - a\n  - glob: "b*"\n', (dir: string) => fs.rmSync(path.join(dir, 'b'), { recursive: true })],
    ['two bad prefixes at once', 'view: v\npackages:\n  - a\n  - b\n', (dir: string) => {
      fs.rmSync(path.join(dir, 'a'), { recursive: true })
      fs.rmSync(path.join(dir, 'b'), { recursive: true })
    }],
    ['a prefix made into the view\'s ancestor by a symlink', 'view: views/hpc\npackages: [a, b]\n', (dir: string) => {
      fs.rmSync(path.join(dir, 'b'), { recursive: true })
      fs.mkdirSync(path.join(dir, 'real-views'))
      fs.symlinkSync(dir, path.join(dir, 'b'))
    }],
  ])('reports a problem found after a recall exactly as a parse does (%s)', async (_what, text, breakIt) => {
    const dir = tempDir()
    mkdirs(dir, 'a', 'b')
    const file = writeManifest(dir, text)
    const { memory, counts } = mapMemory()
    await loadManifestRemembering(file, memory)
    breakIt(dir)
    const recalledError = await failure(loadManifestRemembering(file, memory))
    expect(counts.recalled).toBe(1)
    expect(recalledError).toEqual(await failure(loadManifest(file)))
    expect(recalledError.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `))
  })
})

describe('guessViewPath', () => {
  const file = '/etc/views/env.yaml'
  it.each([
    ['view: /opt/views/hpc\n', '/opt/views/hpc'],
    ['# a comment\npackages: []\nview:   hpc   # relative, with a comment\n', '/etc/views/hpc'],
    ['view: "/opt/views/with # hash"\n', '/opt/views/with # hash'],
    ["view: 'it''s/here' # quoted\n", "/etc/views/it's/here"],
    ['view: /opt/v\r\npackages: []\r\n', '/opt/v'],
    ['view: -dash\n', '/etc/views/-dash'],
    ['view: ../up\n', '/etc/up'],
  ])('reads %j', (text, expected) => {
    expect(guessViewPath(text, file)).toBe(expected)
  })

  it.each([
    ['no view line', 'packages: []\n'],
    ['flow style', '{view: /opt/v, packages: []}\n'],
    ['indented', 'x:\n  view: /opt/v\n'],
    ['an alias', 'view: *v\n'],
    ['a tag', 'view: !!str /opt/v\n'],
    ['a block scalar', 'view: |\n  /opt/v\n'],
    ['an escape in double quotes', 'view: "/opt/\\u0076"\n'],
    ['an unclosed quote', 'view: "/opt/v\n'],
    ['an empty value', 'view:\n  /opt/v\n'],
  ])('gives up on %s', (_what, text) => {
    expect(guessViewPath(text, file)).toBeNull()
  })
})

describe('durations', () => {
  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['12h', 43_200_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['90', 90_000],
    ['0', 0],
    ['0s', 0],
    [' 7d ', 604_800_000],
  ])('parseDuration(%j) = %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms)
  })

  it.each(['', 'd', '7x', '7D', '-1s', '1.5h', '1d12h', '1d 12h', '7 d', 'week', '99999999999999999999w'])(
    'parseDuration(%j) is a usage error',
    (text) => {
      let caught: unknown
      try {
        parseDuration(text)
      } catch (err) {
        caught = err
      }
      expect(caught).toBeInstanceOf(ViewError)
      expect((caught as ViewError).code).toBe('USAGE')
      expect((caught as ViewError).message).toMatch(new RegExp(`^invalid duration ${JSON.stringify(text).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `))
    },
  )

  it.each([
    [0, '0ms'],
    [350, '350ms'],
    [1_000, '1s'],
    [59_999, '59s'],
    [90_000, '1m 30s'],
    [3 * 3600_000 + 5 * 60_000 + 59_000, '3h 5m'],
    [7 * 86_400_000, '7d'],
    [14 * 86_400_000 + 3600_000, '14d 1h'],
    [86_400_000 + 60_000, '1d'],
    [-90_000, '-1m 30s'],
  ])('formatDuration(%i) = %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
  })
})
