/**
 * The manifest's YAML: parsed keeping positions, refused when it is not a
 * mapping, and turned into plain data for the schema. This is the one module
 * that imports yaml, and load.ts imports it only when it parses: a no-op
 * regenerate whose document the scan cache recalls never loads the parser.
 */
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml'
import { ViewError } from '../errors.js'
import { firstLine, formatProblems, type Positions, type Problem } from './positions.js'

export interface ParsedManifest {
  positions: Positions
  /** The document as plain data, not yet validated. */
  data: Record<string, unknown>
}

export function parseManifestText(label: string, text: string): ParsedManifest {
  const lines = new LineCounter()
  // prettyErrors off: positions come from the LineCounter, and the message stays one clean sentence.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false })
  const positions = new YamlPositions(label, doc, lines)
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => ({ offset: e.pos[0], text: firstLine(e.message) }))
    throw yamlError(positions, problems)
  }
  return { positions, data: toPlainData(positions) }
}

function yamlError(positions: Positions, problems: Problem[]): ViewError {
  const lines = formatProblems(positions, problems)
  return new ViewError('MANIFEST_YAML', lines.join('\n'), 'fix the YAML syntax at that line (indent with spaces, quote values that contain ": " or start with a special character such as * & ! { [)', { errors: lines })
}

/** The document as plain data, refusing what is not a manifest-shaped mapping. */
function toPlainData(positions: YamlPositions): Record<string, unknown> {
  const { doc, label } = positions
  const root = doc.contents
  if (root === null || (isScalar(root) && root.value === null)) {
    throw new ViewError('MANIFEST_INVALID', `${label}:1:1: the manifest is empty`, 'a manifest needs at least `view:` and `packages:`; see examples/ and the README manifest reference')
  }
  if (!isMap(root)) {
    throw new ViewError('MANIFEST_INVALID', `${positions.at(nodeOffset(root))}: the manifest must be a mapping of keys (view:, packages:, …), not ${describeKind(root)}`, 'start the file with `view: <path>` and `packages:`; see examples/ and the README manifest reference')
  }
  try {
    // A cap on alias expansion keeps a "billion laughs" file from eating the machine.
    return doc.toJS({ maxAliasCount: 1000 }) as Record<string, unknown>
  } catch (err) {
    // Unresolvable or exploding aliases only surface here, without a position: blame the first alias.
    throw yamlError(positions, [{ offset: firstAliasOffset(doc), text: firstLine((err as Error).message) }])
  }
}

function describeKind(node: unknown): string {
  if (isSeq(node)) return 'a list'
  if (isScalar(node)) return `a single ${typeof node.value === 'string' ? 'string' : 'value'}`
  return 'this'
}

function firstAliasOffset(doc: Document.Parsed): number {
  let offset = 0
  visit(doc, {
    Alias(_, node) {
      offset = node.range?.[0] ?? 0
      return visit.BREAK
    },
  })
  return offset
}

function nodeOffset(node: unknown): number {
  return (node as YamlNode | null)?.range?.[0] ?? 0
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key)
}

interface Located {
  /** The node at the pointer, when it exists. */
  node: unknown
  /** The key naming it, when its parent is a mapping. */
  key: unknown
}

class YamlPositions implements Positions {
  constructor(
    readonly label: string,
    readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  at(offset: number): string {
    const { line, col } = this.lines.linePos(offset)
    return `${this.label}:${line}:${col}`
  }

  valueOffset(pointer: string[]): number {
    const { node, key } = this.locate(pointer)
    const emptyValue = node === null || (isScalar(node) && node.value === null && node.range?.[0] === node.range?.[1])
    if (emptyValue && key) return nodeOffset(key)
    return nodeOffset(node ?? key)
  }

  keyOffset(pointer: string[], name: string): number {
    const { node } = this.locate(pointer)
    const map = this.deref(node)
    if (isMap(map)) {
      const pair = map.items.find((p) => keyText(p.key) === name)
      if (pair) return nodeOffset(pair.key)
    }
    return nodeOffset(map)
  }

  private deref(node: unknown): unknown {
    let current = node
    for (let hops = 0; isAlias(current) && hops < 100; hops++) current = current.resolve(this.doc)
    return current
  }

  /** The YAML node a JSON pointer names, or the deepest one that exists on the way. */
  private locate(pointer: string[]): Located {
    let located: Located = { node: this.doc.contents, key: null }
    for (const segment of pointer) {
      const parent = this.deref(located.node)
      if (isMap(parent)) {
        const pair = parent.items.find((p) => keyText(p.key) === segment)
        if (!pair) return located
        located = { node: pair.value, key: pair.key }
      } else if (isSeq(parent)) {
        const item = parent.items[Number(segment)]
        if (item === undefined) return located
        located = { node: item, key: null }
      } else {
        return located
      }
    }
    return located
  }
}
