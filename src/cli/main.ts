#!/usr/bin/env node
import { CommanderError } from 'commander'
import { ConfigError } from '../config.js'
import { SealingError } from '../platform/signing/sealing.js'
import { createCli } from './commands.js'

const cli = createCli({ out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) })
try {
  await cli.parseAsync(process.argv)
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode
  } else if (error instanceof ConfigError || error instanceof SealingError) {
    // A setting to fix, not a bug: the message says which, without a stack.
    process.stderr.write(`${error.message}\n`)
    process.exitCode = 2
  } else {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exitCode = 1
  }
}
