/**
 * kill -9 at random moments of a push (DESIGN §15): the push itself, its
 * ssh connection, the remote receiver, the remote rsync. A reader loops on
 * the remote view the whole time and must never find it missing or see a
 * tree that is not exactly one generation; after each kill, no process of
 * that push lives on, and the next push succeeds and leaves no staging.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { describe, expect, it, onTestFinished } from 'vitest'
import { BIN, viewctl } from './helpers.js'
import { finishedWithin, historyRecords, scratchDir, sleep, storeOf, waitFor } from './view-checks.js'
import { buildView, dest, makeTree, processes, push, remoteOptions, requirePush, useSshd } from './push-helpers.js'

const sshd = useSshd()

/**
 * The reader: resolves the view, checks that the tree it lands in is exactly
 * the generation its name says (meta.json names that hash; bin/ holds what
 * the plan puts there; every 16th read, the whole tree holds as many entries
 * as the plan), and that a listing through the view path is one complete
 * listing of some generation.
 */
const READER = `
import fs from 'node:fs'
const [view, stopFile, readyFile] = process.argv.slice(2)
const res = { reads: 0, switches: 0, errors: [], errorCount: 0 }
const fail = (what) => { res.errorCount++; if (res.errors.length < 20) res.errors.push(what) }
const plans = new Map() // tree -> { bin, total }
const planOf = (dir) => {
  let p = plans.get(dir)
  if (p) return p
  let bin = 0, total = 0
  for (const line of fs.readFileSync(dir + '/.viewctl/plan.tsv', 'utf8').split('\\n')) {
    if (line === '' || line[0] === '#' || line[0] === 'P') continue
    total++
    const rel = line.split('\\t')[2]
    if (rel.startsWith('bin/') && !rel.slice(4).includes('/')) bin++
  }
  p = { bin, total }
  plans.set(dir, p)
  return p
}
const count = (dir) => {
  let n = 0
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === '.viewctl') continue
    n++
    if (e.isDirectory()) n += count(dir + '/' + e.name)
  }
  return n
}
let last = null
fs.writeFileSync(readyFile, String(process.pid))
for (let i = 1; ; i++) {
  try {
    const target = fs.readlinkSync(view)
    if (!/^\\._[^/]+\\/[0-9a-f]{32}$/.test(target)) fail('points at ' + target)
    // resolved once: what a reader that cd's into the view works in
    const dir = fs.realpathSync(view)
    const hash = dir.split('/').pop()
    if (hash !== last) { if (last !== null) res.switches++; last = hash }
    const meta = JSON.parse(fs.readFileSync(dir + '/.viewctl/meta.json', 'utf8'))
    if (meta.hash !== hash) fail('meta.json of ' + dir + ' names ' + meta.hash)
    const want = planOf(dir)
    const bin = fs.readdirSync(dir + '/bin').length
    if (bin !== want.bin) fail(hash.slice(0, 8) + ': bin/ has ' + bin + ' entries, the plan ' + want.bin)
    if (i % 16 === 0) {
      const total = count(dir)
      if (total !== want.total) fail(hash.slice(0, 8) + ': ' + total + ' entries, the plan ' + want.total)
    }
    // through the view path itself: one complete listing of some generation
    const direct = fs.readdirSync(view + '/bin').length
    if (![...plans.values()].some((p) => p.bin === direct) && planOf(fs.realpathSync(view)).bin !== direct) fail('bin/ through the view has ' + direct + ' entries')
    res.reads++
  } catch (err) {
    fail(String(err.code ?? err.message))
  }
  if (i % 16 === 0 && fs.existsSync(stopFile)) break
}
process.stdout.write(JSON.stringify(res))
`

type Target = 'push' | 'ssh' | 'receiver' | 'rsync'

function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch {
    return true
  }
}

