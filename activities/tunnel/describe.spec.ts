import type { TunnelStats } from '../../workflows/contracts';
import { innermostMessage, tunnelStatusFrom, type KeeperObservation } from './describe';

const stats = (over: Partial<TunnelStats> = {}): TunnelStats => ({
  connected: true,
  boundPort: 18086,
  openConnections: 2,
  totalConnections: 5,
  bytesIn: 100,
  bytesOut: 50,
  reconnects: 0,
  ...over,
});

const running = (over: Partial<KeeperObservation> = {}): KeeperObservation => ({
  tunnelId: 't1',
  workflowStatus: 'RUNNING',
  query: { tunnelId: 't1', state: 'connecting' },
  ...over,
});

describe('tunnelStatusFrom', () => {
  test('connected when the running attempt heartbeats connected', () => {
    const s = tunnelStatusFrom(running({ activity: { state: 'started', attempt: 1, heartbeat: stats() } }));
    expect(s).toEqual({ tunnelId: 't1', state: 'connected', attempt: 1, stats: stats() });
  });

  test('a heartbeat left over from an earlier attempt does not count as connected', () => {
    // The server keeps heartbeat details across retries; attempt 3 has not heartbeated yet.
    const s = tunnelStatusFrom(
      running({ activity: { state: 'started', attempt: 3, heartbeat: stats({ reconnects: 1 }), lastFailure: 'ssh connection closed' } }),
    );
    expect(s.state).toBe('reconnecting');
    expect(s.lastFailure).toBe('ssh connection closed');
    expect(s.stats).toMatchObject({ connected: false, openConnections: 0, bytesIn: 100 });
  });

  test('waiting for a retry (scheduled) is reconnecting, with the attempt and the failure', () => {
    const s = tunnelStatusFrom(
      running({ activity: { state: 'scheduled', attempt: 2, heartbeat: stats(), lastFailure: 'keepalive timeout' } }),
    );
    expect(s).toMatchObject({ state: 'reconnecting', attempt: 2, lastFailure: 'keepalive timeout' });
  });

  test('first attempt not yet connected is connecting', () => {
    expect(tunnelStatusFrom(running({ activity: { state: 'started', attempt: 1 } })).state).toBe('connecting');
    expect(tunnelStatusFrom(running()).state).toBe('connecting');
  });

  test('the workflow says stopped (stop in progress) or the workflow is closed', () => {
    expect(
      tunnelStatusFrom(
        running({ query: { tunnelId: 't1', state: 'stopped' }, activity: { state: 'cancel-requested', attempt: 1, heartbeat: stats() } }),
      ).state,
    ).toBe('stopped');
    expect(tunnelStatusFrom({ tunnelId: 't1', workflowStatus: 'COMPLETED' })).toEqual({ tunnelId: 't1', state: 'stopped' });
    expect(tunnelStatusFrom({ tunnelId: 't1', workflowStatus: 'FAILED', workflowFailure: 'authentication failed' })).toEqual({
      tunnelId: 't1',
      state: 'stopped',
      lastFailure: 'authentication failed',
    });
  });

  test('a restart the workflow is carrying out shows as reconnecting before the new activity starts', () => {
    expect(tunnelStatusFrom(running({ query: { tunnelId: 't1', state: 'reconnecting' } })).state).toBe('reconnecting');
  });

  test('works without the query (no worker answering)', () => {
    const s = tunnelStatusFrom({ tunnelId: 't1', workflowStatus: 'RUNNING', activity: { state: 'started', attempt: 1, heartbeat: stats() } });
    expect(s.state).toBe('connected');
  });
});

test('innermostMessage follows causes to the root', () => {
  const root = new Error('authentication failed');
  const mid = new Error('Activity task failed', { cause: root });
  expect(innermostMessage(new Error('Workflow execution failed', { cause: mid }))).toBe('authentication failed');
});
