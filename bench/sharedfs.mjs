/**
 * The shared-filesystem bench (DESIGN §11, §14): viewctl against `cp -rs`
 * and `rm -rf` on sshfs mounts of one export served by a private sshd
 * (test/rig/sharedfs.mjs), where every metadata operation is a round trip.
 *
 *   npm run bench -- --sharedfs [--prefixes 8] [--files 250] [--runs 3]
 *                   [--delay-ms 1] [--jobs N] [--strace] [--json | --markdown]
 *
 * The prefixes, the views and the copies live in the export, and every
 * timed command reaches them through a mount:
 *   - builds (cp -rs, viewctl per-file, viewctl folded) through the delayed
 *     mount (uncached, `--delay-ms` added each way by the rig's proxy);
 *   - gc of one generation against `rm -rf` of a copy of that generation's
 *     tree, through the uncached mount and through the delayed mount.
 * What is not timed (making prefixes, removing what a case made, copying a
 * tree for rm) is done on the server side, directly in the export.
 *
 * Cases alternate within each round and the starting case rotates, as in
 * bench/run.mjs. `--jobs N` runs viewctl with VIEWCTL_JOBS=N (default:
 * viewctl's own choice). `--strace` also runs each build once under
 * `strace -c -w -f` and prints the system calls each made and the time
 * spent inside them.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { BIN, childEnv, countTree, ROOT, has, layoutCounts, makePrefixes, manifestText, median, rmrf, timed, viewctlJson } from './common.mjs'
import { sharedFsUnavailable, startSharedFs } from '../test/rig/sharedfs.mjs'

function parseArgs(argv) {
  const opts = { prefixes: 8, files: 250, runs: 3, delayMs: 1, jobs: null, strace: false, json: false, markdown: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]
      if (v === undefined) usage(`${a} needs a value`)
      return v
    }
    const num = (name, min) => {
      const n = Number(value())
      if (!Number.isFinite(n) || n < min) usage(`${name} must be a number, at least ${min}`)
      return n
    }
    const flag = a.split('=')[0]
    if (flag === '--prefixes') opts.prefixes = Math.round(num('--prefixes', 1))
    else if (flag === '--files') opts.files = Math.round(num('--files', 1))
    else if (flag === '--runs') opts.runs = Math.round(num('--runs', 1))
    else if (flag === '--delay-ms') opts.delayMs = num('--delay-ms', 0)
    else if (flag === '--jobs') opts.jobs = Math.round(num('--jobs', 1))
    else if (flag === '--strace') opts.strace = true
    else if (flag === '--json') opts.json = true
    else if (flag === '--markdown') opts.markdown = true
    else if (flag === '--help' || flag === '-h') usage(null)
    else usage(`unknown option ${a}`)
  }
  if (opts.json && opts.markdown) usage('--json and --markdown exclude each other')
  return opts
}

function usage(problem) {
  const text = `usage: node bench/run.mjs --sharedfs [--prefixes N] [--files N] [--runs N] [--delay-ms MS] [--jobs N] [--strace] [--json]
  --prefixes N   synthetic prefixes (default 8)
  --files N      files per prefix (default 250)
  --runs N       rounds; each case runs once a round (default 3)
  --delay-ms MS  latency the proxy adds in each direction on the delayed mount (default 1)
  --jobs N       VIEWCTL_JOBS for viewctl (default: viewctl's own)
  --strace       also count each build's system calls once (strace -c -f)
  --json         print one JSON object instead of the table
  --markdown     print the run's line and tables as docs/benchmarks.md shows them`
  if (problem) {
    process.stderr.write(`bench: ${problem}\n${text}\n`)
    process.exit(2)
  }
  process.stdout.write(text + '\n')
  process.exit(0)
}

export async function runSharedFsBench(argv) {
  const opts = parseArgs(argv)
  const why = sharedFsUnavailable()
  if (why) {
    process.stderr.write(`bench: the shared-filesystem rig cannot run here: ${why}\n`)
    return 2
  }
  const log = (msg) => {
    if (!opts.json) process.stderr.write(`bench: ${msg}\n`)
  }
  const startedAt = new Date()
  const loadBefore = os.loadavg()
  log(`starting the rig: private sshd, sshfs mounts (uncached; delayed by ${opts.delayMs} ms each way)`)
  const rig = await startSharedFs({ delayMs: opts.delayMs, mounts: ['uncached', 'delayed'], label: 'bench' })
  try {
    const result = runCases(rig, opts, log)
    result.machine.loadavg = { before: loadBefore.map((x) => +x.toFixed(2)), after: os.loadavg().map((x) => +x.toFixed(2)) }
    const proxy = rig.proxy.stats()
    result.network = { delayMs: opts.delayMs, measuredMeanHoldMs: proxy?.meanHoldMs ?? null, chunks: proxy?.chunks ?? null }
    process.stdout.write(opts.json ? JSON.stringify(result, null, 2) + '\n' : opts.markdown ? markdown(result, startedAt, argv) : render(result))
    return 0
  } catch (err) {
    process.stderr.write(`bench: failed: ${err.stack ?? err}\n`)
    return 1
  } finally {
    await rig.stop()
  }
}

function runCases(rig, opts, log) {
  const totalFiles = opts.prefixes * opts.files
  const work = path.join(rig.export, 'bench')
  fs.mkdirSync(work)
  const through = (mount, p) => rig.at(mount, p)
  const prefixRoot = path.join(work, 'prefixes')
  fs.mkdirSync(prefixRoot)
  log(`making ${opts.prefixes} prefixes x ${opts.files} files on the server side`)
  const names = makePrefixes(prefixRoot, opts.prefixes, opts.files)
  const prefixes = names.map((n) => path.join(prefixRoot, n))
  const env = opts.jobs === null ? undefined : { VIEWCTL_JOBS: String(opts.jobs) }

  const views = path.join(work, 'views')
  fs.mkdirSync(views)
  /** A view whose manifest names the view and the prefixes as `mount` shows them (null: the server's own paths). */
  const mk = (name, mount, extra, pfx = prefixes) => {
    const dir = path.join(views, name)
    fs.mkdirSync(dir)
    const seen = (p) => (mount ? through(mount, p) : p)
    const file = path.join(dir, 'env.yaml')
    fs.writeFileSync(file, manifestText(seen(path.join(dir, 'view')), pfx.map(seen), extra))
    return { file: seen(file), view: path.join(dir, 'view'), store: path.join(dir, '._view'), dir, seen }
  }
  const perFile = mk('perfile', 'delayed', ['fold: false'])
  const folded = mk('folded', 'delayed', [])
  const freshView = (v) => {
    rmrf(v.view)
    rmrf(v.store)
  }
  const dest = path.join(work, 'dest')
  const sources = prefixes.map((p) => `${through('delayed', p)}/.`)

  // gc against rm -rf: a per-file generation built on the server side, replaced by a small one, then collected through a mount
  const gcCase = (mount) => {
    const v = mk(`gc-${mount}`, null, ['fold: false'])
    const small = path.join(v.dir, 'small.yaml')
    fs.writeFileSync(small, manifestText(v.view, prefixes.slice(0, 1), ['fold: false']))
    const copy = path.join(work, `rm-${mount}`)
    return { v, small, copy }
  }
  const gcCases = { uncached: gcCase('uncached'), delayed: gcCase('delayed') }

  const samples = {}
  const record = (name, r) => (samples[name] ??= []).push(r.ms)
  const notes = []
  let firstRound = true

  const build = (name, v) => {
    freshView(v)
    const r = viewctlJson(['regenerate', v.file], { env })
    if (r.json.changed !== true || r.json.built !== true) throw new Error(`${name}: expected a build, got ${r.stdout.slice(0, 300)}`)
    record(name, r)
    freshView(v)
  }
  const gcVsRm = (mount) => {
    const { v, small, copy } = gcCases[mount]
    freshView(v)
    rmrf(copy)
    const big = viewctlJson(['regenerate', path.join(v.dir, 'env.yaml')])
    const tree = path.join(v.store, big.json.hash)
    if (spawnSync('cp', ['-a', tree, copy]).status !== 0) throw new Error(`cp -a ${tree} failed`)
    viewctlJson(['regenerate', small])
    // the bench times the removal, not gc's two-minute rule: make the switch look ten minutes old, on the server side
    const then = new Date(Date.now() - 600_000)
    for (const name of fs.readdirSync(v.store)) if (name.startsWith('switch.')) fs.utimesSync(path.join(v.store, name), then, then)
    fs.lutimesSync(v.view, then, then)
    record(`viewctl gc (${mount})`, timed(BIN, ['gc', through(mount, v.view), '--keep', '0', '--ttl', '0', '--force', '--quiet'], { env }))
    if (fs.existsSync(tree)) throw new Error(`viewctl gc through the ${mount} mount left ${tree} in place`)
    record(`rm -rf (${mount})`, timed('rm', ['-rf', through(mount, copy)]))
    if (fs.existsSync(copy)) throw new Error(`rm -rf left ${copy}`)
    freshView(v)
  }

  const cases = [
    function cpRs() {
      rmrf(dest)
      fs.mkdirSync(dest)
      record('cp -rs', timed('cp', ['-rs', ...sources, through('delayed', dest)]))
      if (firstRound) {
        const { links } = countTree(dest)
        if (links !== totalFiles) throw new Error(`cp -rs made ${links} links, expected ${totalFiles}`)
      }
      rmrf(dest)
    },
    () => build('viewctl per-file', perFile),
    () => build('viewctl folded', folded),
    () => gcVsRm('uncached'),
    () => gcVsRm('delayed'),
  ]
  for (let round = 0; round < opts.runs; round++) {
    log(`round ${round + 1}/${opts.runs}`)
    for (let k = 0; k < cases.length; k++) cases[(k + round) % cases.length]()
    firstRound = false
  }

  const strace = opts.strace ? straceBuilds(perFile, folded, freshView, env, log, notes) : null

  const med = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]))
  const ratio = (a, b) => (med[a] != null && med[b] != null ? med[a] / med[b] : null)
  const targets = [
    { name: 'per-file / cp -rs (delayed)', value: ratio('viewctl per-file', 'cp -rs'), max: 0.25 },
    { name: 'folded / per-file (delayed)', value: ratio('viewctl folded', 'viewctl per-file'), max: 1.0 },
    { name: 'gc / rm -rf (uncached)', value: ratio('viewctl gc (uncached)', 'rm -rf (uncached)'), max: 1.2 },
    { name: 'gc / rm -rf (delayed)', value: ratio('viewctl gc (delayed)', 'rm -rf (delayed)'), max: null },
  ].map((t) => ({ ...t, pass: t.value === null || t.max === null ? null : t.value <= t.max }))
  const rows = ['cp -rs', 'viewctl per-file', 'viewctl folded', 'rm -rf (uncached)', 'viewctl gc (uncached)', 'rm -rf (delayed)', 'viewctl gc (delayed)'].map((name) => ({
    name,
    medianMs: med[name] ?? null,
    minMs: samples[name] ? Math.min(...samples[name]) : null,
    samples: samples[name]?.length ?? 0,
  }))
  const cpus = os.cpus()
  return {
    machine: { date: new Date().toISOString(), node: process.version, cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', kernel: os.release(), sshfs: sshfsVersion() },
    config: { prefixes: opts.prefixes, files: opts.files, totalFiles, runs: opts.runs, layout: layoutCounts(opts.files), jobs: opts.jobs, mounts: Object.fromEntries(Object.entries(rig.mounts).map(([k, m]) => [k, m.options.join(',')])) },
    results: rows,
    samples,
    targets,
    strace,
    notes,
  }
}

