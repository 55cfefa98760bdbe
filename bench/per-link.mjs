#!/usr/bin/env node
/**
 * What one link costs, by the way it is made (docs/benchmarks.md, "Where the
 * time goes"): the bench's layout of links (100 prefixes x 1,000 files:
 * `bin/`, `lib/`, `share/man/man1/` shared by all, `include/<pkg>/` one a
 * prefix) made into fresh directories, in plan order, on one thread, by
 *
 *   strings      building each link's target and place only (no system call)
 *   node-abs     fs.symlinkSync(target, absolute place)
 *   node-rel     fs.symlinkSync(target, place relative to the working directory)
 *   addon        the link addon (src/store/build/native.ts): a directory
 *                opened once, a batch of symlinkat() per call
 *
 * each timed with process.cpuUsage (user and sys) and the wall clock, the
 * ways alternating for --runs rounds; medians are printed.
 *
 *   node bench/per-link.mjs [--prefixes 100] [--files 1000] [--runs 5] [--dir /dev/shm]
 */
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { layoutCounts, median, ROOT } from './common.mjs'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(name)
  return i === -1 ? fallback : args[i + 1]
}
const prefixes = Number(option('--prefixes', 100))
const files = Number(option('--files', 1000))
const runs = Number(option('--runs', 5))
const parent = option('--dir', fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp')

const addon = createRequire(import.meta.url)(path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'viewctl-links.node'))
const work = fs.mkdtempSync(path.join(parent, 'viewctl-per-link-'))
const prefixRoot = '/opt/prefixes' // targets need not exist

// the plan: directories, then (dir, name, target) in plan order
const c = layoutCounts(files)
const dirs = ['bin', 'lib', 'include', 'share', 'share/man', 'share/man/man1']
const byDir = new Map([['bin', []], ['lib', []], ['share/man/man1', []]])
for (let p = 0; p < prefixes; p++) {
  const name = `p${p}`
  dirs.push(`include/${name}`)
  byDir.set(`include/${name}`, [])
  for (let i = 0; i < c.bin; i++) byDir.get('bin').push([`${name}-tool${i}`, `${prefixRoot}/${name}/bin/${name}-tool${i}`])
  for (let i = 0; i < c.lib; i++) byDir.get('lib').push([`lib${name}-${i}.so`, `${prefixRoot}/${name}/lib/lib${name}-${i}.so`])
  for (let i = 0; i < c.inc; i++) byDir.get(`include/${name}`).push([`h${i}.h`, `${prefixRoot}/${name}/include/${name}/h${i}.h`])
  for (let i = 0; i < c.man; i++) byDir.get('share/man/man1').push([`${name}-tool${i}.1`, `${prefixRoot}/${name}/share/man/man1/${name}-tool${i}.1`])
}
const links = [...byDir.values()].reduce((n, l) => n + l.length, 0)

let round = 0
function fresh() {
  const dir = path.join(work, `t${round++}`)
  fs.mkdirSync(dir)
  for (const d of dirs) fs.mkdirSync(path.join(dir, d))
  return dir
}

const ways = {
  strings(dir) {
    let n = 0
    for (const [d, list] of byDir) for (const [name, target] of list) n += `${dir}/${d}/${name}`.length + target.length
    return n
  },
  'node-abs'(dir) {
    for (const [d, list] of byDir) for (const [name, target] of list) fs.symlinkSync(target, `${dir}/${d}/${name}`)
  },
  'node-rel'(dir) {
    const back = process.cwd()
    process.chdir(work)
    const rel = path.basename(dir)
    try {
      for (const [d, list] of byDir) for (const [name, target] of list) fs.symlinkSync(target, `${rel}/${d}/${name}`)
    } finally {
      process.chdir(back)
    }
  },
  addon(dir) {
    for (const [d, list] of byDir) {
      const fd = addon.openDir(dir, d)
      for (let s = 0; s < list.length; s += 1024) {
        const part = list.slice(s, s + 1024)
        const errs = new Int32Array(part.length)
        if (addon.symlinks(fd, part.map((x) => x[1]).join('\0'), part.map((x) => x[0]).join('\0'), errs) !== 0) throw new Error('addon: a link failed')
      }
      addon.closeDir(fd)
    }
  },
}

const results = Object.fromEntries(Object.keys(ways).map((k) => [k, { wall: [], user: [], sys: [] }]))
try {
  for (let r = 0; r < runs; r++) {
    const names = Object.keys(ways)
    for (let k = 0; k < names.length; k++) {
      const way = names[(k + r) % names.length]
      const dir = fresh()
      const cpu0 = process.cpuUsage()
      const t0 = process.hrtime.bigint()
      ways[way](dir)
      const wall = Number(process.hrtime.bigint() - t0) / 1e6
      const cpu = process.cpuUsage(cpu0)
      results[way].wall.push(wall)
      results[way].user.push(cpu.user / 1000)
      results[way].sys.push(cpu.system / 1000)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}

process.stdout.write(`${links.toLocaleString('en-US')} links into ${byDir.size} directories, ${runs} runs, median ms (µs a link)\n`)
process.stdout.write(`${'way'.padEnd(10)}${'wall'.padStart(14)}${'user'.padStart(14)}${'sys'.padStart(14)}\n`)
const f = (ms) => `${ms.toFixed(0)} (${((1000 * ms) / links).toFixed(2)})`.padStart(14)
for (const [way, r] of Object.entries(results)) process.stdout.write(`${way.padEnd(10)}${f(median(r.wall))}${f(median(r.user))}${f(median(r.sys))}\n`)
