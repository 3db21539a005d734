/**
 * Combining the commands of concurrent operations on one host.
 *
 * Pulumi drives many resources at once, and each one reads and writes its own
 * device. On a host, the cost of a command is mostly starting it (`sh -c`, `ip`,
 * a round trip), not the change itself, so commands of one kind for one host and
 * namespace that are waiting at the same moment are run as one invocation (a
 * "lane"): reads as one `ip -j -d -force -batch -`, writes as one `ip -batch -`
 * (see readLink in iproute/link.ts and runSteps in steps.ts). Every line is still
 * one change, and every caller gets its own result or error.
 *
 * A lane starts an invocation as soon as the current tick's jobs are in (so the
 * reads one operation issues together go together); jobs that arrive while it has
 * LANE_CONCURRENCY invocations in flight wait and then go together. So a lone
 * operation pays nothing, and a busy host gets fewer, bigger invocations.
 * Only transports with a `batchKey` (same host, same privileges) take part.
 */

/** Invocations in flight per lane by default; the SSH pool allows 8 channels per connection. */
const LANE_CONCURRENCY = 2;
/** Upper bound of jobs in one invocation (keeps one answer's size bounded). */
const MAX_JOBS = 64;

/** A caller waiting on a lane; the runner settles it (the lane rejects it if the runner throws). */
export interface Job {
  reject(err: unknown): void;
}

/** Runs the jobs as one invocation; calls `again` with jobs that did not run, to queue them first. */
export type LaneRunner<J extends Job> = (jobs: J[], again: (jobs: J[]) => void) => Promise<void>;

interface Lane {
  queue: Job[];
  running: number;
  scheduled: boolean;
  runner: LaneRunner<any>;
  concurrency: number;
}

const lanes = new Map<string, Lane>();

/**
 * Queues `job` on the lane `key`; `runner` settles every job it is given, or hands it
 * back. `concurrency`: invocations in flight on the lane (1 for a command whose start
 * costs more than its lines, so that waiting jobs go together).
 */
export function submit<J extends Job>(key: string, job: J, runner: LaneRunner<J>, concurrency = LANE_CONCURRENCY): void {
  let lane = lanes.get(key);
  if (!lane) {
    lane = { queue: [], running: 0, scheduled: false, runner, concurrency };
    lanes.set(key, lane);
  }
  lane.queue.push(job);
  if (!lane.scheduled) {
    lane.scheduled = true;
    const l = lane;
    queueMicrotask(() => {
      l.scheduled = false;
      pump(key, l);
    });
  }
}

function pump(key: string, lane: Lane): void {
  while (lane.running < lane.concurrency && lane.queue.length > 0) {
    const jobs = lane.queue.splice(0, MAX_JOBS);
    lane.running++;
    const again = (back: Job[]) => lane.queue.unshift(...back);
    lane.runner(jobs, again)
      .catch((err) => jobs.forEach((j) => j.reject(err)))
      .finally(() => {
        lane.running--;
        pump(key, lane);
      });
  }
  if (lane.running === 0 && lane.queue.length === 0 && !lane.scheduled && lanes.get(key) === lane) lanes.delete(key);
}