function sshfsVersion() {
  const r = spawnSync('sshfs', ['--version'], { encoding: 'utf8' })
  return `${r.stdout}\n${r.stderr}`.split('\n').find((l) => /^SSHFS version/i.test(l))?.trim() ?? 'sshfs (version unknown)'
}

/** Each build once under `strace -c -w -f`: its system calls by count and wall-clock time in the call. */
function straceBuilds(perFile, folded, freshView, env, log, notes) {
  if (!has('strace')) {
    notes.push('strace is not installed (apt-get install strace): no system call counts')
    return null
  }
  const out = {}
  for (const [name, v] of [['viewctl per-file', perFile], ['viewctl folded', folded]]) {
    log(`strace -c -f: ${name}`)
    freshView(v)
    const file = path.join(os.tmpdir(), `viewctl-bench-strace-${process.pid}`)
    const r = spawnSync('strace', ['-c', '-w', '-f', '-o', file, BIN, 'regenerate', v.file, '--quiet'], { env: { ...childEnv, ...env }, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`strace of ${name} failed: ${r.stderr.slice(0, 1000)}`)
    out[name] = parseStraceSummary(fs.readFileSync(file, 'utf8'))
    rmrf(file)
    freshView(v)
  }
  return out
}

/** strace -c's table: { calls: {name: {calls, seconds}}, total: {calls, seconds} }. */
function parseStraceSummary(text) {
  const calls = {}
  let total = null
  for (const line of text.split('\n')) {
    const m = /^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\S+)\s*$/.exec(line)
    if (!m) continue
    const entry = { calls: Number(m[4]), seconds: Number(m[2]), errors: m[5] ? Number(m[5]) : 0 }
    if (m[6] === 'total') total = entry
    else calls[m[6]] = entry
  }
  return { calls, total }
}

