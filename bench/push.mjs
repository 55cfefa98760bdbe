/**
 * The push bench (DESIGN §11, §15): `viewctl push` of the synthetic view
 * against a plain `rsync -a` of the same tree over the same ssh, to a
 * private sshd on loopback (test/rig/sshd.mjs), the remote viewctl being
 * this checkout's.
 *
 *   npm run bench -- --push [--prefixes 100] [--files 1000] [--runs 3] [--dir PATH] [--json]
 *
 * Cases, each into a fresh destination every round, alternating and with
 * the starting case rotated as in bench/run.mjs:
 *   - `rsync -a` of the current generation's tree (cold);
 *   - a cold push of the view to a view path that does not exist there;
 *   - an incremental push after a 1 % change: the remote view shows
 *     generation A (pushed before the timing starts), and generation B,
 *     which differs from A in one prefix out of 100 replaced by a new
 *     version (1 % of the entries), is pushed;
 *   - a no-op push: the remote view shows A (pushed before the timing
 *     starts), and A is pushed again: one connection, viewctl started on
 *     both ends, the lock and the greeting, nothing to send or build. No
 *     push costs less, so no-op / cold is the floor of incremental / cold.
 * Targets, as ratios of medians from one run: cold push ≤ 1.2 × rsync -a;
 * incremental ≤ 0.5 × cold push.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { BIN, countTree, makePrefixes, manifestText, median, rmrf, timed, viewctl, viewctlJson } from './common.mjs'
import { sshdUnavailable, onPath, startSshd } from '../test/rig/sshd.mjs'

function parseArgs(argv) {
  const opts = { prefixes: 100, files: 1000, runs: 3, dir: null, json: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]
      if (v === undefined) usage(`${a} needs a value`)
      return v
    }
    const int = (name) => {
      const n = Number(value())
      if (!Number.isInteger(n) || n < 1) usage(`${name} must be a positive integer`)
      return n
    }
    const flag = a.split('=')[0]
    if (flag === '--prefixes') opts.prefixes = int('--prefixes')
    else if (flag === '--files') opts.files = int('--files')
    else if (flag === '--runs') opts.runs = int('--runs')
    else if (flag === '--dir') opts.dir = path.resolve(value())
    else if (flag === '--json') opts.json = true
    else if (flag === '--help' || flag === '-h') usage(null)
    else usage(`unknown option ${a}`)
  }
  if (opts.prefixes < 2) usage('--prefixes must be 2 or more (one of them changes for the incremental push)')
  return opts
}

function usage(problem) {
  const text = `usage: node bench/run.mjs --push [--prefixes N] [--files N] [--runs N] [--dir PATH] [--json]
  --prefixes N  synthetic prefixes (default 100); the incremental push replaces one of them
  --files N     files per prefix (default 1000)
  --runs N      rounds; each case runs once a round (default 3)
  --dir PATH    where to work (default: a fresh dir under /dev/shm, else the OS temp dir); removed afterwards
  --json        print one JSON object instead of the table`
  if (problem) {
    process.stderr.write(`bench: ${problem}\n${text}\n`)
    process.exit(2)
  }
  process.stdout.write(`${text}\n`)
  process.exit(0)
}

const quote = (w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)

export async function runPushBench(argv) {
  const opts = parseArgs(argv)
  const why = sshdUnavailable() ?? (onPath('rsync') ? null : 'not installed: rsync')
  if (why) {
    process.stderr.write(`bench: the push bench cannot run here: ${why}\n`)
    return 2
  }
  const log = (msg) => {
    if (!opts.json) process.stderr.write(`bench: ${msg}\n`)
  }
  const loadBefore = os.loadavg()
  const base = opts.dir ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir())
  const work = fs.mkdtempSync(path.join(base, 'viewctl-bench-push-'))
  const rig = await startSshd({ label: 'bench' })
  try {
    const result = await runCases(rig, work, opts, log)
    result.machine.loadavg = { before: loadBefore.map((x) => +x.toFixed(2)), after: os.loadavg().map((x) => +x.toFixed(2)) }
    process.stdout.write(opts.json ? JSON.stringify(result, null, 2) + '\n' : render(result))
    return 0
  } catch (err) {
    process.stderr.write(`bench: failed: ${err.stack ?? err}\n`)
    return 1
  } finally {
    await rig.stop()
    rmrf(work)
  }
}

async function runCases(rig, work, opts, log) {
  const [, config, , port] = rig.sshArgs()
  const ssh = `ssh -F ${quote(config)} -p ${port}`
  const remoteViewctl = `${quote(process.execPath)} ${quote(BIN)}`
  const host = rig.address
  const remoteOptions = ['--ssh', ssh, '--remote-viewctl', remoteViewctl]

  log(`making ${opts.prefixes} prefixes × ${opts.files} files in ${work}`)
  const prefixRoot = path.join(work, 'prefixes')
  fs.mkdirSync(prefixRoot)
  const names = makePrefixes(prefixRoot, opts.prefixes, opts.files)
  // generation B: the last prefix replaced by a "new version" (another directory, its files renamed)
  const newer = path.join(prefixRoot, `${names[names.length - 1]}-v2`)
  fs.cpSync(path.join(prefixRoot, names[names.length - 1]), newer, { recursive: true })
  for (const d of ['bin', 'lib', 'share/man/man1']) for (const f of fs.readdirSync(path.join(newer, d))) fs.renameSync(path.join(newer, d, f), path.join(newer, d, `v2-${f}`))
  const src = path.join(work, 'src')
  fs.mkdirSync(src)
  const view = path.join(src, 'view')
  const manifest = (file, list) => {
    fs.writeFileSync(file, manifestText(view, list, ['gc: {keep: 5}']))
    return file
  }
  const a = manifest(path.join(work, 'a.yaml'), names.map((n) => path.join(prefixRoot, n)))
  const b = manifest(path.join(work, 'b.yaml'), [...names.slice(0, -1), path.basename(newer)].map((n) => path.join(prefixRoot, n)))
  // generation 1 is B, generation 2 (current) is A: the cold push sends A; the incremental one sends B to a view showing A
  const regenB = viewctlJson(['regenerate', b]).json
  const regenA = viewctlJson(['regenerate', a]).json
  const hashA = regenA.hash
  const hashB = regenB.hash
  const treeA = path.join(src, '._view', hashA)
  const entries = countTree(treeA)
  log(`generation A: ${regenA.entries} entries (${entries.links} links); B differs in one prefix of ${opts.prefixes}`)

  const dest = path.join(work, 'dest')
  fs.mkdirSync(dest)
  let fresh = 0
  const freshDir = () => {
    const d = path.join(dest, String(fresh++))
    fs.mkdirSync(d)
    return d
  }
  // a fresh remote view at generation A (not timed), then `generation` pushed onto it (timed)
  const pushOntoA = (generation) => {
    const d = freshDir()
    viewctl(['push', view, `${host}:${d}/view`, '--generation', '2', ...remoteOptions, '--quiet'])
    const r = viewctl(['push', view, `${host}:${d}/view`, '--generation', generation, ...remoteOptions, '--json'])
    return { r, got: JSON.parse(r.stdout).destinations[0], cleanup: () => rmrf(d) }
  }
  const times = { 'rsync -a': [], 'push, cold': [], 'push, incremental': [], 'push, no-op': [] }
  const cases = {
    'rsync -a': () => {
      const d = freshDir()
      const r = timed('rsync', ['-a', '-e', ssh, `${treeA}/`, `${host}:${d}/tree/`])
      return { ms: r.ms, cleanup: () => rmrf(d) }
    },
    'push, cold': () => {
      const d = freshDir()
      const r = viewctl(['push', view, `${host}:${d}/view`, '--generation', '2', ...remoteOptions, '--quiet'])
      return { ms: r.ms, cleanup: () => rmrf(d) }
    },
    'push, incremental': () => {
      const { r, got, cleanup } = pushOntoA('1')
      if (got.hash !== hashB || got.mode !== 'plan' || !(got.linked > 0)) throw new Error(`the incremental push did not make generation B there sharing the unchanged entries: ${r.stdout}`)
      return { ms: r.ms, cleanup, created: got.created, linked: got.linked }
    },
    'push, no-op': () => {
      const { r, got, cleanup } = pushOntoA('2')
      if (got.action !== 'noop') throw new Error(`the second push of generation A was not a no-op: ${r.stdout}`)
      return { ms: r.ms, cleanup }
    },
  }
  const order = Object.keys(cases)
  let detail = null
  for (let round = 0; round < opts.runs; round++) {
    for (let k = 0; k < order.length; k++) {
      const name = order[(round + k) % order.length]
      const r = cases[name]()
      times[name].push(r.ms)
      if (r.created !== undefined) detail = { created: r.created, linked: r.linked }
      r.cleanup()
      log(`round ${round + 1}: ${name} ${(r.ms / 1000).toFixed(2)} s`)
    }
  }
  const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]))
  const coldRatio = med['push, cold'] / med['rsync -a']
  const incRatio = med['push, incremental'] / med['push, cold']
  const targets = [
    { name: 'cold push / rsync -a', value: coldRatio, max: 1.2 },
    { name: 'incremental push / cold push', value: incRatio, max: 0.5 },
  ]
  return {
    ok: targets.every((t) => t.value <= t.max),
    // what no push can go below: the connection and the two start-ups
    floor: { name: 'no-op push / cold push', value: +(med['push, no-op'] / med['push, cold']).toFixed(3) },
    view: { prefixes: opts.prefixes, files: opts.files, entries: regenA.entries, links: entries.links, hashA, hashB, incremental: detail },
    runs: opts.runs,
    times,
    medians: med,
    targets: targets.map((t) => ({ ...t, value: +t.value.toFixed(3), pass: t.value <= t.max })),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version, dir: work },
  }
}

function render(r) {
  const ms = (x) => `${(x / 1000).toFixed(2)} s`
  const lines = [
    `push bench: ${r.view.prefixes} prefixes × ${r.view.files} files, a view of ${r.view.entries} entries (${r.view.links} links), ${r.runs} rounds, to sshd on loopback`,
    `machine: ${r.machine.cpus} × ${r.machine.model}, node ${r.machine.node}, load ${r.machine.loadavg.before.join(' ')} before, ${r.machine.loadavg.after.join(' ')} after`,
    '',
    '| case | median | runs |',
    '|---|---|---|',
    ...Object.entries(r.times).map(([k, v]) => `| ${k} | ${ms(r.medians[k])} | ${v.map(ms).join(', ')} |`),
    '',
    ...(r.view.incremental ? [`incremental: ${r.view.incremental.created} entries made anew there, ${r.view.incremental.linked} linked from the tree there`, ''] : []),
    '| target | ratio | max | |',
    '|---|---|---|---|',
    ...r.targets.map((t) => `| ${t.name} | ${t.value.toFixed(2)} | ${t.max} | ${t.pass ? 'PASS' : 'FAIL'} |`),
    '',
    `${r.floor.name}: ${r.floor.value.toFixed(2)} (the least any push costs: one ssh connection and viewctl started on both ends)`,
    '',
  ]
  return lines.join('\n')
}