describe('kill -9 during pushes', () => {
  it('never shows a missing or mixed view there; nothing of a killed push lives on; the next push succeeds and leaves no staging', async (ctx) => {
    requirePush(ctx)
    // everything on /dev/shm where there is one: thirty-odd trees of 8,000 links are made and removed
    const root = scratchDir('viewctl-vc16-crash-')
    onTestFinished(() => fs.rmSync(root, { recursive: true, force: true }))
    const prefixes = makeTree(path.join(root, 'p'), 10, 200)
    const view = path.join(root, 'src', 'hpc')
    fs.mkdirSync(path.dirname(view))
    // Each trial pushes a generation the remote host has not seen: one more file in a prefix, as a symlink view
    // (made there from its plan, sharing the unchanged links) or as a copy view (sent by rsync, which is the
    // process killed in the rsync trials).
    // the other targets take turns between the two kinds of view
    const turns: Record<Target, number> = { push: 0, ssh: 0, receiver: 0, rsync: 0 }
    const linkOf = (target: Target): 'copy' | 'symlink' => (target === 'rsync' || turns[target]++ % 2 === 1 ? 'copy' : 'symlink')
    const generation = (k: number, link: 'copy' | 'symlink') => {
      fs.writeFileSync(path.join(prefixes[0]!, 'bin', `marker-${k}`), `${k}\n`)
      return buildView(root, view, prefixes, [`link: ${link}`, 'gc: {keep: 3}']).hash
    }
    const remote = path.join(root, 'remote', 'hpc')
    const remoteStore = storeOf(remote)
    generation(0, 'symlink')
    const first = push(sshd(), view, [dest(sshd(), remote)])
    expect(first.code, first.stderr).toBe(0)

    const script = path.join(root, 'reader.mjs')
    fs.writeFileSync(script, READER)
    const stopFile = path.join(root, 'stop')
    const readyFile = path.join(root, 'ready')
    const reader = spawn(process.execPath, [script, remote, stopFile, readyFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    onTestFinished(() => void reader.kill('SIGKILL'))
    const readerDone = finishedWithin(reader, 1_500_000)
    expect(await waitFor(() => fs.existsSync(readyFile), 30_000, 5)).toBeTruthy()

    const targets: Target[] = ['push', 'ssh', 'receiver', 'rsync']
    const killed: Record<Target, number> = { push: 0, ssh: 0, receiver: 0, rsync: 0 }
    let symlinkKills = 0
    const log: string[] = []
    // until each kind was killed 7 times (28 kills), at most 70 pushes
    const enough = () => targets.every((t) => killed[t] >= 7)
    let trial = 0
    for (let round = 0; !enough() && trial < 70; round++) {
      const target = targets[round % targets.length]!
      if (killed[target] >= 7) continue
      trial++
      const started = Date.now()
      const mode = linkOf(target)
      const hash = generation(trial, mode)
      const args = ['push', view, dest(sshd(), remote), ...remoteOptions(sshd()), '--lock-timeout', '60', '--json']
      const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      onTestFinished(() => void child.kill('SIGKILL'))
      const done = finishedWithin(child, 120_000)
      // a random moment in the life of the first process of that kind: a push lives 1 to 3 s here, the others a fraction of that
      let victim = await waitFor(() => findTarget(target, child, remote, remoteStore), 10_000, 2)
      if (victim !== null) {
        // a symlink view's push is the quicker: its plan travels, not its tree
        const span = target === 'push' ? (mode === 'copy' ? 2500 : 600) : mode === 'copy' ? 400 : 200
        await sleep(Math.floor(Math.random() * span))
        victim = findTarget(target, child, remote, remoteStore)
      }
      if (victim !== null) {
        try {
          process.kill(victim, 'SIGKILL')
          killed[target]++
          if (mode === 'symlink') symlinkKills++
        } catch {
          victim = null // ended just now
        }
      }
      const r = await done
      expect(r.timedOut, `trial ${trial}: the push did not end`).toBe(false)
      const killedAt = Date.now()
      if (r.code !== 0 && r.signal === null) {
        const out = JSON.parse(r.stdout) as { destinations: Array<{ error?: { code: string; message: string } }> }
        const code = out.destinations[0]!.error?.code
        // what a killed piece of the push may look like from the pushing end
        expect(['CONNECTION_LOST', 'TRANSFER_FAILED', 'INTERRUPTED'], `trial ${trial}: ${r.stdout}`).toContain(code)
      }
      // nothing of that push lives on, here or there
      const lingering = await waitFor(() => {
        const left = [...processes((a) => a.includes('receive') && a.includes(remote)), ...processes((a) => path.basename(a[0]!) === 'rsync' && a.some((x) => x.includes(remoteStore)))].filter((p) => !isZombie(p))
        return left.length === 0 ? true : null
      }, 15_000, 50)
      expect(lingering, `trial ${trial}: processes of the killed push live on`).toBe(true)
      // the next push of the same generation succeeds (resuming what was staged) and leaves nothing behind
      const next = push(sshd(), view, [dest(sshd(), remote)], ['--lock-timeout', '60', '--json'])
      expect(next.code, `trial ${trial}: ${next.stdout}${next.stderr}`).toBe(0)
      expect(fs.readlinkSync(remote)).toBe(`._hpc/${hash}`)
      expect(fs.readdirSync(remoteStore).filter((n) => n.startsWith('.staging-') || n.startsWith('.trash-') || n.startsWith('.push-'))).toEqual([])
      log.push(`${trial} ${mode} ${target}: ${victim === null ? 'missed (ended first)' : `killed ${victim}`}, push exit ${r.code ?? r.signal}, ${next.json.destinations[0].resumed ? 'resumed, ' : ''}${((killedAt - started) / 1000).toFixed(1)} + ${((Date.now() - killedAt) / 1000).toFixed(1)} s`)
      // gc there while the reader reads: the current tree and two spares stay, older ones go
      const gc = viewctl(['gc', remote, '--keep', '2', '--ttl', '0s', '--force'])
      expect(gc.code, gc.stderr).toBe(0)
    }
    console.log(`kill -9 trials:\n  ${log.join('\n  ')}`)

    fs.writeFileSync(stopFile, '')
    const rr = await readerDone
    expect(rr.code, rr.stderr).toBe(0)
    const res = JSON.parse(rr.stdout) as { reads: number; switches: number; errors: string[]; errorCount: number; seen: Record<string, number> }
    expect(res.errors).toEqual([])
    expect(res.errorCount).toBe(0)
    expect(res.switches).toBeGreaterThanOrEqual(trial / 2)
    expect(res.reads).toBeGreaterThan(1000)
    console.log(`reader: ${res.reads} reads, ${res.switches} switches seen`)
    // every kind was killed at a random moment several times, 25 kills or more in all
    for (const t of targets) expect(killed[t], `${t} killed`).toBeGreaterThanOrEqual(7)
    // and the pushes of symlink views, made there from their plan, were among them
    expect(symlinkKills).toBeGreaterThanOrEqual(6)
    expect(Object.values(killed).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(25)
    // the journal is whole, and every tree there is complete
    historyRecords(remote)
    for (const name of fs.readdirSync(remoteStore).filter((n) => /^[0-9a-f]{32}$/.test(n))) {
      expect(fs.existsSync(path.join(remoteStore, name, '.viewctl', 'meta.json')), name).toBe(true)
    }
    expect(viewctl(['verify', remote]).code).toBe(0)
  }, 1_500_000)
})

/** The pid to kill for `target` now, or null when there is none (yet, or any more). */
function findTarget(target: Target, child: ChildProcess, remote: string, remoteStore: string): number | null {
  const pick = (pids: number[]) => pids.filter((p) => !isZombie(p))[0] ?? null
  if (target === 'push') return child.exitCode === null && child.signalCode === null ? child.pid! : null
  // the control connection: ssh running `… receive <remote view>`
  if (target === 'ssh') return pick(processes((a) => path.basename(a[0]!) === 'ssh' && a.some((x) => x.includes(' receive ') && x.includes(remote) && !x.includes('--rsync'))))
  // the receiving session: viewctl receive <remote view>, not the rsync guard
  if (target === 'receiver') return pick(processes((a) => a.includes('receive') && a.includes(remote) && !a.includes('--rsync')))
  // rsync there: the server writing into the store
  return pick(processes((a) => path.basename(a[0]!) === 'rsync' && a.includes('--server') && a.some((x) => x.includes(remoteStore))))
}
