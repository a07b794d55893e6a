/**
 * Runs the capabilities' recurring jobs in this process. Each job runs at most once at a
 * time, waits its interval between runs, and logs rather than dies on a failure; jobs are
 * written to be safe with several processes running them at once.
 *
 * @example
 * const jobs = startJobs({ jobs: registry.jobs, storage, clock, onError })
 * await jobs.stop()
 */
import type { JobSpec } from '../capabilities/contract.js'
import type { Clock } from '../platform/ids.js'
import type { Storage } from '../storage/database.js'

export interface JobRunner {
  /** Runs every job once, now, in order; for tests and the CLI. */
  runOnce(): Promise<Record<string, number>>
  stop(): Promise<void>
}

export function startJobs(options: {
  jobs: readonly JobSpec[]
  storage: Storage
  clock: Clock
  onError: (job: string, error: unknown) => void
  timers?: boolean
}): JobRunner {
  let stopped = false
  const running = new Set<Promise<unknown>>()
  const timers = new Set<NodeJS.Timeout>()
  const runJob = async (job: JobSpec): Promise<number> => {
    try {
      const startedAt = options.clock.now()
      // JobSpec: the clock a run reads again never goes back before the run's start.
      return await job.run(options.storage.db, startedAt, () => Math.max(startedAt, options.clock.now()))
    } catch (error) {
      options.onError(job.name, error)
      return 0
    }
  }
  const schedule = (job: JobSpec): void => {
    if (stopped) return
    const timer = setTimeout(() => {
      timers.delete(timer)
      const run = runJob(job).finally(() => {
        running.delete(run)
        schedule(job)
      })
      running.add(run)
    }, job.intervalMs)
    timer.unref()
    timers.add(timer)
  }
  if (options.timers !== false) for (const job of options.jobs) schedule(job)
  return {
    async runOnce() {
      const results: Record<string, number> = {}
      for (const job of options.jobs) results[job.name] = await runJob(job)
      return results
    },
    async stop() {
      stopped = true
      for (const timer of timers) clearTimeout(timer)
      await Promise.allSettled([...running])
    },
  }
}