function render(result) {
  const f = (x, d = 0) => (x === null || x === undefined ? 'n/a' : x.toFixed(d))
  const pad = (s, n) => String(s).padEnd(n)
  const lpad = (s, n) => String(s).padStart(n)
  const { machine, config, network } = result
  const lines = []
  lines.push(`viewctl bench --sharedfs — ${config.totalFiles.toLocaleString('en-US')} files (${config.prefixes} prefixes x ${config.files}), ${config.runs} run${config.runs === 1 ? '' : 's'}, ${machine.sshfs}`)
  lines.push(`delayed mount: ${network.delayMs} ms added each way (measured mean hold ${f(network.measuredMeanHoldMs, 2)} ms over ${network.chunks ?? 'n/a'} chunks); VIEWCTL_JOBS ${config.jobs ?? "viewctl's default"}`)
  lines.push(`node ${machine.node}, ${machine.cpus} cpus (${machine.cpuModel}), ${machine.date}`)
  lines.push(`load average (1/5/15 min) before ${machine.loadavg.before.join(' ')}, after ${machine.loadavg.after.join(' ')}`)
  lines.push('')
  lines.push(`${pad('case', 24)}${lpad('median ms', 11)}${lpad('min ms', 10)}`)
  lines.push('-'.repeat(45))
  for (const r of result.results) lines.push(`${pad(r.name, 24)}${lpad(f(r.medianMs, 0), 11)}${lpad(f(r.minMs, 0), 10)}`)
  lines.push('')
  lines.push(`${pad('target (DESIGN §11, §14)', 30)}${lpad('ratio', 8)}${lpad('limit', 8)}  verdict`)
  lines.push('-'.repeat(56))
  for (const t of result.targets) lines.push(`${pad(t.name, 30)}${lpad(f(t.value, 2), 8)}${lpad(t.max === null ? '' : `≤ ${t.max}`, 8)}  ${t.pass === null ? '' : t.pass ? 'PASS' : 'FAIL'}`)
  if (result.strace) {
    lines.push('')
    lines.push('system calls of one build (strace -c -w -f: seconds are wall-clock time inside each call, summed over threads)')
    const names = Object.keys(result.strace)
    const top = topCalls(result.strace, 12)
    lines.push(`${pad('syscall', 18)}${names.map((n) => lpad(`${n.replace('viewctl ', '')} calls`, 16) + lpad('s', 9)).join('')}`)
    for (const c of [...top, 'total']) {
      lines.push(`${pad(c, 18)}${names.map((n) => {
        const e = c === 'total' ? result.strace[n].total : result.strace[n].calls[c]
        return lpad(e ? e.calls : 0, 16) + lpad(e ? e.seconds.toFixed(3) : '0', 9)
      }).join('')}`)
    }
  }
  for (const n of result.notes) lines.push(`note: ${n}`)
  return lines.join('\n') + '\n'
}

