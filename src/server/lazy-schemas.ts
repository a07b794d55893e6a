/**
 * Route schemas compiled at their first use instead of at boot. Fastify compiles a validator
 * (Ajv) and a serializer (fast-json-stringify) for every route when the server starts; with
 * about a hundred routes that was 40 % of a restart's CPU, on the path of the first answer
 * after a crash (the crash suite's restart-to-first-200). Here each compiled function is made
 * when its route first needs it, once, and a route never used costs nothing.
 *
 * What boot-time compiling gave — a schema mistake found before the first request — the tests
 * keep: `compileAll()` compiles everything now, and a test runs it for every route.
 *
 * @example
 * const lazy = createLazySchemas()
 * app.setValidatorCompiler(lazy.validators(createValidatorCompiler()))
 * lazy.compileAll() // in a test: every schema compiles
 */
import SerializerSelector from '@fastify/fast-json-stringify-compiler'
import type { FastifySchemaCompiler } from 'fastify'

declare module 'fastify' {
  interface FastifyInstance {
    /** Compiles every route schema not compiled yet (tests: no schema fails only at first use). */
    compileAllSchemas(): number
  }
}

type Validator = ReturnType<FastifySchemaCompiler<unknown>>
type ValidatorWithErrors = Validator & { errors?: unknown }

export interface LazySchemas {
  validators(compile: FastifySchemaCompiler<unknown>): FastifySchemaCompiler<unknown>
  /** A serializer compiler factory for Fastify's `schemaController.compilersFactory.buildSerializer`. */
  readonly buildSerializer: SerializerSelector.SerializerFactory
  /** Compiles every schema not compiled yet; returns how many there were. */
  compileAll(): number
}

export function createLazySchemas(): LazySchemas {
  const pending = new Set<() => void>()

  /** `compile` runs once, on first need; `compileAll` may run it earlier. */
  function once<F>(compile: () => F): () => F {
    let compiled: F | undefined
    const get = () => {
      if (compiled === undefined) {
        compiled = compile()
        pending.delete(force)
      }
      return compiled
    }
    const force = () => void get()
    pending.add(force)
    return get
  }

  return {
    validators: (compile) => (route) => {
      const get = once(() => compile(route) as ValidatorWithErrors)
      // Fastify reads `errors` from the function it was given, after calling it.
      const validate = ((data: unknown) => {
        const compiled = get()
        const result = compiled(data)
        validate.errors = compiled.errors
        return result
      }) as ValidatorWithErrors
      validate.errors = null
      return validate as Validator
    },
    buildSerializer: (externalSchemas, options) => {
      const build = SerializerSelector()(externalSchemas, options)
      return (route) => {
        const get = once(() => build(route))
        return (data: unknown) => get()(data)
      }
    },
    compileAll() {
      const all = [...pending]
      for (const force of all) force()
      return all.length
    },
  }
}
