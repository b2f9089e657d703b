import { Connection, Client } from '@temporalio/client';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { until } from './poll';

/** What globalSetup started, for tests. */
export function testStack() {
  const address = process.env.TEMPORAL_ADDRESS;
  const influxUrl = process.env.INFLUX_URL;
  if (!address || !influxUrl) throw new Error('the jest globalSetup did not run (TEMPORAL_ADDRESS/INFLUX_URL unset)');
  return {
    temporalAddress: address,
    influx: {
      url: influxUrl,
      token: process.env.INFLUX_TOKEN ?? 'telegraf:telegraf',
      org: 'agent-onboarding',
      bucket: process.env.INFLUX_BUCKET ?? 'telegraf/autogen',
    },
    telegrafPath: process.env.TELEGRAF_PATH,
  };
}

export async function testClient(keyring = Keyring.forTests()): Promise<Client> {
  const connection = await Connection.connect({ address: testStack().temporalAddress });
  return new Client({ connection, dataConverter: dataConverterFor(keyring) });
}

let counter = 0;
/** A name unique in this test run: task queues and workflow ids never collide between tests. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

/** Poll `fn` until it returns a truthy value or the deadline passes. */
export function eventually<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  return until('condition', fn, timeoutMs, intervalMs);
}