/** The run as docs/benchmarks.md shows it: when, on what, with which command and at which commit, then the tables. */
function markdown(result, startedAt, argv) {
  const { machine, config, network } = result
  const hm = (d) => d.toISOString().slice(11, 16)
  const git = (args) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' })
  const head = git(['rev-parse', '--short', 'HEAD'])
  const dirty = git(['status', '--porcelain', '--untracked-files=no']).stdout?.trim()
  const commit = head.status === 0 ? `\`${head.stdout.trim()}\`${dirty ? ' with changes not committed' : ''}` : 'not a git checkout'
  const n = (x, d = 0) => (x === null || x === undefined ? '—' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }))
  const args = argv.filter((a) => a !== '--markdown')
  const names = {
    'cp -rs': '`cp -rs` (delayed)', 'viewctl per-file': 'viewctl per-file, cold (delayed)', 'viewctl folded': 'viewctl folded, cold (delayed)',
    'rm -rf (uncached)': '`rm -rf` of one generation (uncached)', 'viewctl gc (uncached)': 'viewctl gc of it (uncached)',
    'rm -rf (delayed)': '`rm -rf` of one generation (delayed)', 'viewctl gc (delayed)': 'viewctl gc of it (delayed)',
  }
  const lines = [
    `${startedAt.toISOString().slice(0, 10)} ${hm(startedAt)}–${hm(new Date(machine.date))} UTC · ${machine.cpus} CPUs (${machine.cpuModel.trim()}), Linux ${machine.kernel}, Node ${machine.node}, ${machine.sshfs} · ${config.totalFiles.toLocaleString('en-US')} files (${config.prefixes} prefixes × ${config.files}) · delay ${network.delayMs} ms each way (held ${n(network.measuredMeanHoldMs, 2)} ms on average) · load ${machine.loadavg.before[0].toFixed(1)} → ${machine.loadavg.after[0].toFixed(1)} ·`,
    `\`npm run bench -- --sharedfs${args.length ? ` ${args.join(' ')}` : ''}\` · commit ${commit}`,
    '',
    '| case | median ms | min ms |',
    '|---|---:|---:|',
    ...result.results.map((r) => `| ${names[r.name] ?? r.name} | ${n(r.medianMs)} | ${n(r.minMs)} |`),
    '',
    '| target (DESIGN §11, §14) | limit | ratio | verdict |',
    '|---|---:|---:|---|',
    ...result.targets.map((t) => `| ${t.name} | ${t.max === null ? '' : `≤ ${t.max}`} | ${n(t.value, 2)} | ${t.pass === null ? '' : t.pass ? 'PASS' : 'FAIL'} |`),
  ]
  if (result.strace) {
    const builds = Object.keys(result.strace)
    const calls = topCalls(result.strace, 10)
    lines.push('', `| system call (\`strace -c -w -f\`, one build each) | ${builds.map((b) => `${b.replace('viewctl ', '')} calls | s`).join(' | ')} |`, `|---|${builds.map(() => '---:|---:').join('|')}|`)
    for (const c of [...calls, 'total']) {
      const cells = builds.map((b) => {
        const e = c === 'total' ? result.strace[b].total : result.strace[b].calls[c]
        return `${n(e?.calls ?? 0)} | ${n(e?.seconds ?? 0, 2)}`
      })
      lines.push(`| ${c === 'total' ? 'all' : `\`${c}\``} | ${cells.join(' | ')} |`)
    }
  }
  return lines.join('\n') + '\n'
}

/** The system calls that took the most time in any of the builds. */
function topCalls(strace, count) {
  const builds = Object.keys(strace)
  const all = new Set(builds.flatMap((b) => Object.keys(strace[b].calls)))
  const most = (c) => Math.max(...builds.map((b) => strace[b].calls[c]?.seconds ?? 0))
  return [...all].sort((a, b) => most(b) - most(a)).slice(0, count)
}
