import { regenerate } from '../../ops/regenerate.js'
import { formatCount, progressReporter, shortHash, type Output } from '../render.js'
import { writerOptions, type GlobalArgs } from '../args.js'
import { interruptible } from '../signals.js'

export async function run(args: GlobalArgs & { manifest: string; dryRun: boolean; adopt: boolean; share: boolean }, out: Output): Promise<number> {
  const interrupt = interruptible()
  try {
    const r = await regenerate(args.manifest, {
      dryRun: args.dryRun,
      adopt: args.adopt,
      ...writerOptions(args, (w) => out.warn(w)),
      share: args.share,
      onProgress: progressReporter(out.flags),
      signal: interrupt.signal,
      workInStore: true, // this process does nothing else meanwhile (ops/regenerate.ts)
    })
    for (const w of r.warnings) out.warn(w)
    out.result(r, () => {
      const adopted = r.adopted ? `adopted the directory that stood at ${r.view} as generation ${r.adopted.generation} (hash ${shortHash(r.adopted.hash)}, ${r.adopted.entries} entries; \`viewctl rollback\` returns to it)\n` : ''
      return adopted + describe()
    })
    return 0
    function describe(): string {
      const what = `${formatCount(r.entries)} entries from ${r.prefixes} prefix${r.prefixes === 1 ? '' : 'es'}`
      if (r.dryRun) {
        if (r.settingsChanged) return `would record the manifest's new env: and gc: settings for ${r.view} (the same tree, hash ${shortHash(r.hash)}); nothing written`
        return r.changed
          ? `would switch ${r.view} to hash ${shortHash(r.hash)} (${what}); nothing written`
          : `up to date: ${r.view} already has hash ${shortHash(r.hash)} (${what}); nothing written`
      }
      if (!r.changed) return `up to date: ${r.view} is generation ${r.generation} (hash ${shortHash(r.hash)}, ${what})`
      if (r.settingsChanged) return `settings changed: ${r.view} is now generation ${r.generation} (was ${r.previousGeneration}), the same tree (hash ${shortHash(r.hash)}, ${what}) with the manifest's new env: and gc: settings`
      const how = r.built ? 'built' : 'reused an existing tree'
      const from = r.previousGeneration === null ? '' : ` (was ${r.previousGeneration})`
      const shared = r.sharedWith === null ? '' : ` (${formatCount(r.shared)} of them shared with generation ${r.sharedWith.generation})`
      return `${r.view} is now generation ${r.generation}${from}: hash ${shortHash(r.hash)}, ${what}, ${how} in ${Math.round(r.elapsedMs)} ms${shared}`
    }
  } catch (err) {
    const code = out.fail(err)
    return interrupt.exitStatus() ?? code
  } finally {
    interrupt.dispose()
  }
}
