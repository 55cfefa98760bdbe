import fs from 'node:fs'

let cached: string | null = null

/** The package version: package.json sits one level above src/ and dist/, two above dist/bundle/. */
export function toolVersion(): string {
  if (cached === null) {
    for (const rel of ['../package.json', '../../package.json']) {
      let pkg: { name?: string; version?: string }
      try {
        pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as typeof pkg
      } catch {
        continue // not at this level
      }
      if (pkg.name === 'viewctl' && typeof pkg.version === 'string') {
        cached = pkg.version
        break
      }
    }
    if (cached === null) throw new Error(`viewctl: package.json not found above ${import.meta.url}`)
  }
  return cached
}
