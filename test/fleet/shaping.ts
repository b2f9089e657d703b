import { FleetError, FleetUnsupportedError } from './errors';
import { run } from './run';

export interface Shaping {
  drop: boolean;
  latencyMs: number;
}

/** One end of a link: a device, in a named network namespace or (netns undefined) the root one. */
export interface LinkEnd {
  netns?: string;
  dev: string;
}

/**
 * Applies the shaping as one root qdisc on each end's egress, so both directions suffer. Drop wins over latency.
 * Without the netem qdisc (some kernels lack it), "drop" falls back to a token bucket smaller than any packet:
 * every packet is discarded silently, like a cut cable without loss of carrier.
 */
export async function applyShaping(ends: LinkEnd[], shaping: Shaping): Promise<void> {
  for (const { netns, dev } of ends) {
    const tc = (args: string[], allowFailure = false) =>
      run('tc', [...(netns ? ['-n', netns] : []), ...args], { allowFailure, timeoutMs: 10_000 });
    if (!shaping.drop && shaping.latencyMs === 0) {
      await tc(['qdisc', 'del', 'dev', dev, 'root'], true);
      continue;
    }
    const netem = shaping.drop ? ['loss', '100%'] : ['delay', `${Math.round(shaping.latencyMs * 1000)}us`];
    const r = await tc(['qdisc', 'replace', 'dev', dev, 'root', 'netem', ...netem], true);
    if (r.exitCode === 0) continue;
    if (!/unknown/i.test(r.stderr)) throw new FleetError(`tc netem on ${dev} failed: ${r.stderr.trim()}`);
    if (!shaping.drop) {
      throw new FleetUnsupportedError('latency needs the netem qdisc, which this kernel does not provide');
    }
    await tc(['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', '8kbit', 'burst', '1', 'limit', '1']);
  }
}
