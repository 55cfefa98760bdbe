/**
 * Where in the manifest a problem is: file:line:column for every message
 * (DESIGN §10). Positions come from the parsed YAML document (yaml-source.ts),
 * which is loaded only when the manifest is parsed. A manifest whose validated
 * document is recalled from the scan cache (load.ts) is not parsed at all; its
 * positions are `notParsed`, and asking them for a place means "parse after
 * all": the load starts again from the text, with positions.
 */

/** One thing wrong with the manifest, anchored at a source offset. */
export interface Problem {
  offset: number
  text: string
}

/** Offsets in the manifest's text, and how to name them. */
export interface Positions {
  /** The manifest path as the user gave it, for messages. */
  readonly label: string
  /** `label:line:col` of an offset. */
  at(offset: number): string
  /** Where a problem with the value at `pointer` is reported: the value, or its key when the value is left empty (`view:`). */
  valueOffset(pointer: string[]): number
  /** Where a problem with key `name` of the mapping at `pointer` is reported. */
  keyOffset(pointer: string[], name: string): number
}

const MAX_REPORTED = 20

/** Thrown by `notParsed` positions: the caller parses the manifest and starts again. */
export class PositionsNeeded extends Error {
  constructor() {
    super('the manifest must be parsed to say where the problem is')
    this.name = 'PositionsNeeded'
  }
}

/** The positions of a manifest that was not parsed: every question is answered by PositionsNeeded. */
export function notParsed(label: string): Positions {
  const parse = (): never => {
    throw new PositionsNeeded()
  }
  return { label, at: parse, valueOffset: parse, keyOffset: parse }
}

/** One `file:line:col: text` line per problem, in file order, without repeats, at most MAX_REPORTED and a count. */
export function formatProblems(positions: Positions, problems: Problem[]): string[] {
  const sorted = [...problems].sort((a, b) => a.offset - b.offset)
  const lines = [...new Set(sorted.map((p) => `${positions.at(p.offset)}: ${p.text}`))]
  if (lines.length <= MAX_REPORTED) return lines
  return [...lines.slice(0, MAX_REPORTED), `… and ${lines.length - MAX_REPORTED} more`]
}

export function firstLine(message: string): string {
  return message.split('\n', 1)[0].trim()
}
