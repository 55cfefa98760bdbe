#!/usr/bin/env node
// How long one /proc scan for processes using a generation takes with many
// processes around (docs/generations.md, "Measuring the scan").
//
//   npm run build && node bench/procscan.mjs [processes=1000] [--no-maps]
//
// Spawns that many `sleep 60` children (one with its cwd in a throwaway
// "generation"), times five scans, and kills the children.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { findProcessUsers } from '../dist/store/guard/readers.js'

const n = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 1000)
const maps = !process.argv.includes('--no-maps')
const store = fs.mkdtempSync(path.join(os.tmpdir(), 'viewctl-procscan-'))
const hash = 'ab'.repeat(16)
fs.mkdirSync(path.join(store, hash))
const children = []
try {
  for (let i = 0; i < n; i++) children.push(spawn('sleep', ['60'], { stdio: 'ignore', cwd: i === n - 1 ? path.join(store, hash) : '/' }))
  await new Promise((r) => setTimeout(r, 1500))
  const times = []
  let last
  for (let i = 0; i < 5; i++) {
    last = findProcessUsers([store], [hash], { maps })
    times.push(Math.round(last.elapsedMs))
  }
  const found = last.uses.get(hash)?.length ?? 0
  console.log(`${last.scanned} processes scanned (${n} sleep children), maps ${maps ? 'read' : 'skipped'}: ${times.join(', ')} ms; found ${found} user(s) of the generation (expected 1)`)
  if (found !== 1) process.exitCode = 1
} finally {
  for (const c of children) c.kill('SIGKILL')
  fs.rmSync(store, { recursive: true, force: true })
}
