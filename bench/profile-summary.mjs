#!/usr/bin/env node
/**
 * Summarize a V8 CPU profile (`node --cpu-prof`) of one viewctl run by phase.
 *
 *   VIEWCTL_UNBUNDLED=1 node --cpu-prof --cpu-prof-dir=/tmp/prof bin/viewctl regenerate env.yaml
 *   node bench/profile-summary.mjs /tmp/prof/*.cpuprofile
 *
 * Each sample is charged to the innermost frame on its stack that names a
 * phase (linking, fsync, walk, merge, hash, …); samples in the garbage
 * collector are shown on their own. Time before the profiler starts (process
 * start-up, about the cost of `node -e ''`) is not in the profile. VIEWCTL_UNBUNDLED=1
 * runs dist/cli/ rather than the bundle, so that the rules below can name modules.
 */
import fs from 'node:fs'

const RULES = [
  ['fsync + metadata files', (f) => /^(fsyncSync|fsyncDir|writeFileDurable|appendDurable)$/.test(f.functionName)],
  ['linking (symlink/link/mkdir)', (f) => (f.url.includes('/store/build/build.') && /^(linkEntries|buildGeneration)$/.test(f.functionName)) || f.url.includes('/store/build/link') || f.url.includes('/store/build/stream')],
  ['plan text + sha256', (f) => f.url.includes('/plan/hash.')],
  ['scan cache (load/save)', (f) => f.url.includes('/plan/cache.')],
  ['walk (readdir)', (f) => f.url.includes('/plan/scan.')],
  ['merge (walk driver, sort, fold)', (f) => f.url.includes('/plan/merge.') || f.url.includes('/plan/filters.')],
  ['plan (other)', (f) => f.url.includes('/plan/index.')],
  ['ajv (import + compile + validate)', (f) => f.url.includes('/node_modules/ajv/') || f.url.includes('/manifest/validate')],
  ['yaml', (f) => f.url.includes('/node_modules/yaml/')],
  ['yargs', (f) => f.url.includes('/node_modules/yargs') || f.url.includes('/node_modules/y18n') || f.url.includes('/node_modules/cliui') || f.url.includes('/node_modules/string-width') || f.url.includes('/node_modules/escalade') || f.url.includes('/node_modules/get-caller-file')],
  ['manifest (other)', (f) => f.url.includes('/manifest/')],
  ['store state/history/lock/publish', (f) => f.url.includes('/store/')],
  ['module loading', (f) => f.url.startsWith('node:internal/modules') || f.url.startsWith('node:internal/process/esm') || f.functionName === 'compileSourceTextModule'],
]

for (const file of process.argv.slice(2)) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'))
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const totals = new Map()
  const add = (k, us) => totals.set(k, (totals.get(k) ?? 0) + us)
  let all = 0
  for (let i = 0; i < prof.samples.length; i++) {
    const us = prof.timeDeltas[i + 1] ?? 0 // the delta after a sample is the time it stands for
    all += us
    let id = prof.samples[i]
    const leaf = byId.get(id).callFrame
    if (leaf.functionName === '(garbage collector)') { add('garbage collection', us); continue }
    if (leaf.functionName === '(idle)') { add('idle (waiting)', us); continue }
    let cat = null
    while (id !== undefined && cat === null) {
      const f = byId.get(id).callFrame
      for (const [name, test] of RULES) if (test(f)) { cat = name; break }
      id = parent.get(id)
    }
    add(cat ?? (leaf.functionName === '(program)' ? 'native / start-up (program)' : 'other JS'), us)
  }
  console.log(`${file}: ${(all / 1000).toFixed(0)} ms profiled (${((prof.endTime - prof.startTime) / 1000).toFixed(0)} ms wall)`)
  for (const [k, us] of [...totals].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(36)} ${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / all).toFixed(1).padStart(5)} %`)
}
