/**
 * The precompiled manifest validator (src/manifest/schema-validator.ts) is
 * generated from schemas/manifest.schema.json by scripts/build-validator.mjs.
 * It must match the schema byte for byte, and judge manifests the way ajv
 * compiling the schema at run time does (the same errors, so the same messages).
 */
import fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { Ajv2020 } from 'ajv/dist/2020.js'
// @ts-expect-error: a plain ESM script without type declarations
import { generateValidatorSource, SCHEMA_FILE, VALIDATOR_FILE } from '../scripts/build-validator.mjs'
import { MANIFEST_AJV_OPTIONS } from '../src/manifest/load.js'
import validate from '../src/manifest/schema-validator.js'

describe('precompiled manifest validator', () => {
  it('is up to date with schemas/manifest.schema.json (else run `node scripts/build-validator.mjs`)', () => {
    const fresh = generateValidatorSource(fs.readFileSync(SCHEMA_FILE, 'utf8'), MANIFEST_AJV_OPTIONS)
    expect(fs.readFileSync(VALIDATOR_FILE, 'utf8') === fresh, 'src/manifest/schema-validator.ts is stale: run node scripts/build-validator.mjs').toBe(true)
  })

  it('gives the errors a validator compiled at run time gives', () => {
    const compiled = new Ajv2020({ ...MANIFEST_AJV_OPTIONS, strict: false }).compile(JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8')))
    const samples: unknown[] = [
      { view: '/v', packages: ['/p'] },
      { view: '/v', packages: [{ path: '/p', priority: 3, exclude: ['share/doc/**'] }, { glob: '/opt/*' }], gc: { keep: 2, ttl: '7d', auto: true } },
      { view: '', packages: [] },
      { view: 3, packages: [{ path: 1 }, { glob: '' }, '', { path: '/a', glob: '/b' }, { paht: '/x' }], link: 'soft', fold: 'yes' },
      { view: '/v', packages: ['/p'], gc: { ttl: '7x', keep: -1 }, env: { PATH: ['/abs'] }, colour: true },
      { packages: ['/p'] },
      null,
    ]
    const shape = (errors: unknown) => JSON.parse(JSON.stringify(errors ?? null))
    for (const data of samples) {
      const ok = compiled(data)
      expect(validate(data)).toBe(ok)
      expect(shape((validate as unknown as { errors: unknown }).errors)).toEqual(shape(compiled.errors))
    }
  })
})
