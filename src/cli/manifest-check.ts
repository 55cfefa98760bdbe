import { isManifestPath } from '../manifest/target.js'

/**
 * status and verify given a manifest refuse what regenerate would refuse in
 * it (a bad `env:` entry, an unknown key), but not a missing prefix. The
 * checker and its YAML parser load only when a manifest is given.
 */
export async function checkIfManifest(target: string): Promise<void> {
  if (!isManifestPath(target)) return
  const { checkManifest } = await import('../manifest/load.js')
  await checkManifest(target)
}
