import { verifyMetrics } from '../../activities/metrics/verify-metrics';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { testStack, uniqueName } from '../support/stack';
import { failureOf } from '../support/failures';

const deps = () => ({ keyring: Keyring.forTests(), influx: testStack().influx, log: createLogger('test') });

async function writePoint(hostId: string, atMs: number): Promise<void> {
  const { url, bucket } = testStack().influx;
  const db = bucket.split('/')[0];
  const res = await fetch(`${url}/write?db=${db}&precision=ms`, { method: 'POST', body: `cpu,host_id=${hostId} usage_idle=99 ${atMs}` });
  expect(res.status).toBe(204);
}


describe('verifyMetrics (real InfluxDB)', () => {
  it('succeeds once a fresh point tagged with the host id is seen', async () => {
    const hostId = uniqueName('vm');
    const since = Date.now() - 1000;
    const pending = verifyMetrics(deps())({ hostId, sinceMs: since, deadlineMs: 20_000, pollMs: 200 });
    await writePoint(hostId, Date.now());
    const r = await pending;
    expect(r.pointsSeen).toBe(1);
    expect(r.lastPointAtMs).toBeGreaterThanOrEqual(since);
  });

  it('names NoPoints when nothing arrives and StalePoints when only older points exist', async () => {
    const none = await failureOf(verifyMetrics(deps())({ hostId: uniqueName('none'), sinceMs: Date.now(), deadlineMs: 500, pollMs: 100 }));
    expect(none.type).toBe('NoPoints');
    const hostId = uniqueName('stale');
    await writePoint(hostId, Date.now() - 60_000);
    const stale = await failureOf(verifyMetrics(deps())({ hostId, sinceMs: Date.now() - 1000, deadlineMs: 500, pollMs: 100 }));
    expect(stale.type).toBe('StalePoints');
    // Points of another host never count for this one.
    await writePoint(uniqueName('other'), Date.now());
    const other = await failureOf(verifyMetrics(deps())({ hostId: uniqueName('x'), sinceMs: Date.now() - 5000, deadlineMs: 300, pollMs: 100 }));
    expect(other.type).toBe('NoPoints');
  });

  it('names InfluxUnreachable when InfluxDB does not answer', async () => {
    const down = { ...deps(), influx: { ...testStack().influx, url: 'http://127.0.0.1:9' } };
    const err = await failureOf(verifyMetrics(down)({ hostId: 'h', sinceMs: 0, deadlineMs: 300, pollMs: 100 }));
    expect(err.type).toBe('InfluxUnreachable');
    expect(err.message).toContain('127.0.0.1:9');
  });
});
