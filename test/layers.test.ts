/**
 * The floors of src/ (STYLE.md): cli → ops → modules → shell → store →
 * plan → manifest → fs, errors (modules writes the module trees every
 * writer in ops keeps up to date, from the env shell/ computes); inside store/, recover and remove over build, build
 * over journal and guard, all of them over layout, places and workers. Every import
 * points down a floor or stays in its own folder, and no module reaches
 * itself again through its imports (type-only and lazy `import()` included:
 * a circle is a circle to a reader even where the runtime never walks it).
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers.js'

const SRC = path.join(ROOT, 'src')

/** Floor of each room, by the longest matching prefix of its path under src/; higher may import lower. */
const FLOORS: Array<[string, number]> = [
  ['errors.ts', 0],
  ['fs.ts', 0],
  ['version.ts', 0],
  ['types/', 0],
  ['manifest/', 1],
  ['plan/', 2],
  ['store/layout.ts', 3],
  ['store/places.ts', 4],
  ['store/workers.ts', 4],
  ['store/journal/', 5],
  ['store/guard/', 5],
  ['store/build/', 6],
  ['store/remove/', 7],
  ['store/recover/', 7],
  ['shell/', 8],
  ['modules/', 9],
  ['ops/', 10],
  ['cli/', 11],
  ['index.ts', 12],
]

function floorOf(rel: string): { floor: number; room: string } {
  let best: [string, number] | undefined
  for (const entry of FLOORS) if (rel.startsWith(entry[0]) && (best === undefined || entry[0].length > best[0].length)) best = entry
  if (best === undefined) throw new Error(`src/${rel} is on no floor: add its folder to FLOORS in test/layers.test.ts`)
  return { floor: best[1], room: best[0] }
}

/** Every .ts module under src/ with the modules it imports (relative specifiers, static, type-only and dynamic). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const text = fs.readFileSync(p, 'utf8')
        const deps: string[] = []
        for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)(['"])(\.{1,2}\/[^'"]+)\1/gm)) {
          deps.push(path.relative(SRC, path.resolve(path.dirname(p), m[2]!)).replace(/\.js$/, '.ts'))
        }
        graph.set(path.relative(SRC, p), deps)
      }
    }
  }
  walk(SRC)
  return graph
}

describe('the floors of src/', () => {
  const graph = importGraph()

  it('reads the imports it checks', () => {
    expect(graph.size).toBeGreaterThan(60)
    expect(graph.get('store/build/stream.ts')).toContain('store/build/stream-queue.ts')
    for (const [from, deps] of graph) for (const to of deps) expect(graph.has(to), `${from} imports ${to}, which is not a module under src/`).toBe(true)
  })

  it('every import points down a floor, or stays in its own folder', () => {
    const upward: string[] = []
    for (const [from, deps] of graph) {
      const a = floorOf(from)
      for (const to of deps) {
        const b = floorOf(to)
        if (a.room === b.room) continue
        if (b.floor >= a.floor) upward.push(`${from} (${a.room}, floor ${a.floor}) imports ${to} (${b.room}, floor ${b.floor})`)
      }
    }
    expect(upward).toEqual([])
  })

  it('no module reaches itself through its imports', () => {
    const circles: string[] = []
    const state = new Map<string, 'open' | 'done'>()
    const stack: string[] = []
    const visit = (m: string) => {
      state.set(m, 'open')
      stack.push(m)
      for (const d of graph.get(m) ?? []) {
        if (state.get(d) === 'open') circles.push([...stack.slice(stack.indexOf(d)), d].join(' > '))
        else if (!state.has(d)) visit(d)
      }
      stack.pop()
      state.set(m, 'done')
    }
    for (const m of [...graph.keys()].sort()) if (!state.has(m)) visit(m)
    expect(circles).toEqual([])
  })
})
