import fs from 'node:fs'
import { sdkSources } from './sdk-sources.js'

for (const [file, text] of Object.entries(await sdkSources())) {
  fs.writeFileSync(file, text)
  process.stdout.write(`wrote ${file}\n`)
}
