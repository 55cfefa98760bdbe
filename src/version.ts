import fs from 'node:fs'

let cached: string | null = null

/** The package version (src/ and dist/ both sit one level below package.json). */
export function toolVersion(): string {
  if (cached === null) {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    cached = pkg.version
  }
  return cached
}
