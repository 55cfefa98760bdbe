/**
 * bin/viewctl run as a program (the way users and npm's bin link run it),
 * not as `node bin/viewctl`: its shell line sets NODE_EXTRA_CA_CERTS aside so
 * that Node does not read a certificate file at start-up, and its module part
 * puts the variable back for everything viewctl starts. And the worker
 * threads it starts are each one CommonJS file (scripts/bundle.mjs), which
 * boot without Node's module loader.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { BIN, ROOT, snapshot, tempDir, viewctl, writeManifest, writeTree } from './helpers.js'
import { workerFile } from '../src/store/workers.js'

/** Node's own words when NODE_EXTRA_CA_CERTS names a file it cannot read (printed at start-up, before any script). */
const NODE_WARNS = /Ignoring extra certs from/

/** Run bin/viewctl as a program, with the node running the tests first on PATH, and `set` over the environment (undefined removes). */
function runDirect(file: string, args: string[], set: Record<string, string | undefined>) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` }
  for (const [k, v] of Object.entries(set)) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  delete env.VIEWCTL_SET_ASIDE_NODE_EXTRA_CA_CERTS
  const r = spawnSync(file, args, { env, encoding: 'utf8', timeout: 60_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('bin/viewctl as a program', () => {
  it('does not make Node read NODE_EXTRA_CA_CERTS at start-up, where `node bin/viewctl` does', () => {
    const missing = path.join(tempDir(), 'no-such-bundle.pem')
    const direct = runDirect(BIN, ['--version'], { NODE_EXTRA_CA_CERTS: missing })
    expect(direct.code, direct.stderr).toBe(0)
    expect(direct.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
    expect(direct.stderr).not.toMatch(NODE_WARNS)

    // the control: the same variable through plain node is read (and warned about), so the check above can fail
    const viaNode = viewctl(['--version'], { env: { NODE_EXTRA_CA_CERTS: missing } })
    expect(viaNode.code).toBe(0)
    expect(viaNode.stderr).toMatch(NODE_WARNS)
  })

  it('gives the commands viewctl exec runs NODE_EXTRA_CA_CERTS as the user set it: a value, empty, or unset', () => {
    const dir = fs.realpathSync(tempDir('viewctl-launcher-'))
    writeTree(path.join(dir, 'prefixes', 'a'), { 'bin/tool': { content: '#!/bin/sh\necho a\n', mode: 0o755 } })
    const manifest = writeManifest(dir, `view: ${dir}/view\npackages: [${dir}/prefixes/a]\n`)
    const built = viewctl(['regenerate', manifest, '--quiet'])
    expect(built.code, built.stderr).toBe(0)

    const show = ['exec', path.join(dir, 'view'), '--', 'sh', '-c', 'printf "%s|%s" "${NODE_EXTRA_CA_CERTS-unset}" "${VIEWCTL_SET_ASIDE_NODE_EXTRA_CA_CERTS-unset}"']
    const bundle = path.join(dir, 'site-ca.pem')
    expect(runDirect(BIN, show, { NODE_EXTRA_CA_CERTS: bundle }).stdout).toBe(`${bundle}|unset`)
    expect(runDirect(BIN, show, { NODE_EXTRA_CA_CERTS: '' }).stdout).toBe('|unset')
    expect(runDirect(BIN, show, { NODE_EXTRA_CA_CERTS: undefined }).stdout).toBe('unset|unset')
  })

  it('runs through a symlink to it, as npm links a package bin', () => {
    const link = path.join(tempDir(), 'viewctl')
    fs.symlinkSync(BIN, link)
    const r = runDirect(link, ['--version'], { NODE_EXTRA_CA_CERTS: undefined })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
  })
})

describe('worker threads of the bundle', () => {
  it('are one CommonJS file each, loading no chunk of the bundle, and are found before a compiled module', () => {
    const bundle = path.join(ROOT, 'dist', 'bundle')
    for (const name of ['link-worker', 'rm-worker']) {
      const file = path.join(bundle, `${name}.cjs`)
      expect(fs.existsSync(file), `${file} is missing: run npm run build`).toBe(true)
      expect(fs.readFileSync(file, 'utf8')).not.toMatch(/require\(["']\.\/|import\(["']\.\//)
      // what bin/viewctl's code finds from its own chunk, wherever in dist/bundle/ that is
      expect(workerFile(name, new URL(`file://${bundle}/any-chunk.js`).href)?.pathname).toBe(file)
    }

    const dir = tempDir('viewctl-worker-file-')
    const base = new URL(`file://${dir}/module.js`).href
    expect(workerFile('w', base)).toBeNull() // run from sources: no worker, the caller works alone
    fs.writeFileSync(path.join(dir, 'w.js'), '')
    expect(workerFile('w', base)?.pathname).toBe(path.join(dir, 'w.js'))
    fs.writeFileSync(path.join(dir, 'w.cjs'), '')
    expect(workerFile('w', base)?.pathname).toBe(path.join(dir, 'w.cjs'))
  })
})

