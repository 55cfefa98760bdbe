/**
 * The sending end: one generation of a local view, held by a shared lease
 * on its `.viewctl/lease` for as long as it is being sent, so that gc on
 * this host (which try-locks that file exclusively) leaves it alone. No
 * writer lock is taken: local regenerates go on meanwhile, and the tree
 * being sent cannot change, since a generation is immutable.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ViewError, translateOsError } from '../../errors.js'
import { readTextNoFollow } from '../../fs.js'
import { viewPathOf } from '../../manifest/target.js'
import { PLAN_FORMAT } from '../../plan/types.js'
import { currentUser, switches } from '../../store/journal/history.js'
import { readMeta, type GenerationMeta } from '../../store/journal/meta.js'
import { readViewState, requireManaged, isComplete } from '../../store/journal/state.js'
import { trySharedLease } from '../../store/guard/lease.js'
import { generationDir, layoutFor, MANIFEST_COPY, META_DIR, META_FILE, PLAN_FILE, type Layout } from '../../store/layout.js'
import { toolVersion } from '../../version.js'
import { findGeneration } from '../rollback.js'
import { recordSettings } from '../settings.js'
import { PROTOCOL, type GenerationFiles, type Hello } from './protocol.js'

export interface SourceGeneration {
  layout: Layout
  generation: number | null
  hash: string
  /** The tree, `._<name>/<hash>` (not resolved: rsync sends its contents). */
  dir: string
  meta: GenerationMeta
  /** False when the filesystem cannot lock: then only gc's ttl and spares protect the tree. */
  leased: boolean
  warnings: string[]
  /** The hello for a receiver, given the options of this transfer. */
  hello(opts: { noSwitch: boolean; withPrefixes: boolean; lockTimeout: number; heartbeatMs: number; argv: string[] }): Hello
  /** The plan text (`.viewctl/plan.tsv`), read once. */
  planText(): string
  /** A symlink view's generation files as they are here, for a receiver that makes the tree from its plan; read once for every destination. */
  generationFiles(): GenerationFiles
  /** Drop the lease. */
  release(): void
}

const ATTEMPTS = 50
const RETRY_MS = 20

/**
 * The generation `spec` (a number or a hash prefix; default the current
 * one) of the view `target` names, leased.
 */
export async function openSource(target: string, spec?: string): Promise<SourceGeneration> {
  const layout = layoutFor(viewPathOf(target))
  for (let attempt = 0; ; attempt++) {
    const state = readViewState(layout)
    requireManaged(state)
    const chosen = spec === undefined ? { generation: state.current?.generation ?? null, hash: state.hash } : findGeneration(state, spec)
    const dir = generationDir(layout, chosen.hash)
    if (!isComplete(layout, chosen.hash)) {
      const which = chosen.generation === null ? chosen.hash.slice(0, 12) : `generation ${chosen.generation} (${chosen.hash.slice(0, 12)})`
      throw new ViewError('GENERATION_COLLECTED', `${which} of ${layout.view} is not on disk (garbage-collected)`, '`viewctl list` shows which generations are on disk; push one of those, or regenerate first')
    }
    let lease
    try {
      lease = trySharedLease(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw translateOsError(err, `taking a lease on ${dir}`)
      lease = null // retired between the look and the open
    }
    if (lease !== null && lease.state !== 'busy') {
      const meta = readMeta(dir)
      if (meta !== null) return sourceOf(layout, state.records, chosen, dir, meta, lease.fd, lease.state === 'held')
      fs.closeSync(lease.fd)
    }
    if (attempt >= ATTEMPTS) {
      throw new ViewError('IO', `could not take a lease on ${dir}: gc kept retiring it`, 'retry; `viewctl list` shows which generations are on disk')
    }
    // gc holds the lease exclusively while it retires a tree: look again
    await new Promise((r) => setTimeout(r, RETRY_MS))
  }
}

function sourceOf(layout: Layout, records: ReturnType<typeof readViewState>['records'], chosen: { generation: number | null; hash: string }, dir: string, meta: GenerationMeta, leaseFd: number, leased: boolean): SourceGeneration {
  // the settings recorded when that generation was made or last switched to (rollback records carry them too)
  const made = [...switches(records)].reverse().find((r) => r.generation === chosen.generation && r.hash === chosen.hash) ?? null
  const settings = recordSettings(made)
  let plan: string | null = null
  let files: GenerationFiles | null = null
  let released = false
  const warnings = leased ? [] : [`the filesystem cannot lock ${dir}/.viewctl/lease: this push holds no lease, only gc's ttl and spares protect the generation while it is sent`]
  return {
    layout,
    generation: chosen.generation,
    hash: chosen.hash,
    dir,
    meta,
    leased,
    warnings,
    hello(opts) {
      const hello: Hello = {
        type: 'hello',
        protocol: PROTOCOL,
        planFormat: PLAN_FORMAT,
        tool: toolVersion(),
        hash: chosen.hash,
        link: meta.options.link as Hello['link'],
        options: meta.options,
        prefixes: meta.prefixes,
        entries: meta.counts.entries,
        settings,
        origin: { host: os.hostname(), user: currentUser(), view: layout.view, generation: chosen.generation, hash: chosen.hash },
        ...opts,
      }
      if (meta.options.link === 'hardlink') {
        hello.manifestText = readText(path.join(dir, META_DIR, MANIFEST_COPY))
        hello.manifestFile = meta.manifest
      }
      return hello
    },
    planText() {
      plan ??= readText(path.join(dir, META_DIR, PLAN_FILE))
      return plan
    },
    generationFiles() {
      files ??= { type: 'generation', plan: this.planText(), meta: readText(path.join(dir, META_DIR, META_FILE)), manifest: readText(path.join(dir, META_DIR, MANIFEST_COPY)) }
      return files
    },
    release() {
      if (released) return
      released = true
      fs.closeSync(leaseFd)
    },
  }
}

function readText(file: string): string {
  try {
    return readTextNoFollow(file)
  } catch (err) {
    throw translateOsError(err, `reading ${file}`)
  }
}
