import { HOST_PHASES, HostState, IllegalTransition, TRANSITIONS, FLAPPING_REPAIRS_PER_HOUR, type HostPhase } from './state';

describe('host state transitions', () => {
  const pairs = HOST_PHASES.flatMap((from) => HOST_PHASES.map((to) => [from, to] as [HostPhase, HostPhase]));

  it.each(pairs)('%s → %s is allowed exactly when the table says so', (from, to) => {
    const s = new HostState(from, 0);
    const legal = from === to || TRANSITIONS[from].includes(to);
    if (legal) {
      s.moveTo(to, 1);
      expect(s.phase).toBe(to);
    } else {
      expect(() => s.moveTo(to, 1)).toThrow(IllegalTransition);
      expect(s.phase).toBe(from);
    }
  });

  it('every phase can be offboarded, and offboarded is final', () => {
    for (const p of HOST_PHASES.filter((x) => x !== 'offboarding' && x !== 'offboarded')) expect(TRANSITIONS[p]).toContain('offboarding');
    expect(TRANSITIONS.offboarded).toEqual([]);
    expect(TRANSITIONS.offboarding).toEqual(['offboarded']);
  });

  it('a healthy host never jumps back into onboarding phases', () => {
    for (const p of ['probing', 'creating-cloudroot', 'installing-agent', 'starting-tunnel', 'verifying', 'failed'] as HostPhase[]) {
      expect(TRANSITIONS.healthy).not.toContain(p);
    }
  });

  it('keeps the reason while degraded and repairing, drops it when healthy', () => {
    const s = new HostState('healthy', 0);
    s.moveTo('degraded', 1, 'NoRecentPoints');
    expect(s.view(1).reason).toBe('NoRecentPoints');
    s.moveTo('repairing', 2);
    expect(s.view(2).reason).toBe('NoRecentPoints');
    s.moveTo('healthy', 3);
    expect(s.view(3).reason).toBeUndefined();
    expect(s.view(3).since).toBe(3);
  });

  it('a change or rotation starts only from healthy or degraded and ends healthy, degraded or offboarding', () => {
    for (const p of HOST_PHASES) expect(TRANSITIONS[p].includes('changing')).toBe(p === 'healthy' || p === 'degraded');
    expect([...TRANSITIONS.changing].sort()).toEqual(['degraded', 'healthy', 'offboarding']);
  });

  it('restores what a previous run handed over', () => {
    const s = new HostState('healthy', 0);
    s.moveTo('degraded', 10, 'TunnelDown');
    s.recordRepair({ atMs: 11, reason: 'TunnelDown', action: 'restart the tunnel', outcome: 'failed', error: 'TunnelFailed: x' });
    const r = HostState.restore(s.view(12));
    expect(r.view(12)).toEqual(s.view(12));
    r.moveTo('repairing', 13);
    expect(r.reason).toBe('TunnelDown');
  });

  it('says flapping after repeated repairs within an hour', () => {
    const s = new HostState('healthy', 0);
    for (let i = 0; i < FLAPPING_REPAIRS_PER_HOUR; i++) s.recordRepair({ atMs: 1000 * i, reason: 'NoRecentPoints', action: 'agent role', outcome: 'repaired' });
    expect(s.view(5000)).toMatchObject({ repairsLastHour: FLAPPING_REPAIRS_PER_HOUR, flapping: true });
    expect(s.view(2 * 3_600_000).flapping).toBe(false);
  });
});
