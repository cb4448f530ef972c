// The js reference importer on a file, with Kubo's settings (see tests/fixtures/cid/generate.mjs):
// prints the CID. Used by scripts/bench-cid.
import { importBytes } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { readFileSync } from 'node:fs'

const blockstore = { async put (cid) { return cid }, async has () { return false } }
const { cid } = await importBytes(readFileSync(process.argv[2]), blockstore, {
  cidVersion: 1,
  rawLeaves: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  reduceSingleLeafToSelf: true,
})
console.log(cid.toString())
