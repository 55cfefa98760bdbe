import fs from 'node:fs'

let cached: string | null = null

/** The package version: package.json sits one level above src/ and dist/, two above dist/bundle/. */
export function toolVersion(): string {
  if (cached === null) {
    let text: string | null = null
    for (const rel of ['../package.json', '../../package.json']) {
      try {
        text = fs.readFileSync(new URL(rel, import.meta.url), 'utf8')
        if ((JSON.parse(text) as { name?: string }).name === 'viewctl') break
      } catch {
        // not at this level
      }
      text = null
    }
    if (text === null) throw new Error('viewctl: package.json not found above ' + import.meta.url)
    cached = (JSON.parse(text) as { version: string }).version
  }
  return cached
}