describe('what a no-op loads (the manifest document in the scan cache)', () => {
  /**
   * Run the bundled CLI in a fresh Node and list the files of the bundle
   * the command loaded (through a module hook that notes every URL loaded).
   */
  function loadedBy(args: string[]): { files: string[]; builtins: string[] } {
    const dir = tempDir('viewctl-loads-')
    const log = path.join(dir, 'loaded.txt')
    const hooks = `
      import fs from 'node:fs'
      let log
      export function initialize(data) { log = data.log }
      export async function load(url, context, nextLoad) {
        fs.appendFileSync(log, url + '\\n')
        return nextLoad(url, context)
      }
    `
    const script = `
      import { register } from 'node:module'
      register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)}, { data: { log: ${JSON.stringify(log)} } })
      const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist', 'bundle', 'main.js'))})
      const code = await main(${JSON.stringify(args)})
      process.stdout.write(JSON.stringify({ code }))
    `
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
    expect(r.status, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"code"'))) as { code: number }
    expect(out.code).toBe(0)
    const urls = fs.readFileSync(log, 'utf8').split('\n')
    const files = urls.filter((u) => u.startsWith('file:')).map((u) => path.basename(new URL(u).pathname))
    return { files, builtins: urls.filter((u) => u.startsWith('node:')) }
  }
  const parser = (files: string[]) => files.filter((f) => /^(yaml-source|schema-validator)-/.test(f))

  it('a no-op regenerate loads neither the YAML parser nor the validator; a build does', async () => {
    const root = tempDir()
    const a = writeTree(path.join(root, 'a'), { 'bin/a': 'a', 'lib/liba.so': 'l' })
    const file = writeManifest(root, `view: ${root}/view\npackages:\n  - ${a}\n`)
    const build = loadedBy(['regenerate', file, '--quiet'])
    expect(parser(build.files)).toHaveLength(2) // the control: a build parses and validates the manifest
    // the scan cache does not remember a directory changed within the last 2 s (the racy window, plan/cache.ts)
    await new Promise((resolve) => setTimeout(resolve, 2100))
    expect(viewctl(['regenerate', file, '--quiet']).code).toBe(0) // remembers the listings and the plan
    const noop = loadedBy(['regenerate', file, '--quiet'])
    expect(parser(noop.files)).toEqual([])

    // A manifest edited only in a comment plans the same: a no-op parses it, and writes nothing (not even the
    // new document); the next run that writes the cache keeps it, and the no-ops after that parse no more.
    fs.appendFileSync(file, '# edited, not changed\n')
    const cacheFile = path.join(root, '._view', '.scan-cache')
    const cacheBefore = fs.readFileSync(cacheFile)
    const edited = loadedBy(['regenerate', file, '--quiet'])
    expect(parser(edited.files)).toHaveLength(2)
    expect(fs.readFileSync(cacheFile)).toEqual(cacheBefore)
    fs.rmSync(cacheFile) // a run that must write the cache again
    expect(viewctl(['regenerate', file, '--quiet']).code).toBe(0)
    const again = loadedBy(['regenerate', file, '--quiet'])
    expect(parser(again.files)).toEqual([])
    expect(snapshot(path.join(root, 'view')).store).toHaveLength(1) // nothing was built
  })

  it('a rollback does not load node:child_process (2-3 ms); exec, which starts a command, does', () => {
    const root = tempDir()
    const a = writeTree(path.join(root, 'a'), { 'bin/a': 'a' })
    const b = writeTree(path.join(root, 'b'), { 'bin/b': 'b' })
    const view = path.join(root, 'view')
    expect(viewctl(['regenerate', writeManifest(root, `view: ${view}\npackages:\n  - ${a}\n`, 'a.yaml'), '--quiet']).code).toBe(0)
    expect(viewctl(['regenerate', writeManifest(root, `view: ${view}\npackages:\n  - ${b}\n`, 'b.yaml'), '--quiet']).code).toBe(0)
    const exec = loadedBy(['exec', view, '--', 'true'])
    expect(exec.builtins).toContain('node:child_process') // the control: the hook sees Node's own modules
    const rollback = loadedBy(['rollback', view, '--quiet'])
    expect(snapshot(view).target).toMatch(/^\._view\//)
    expect(rollback.builtins).not.toContain('node:child_process')
  })
})
