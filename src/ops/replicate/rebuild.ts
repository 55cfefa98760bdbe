/**
 * Hardlink views travel as their manifest. A hardlink view's tree is the
 * prefixes' own inodes, so it cannot be copied to another filesystem; the
 * receiving host plans and builds it from its own prefixes, and its hash
 * differs (it covers the source directories' device and inode). What must
 * not differ is the plan: the same paths, of the same kinds, from the same
 * prefix paths; otherwise the push is refused before anything is switched.
 *
 * The manifest is the one the generation was built from, with its `view:`
 * set to the view here, and relative package paths made absolute from the
 * folder the manifest was in on the sending host (prefixes live at the same
 * paths on both).
 */
import fs from 'node:fs'
import path from 'node:path'
import { ViewError, translateOsError } from '../../errors.js'
import { loadManifest } from '../../manifest/load.js'
import { assertNoConflicts, createPlan, type PlanResult } from '../../plan/index.js'
import type { ParsedPlan } from '../../plan/hash.js'
import { KIND_LETTERS, NO_SOURCE } from '../../plan/types.js'
import { buildGeneration } from '../../store/build/build.js'
import { readViewState } from '../../store/journal/state.js'
import { isComplete } from '../../store/journal/state.js'
import { nonce, type Layout } from '../../store/layout.js'
import { recordSettings, sameSettings } from '../settings.js'
import type { Hello } from './protocol.js'

export interface Rebuilt {
  /** The hash of the tree built here. */
  hash: string
  /** The view shows that tree, with these settings, already. */
  noop: boolean
  warnings: string[]
}

export async function rebuildHere(layout: Layout, hello: Hello, sent: ParsedPlan | null): Promise<Rebuilt> {
  if (hello.manifestText === undefined || sent === null) throw new ViewError('INTERNAL', 'a hardlink view arrived without its manifest or plan', 'this is a bug in viewctl; please report it')
  const text = await manifestForHere(hello.manifestText, hello.manifestFile, layout.view)
  const file = path.join(layout.store, `.push-manifest-${process.pid}-${nonce()}.yaml`)
  try {
    fs.writeFileSync(file, text, { flag: 'wx', mode: 0o644 })
  } catch (err) {
    throw translateOsError(err, `writing ${file}`)
  }
  try {
    const manifest = await loadManifest(file)
    const plan = createPlan(manifest)
    assertNoConflicts(plan, `the manifest of ${hello.origin.view} (from ${hello.origin.host})`)
    assertSamePlan(plan, sent, hello)
    const state = readViewState(layout)
    if (state.hash === plan.hash && state.current !== null && isComplete(layout, plan.hash) && sameSettings(recordSettings(state.current), hello.settings)) {
      return { hash: plan.hash, noop: true, warnings: [...plan.warnings] }
    }
    await buildGeneration(layout, plan, manifest)
    return { hash: plan.hash, noop: false, warnings: [...plan.warnings] }
  } finally {
    try {
      fs.unlinkSync(file)
    } catch {
      // gone already
    }
  }
}

/** The manifest text with `view:` set to `view` and relative package paths made absolute from `originFile`'s folder. */
export async function manifestForHere(text: string, originFile: string | undefined, view: string): Promise<string> {
  const { parseDocument, isMap, isScalar, isSeq } = await import('yaml')
  const doc = parseDocument(text)
  doc.set('view', view)
  const packages = doc.get('packages')
  const base = originFile === undefined ? null : path.dirname(originFile)
  const absolute = (p: unknown) => (typeof p === 'string' && base !== null && !path.isAbsolute(p) ? path.resolve(base, p) : p)
  if (isSeq(packages)) {
    packages.items.forEach((item, i) => {
      if (isScalar(item)) packages.set(i, absolute(item.value))
      else if (isMap(item)) {
        for (const key of ['path', 'glob']) if (item.has(key)) item.set(key, absolute(item.get(key)))
      }
    })
  }
  return doc.toString()
}

function assertSamePlan(here: PlanResult, sent: ParsedPlan, hello: Hello): void {
  const differences: string[] = []
  const n = Math.max(here.paths.length, sent.paths.length)
  const describe = (plan: { paths: string[]; kinds: number[]; sources: number[]; prefixes: string[] }, i: number) => {
    if (i >= plan.paths.length) return 'nothing'
    const src = plan.sources[i]!
    return `${plan.paths[i]} (${KIND_LETTERS[plan.kinds[i]!]}${src === NO_SOURCE ? '' : ` from ${plan.prefixes[src]}`})`
  }
  for (let i = 0; i < n && differences.length < 10; i++) {
    const a = describe(here, i)
    const b = describe(sent, i)
    if (a !== b) differences.push(`here ${a}, there ${b}`)
  }
  if (differences.length === 0) return
  throw new ViewError(
    'PLAN_MISMATCH',
    `the hardlink view ${hello.origin.view} planned here from its manifest differs from its plan on ${hello.origin.host} (${here.paths.length} entries here, ${sent.paths.length} there): ${differences.join('; ')}`,
    'hardlink views are rebuilt from the prefixes of the receiving host: install the same prefixes at the same paths there; the view was not changed',
    { differences },
  )
}
