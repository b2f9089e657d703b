import type { FleetDefaults, FleetMember } from './messages';
import { inventoryMember, offboardAllowance, planReconcile } from './plan';

const defaults: FleetDefaults = {
  target: { address: '', port: 22, credential: { username: 'admin', password: { sealed: 'v2.k1.a.b.c' } } },
  dataPath: { kind: 'direct', influxUrl: 'http://10.0.0.1:8086' },
  agent: { mode: 'artifact' },
  labels: { env: 'prod' },
};
const host = (n: number, extra: Record<string, unknown> = {}) => ({ hostId: `h${n}`, address: `10.0.0.${n}`, ...extra });
const read = (hosts: ReturnType<typeof host>[]) => ({ hosts, ignored: [], digest: 'd'.repeat(64), readAtMs: 1 });
const members = (ns: number[]): FleetMember[] => ns.map((n) => ({ hostId: `h${n}`, address: `10.0.0.${n}` }));

describe('planReconcile', () => {
  it('new hosts are added, gone ones removed, relabeled ones changed, the rest unchanged', () => {
    const plan = planReconcile(members([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), read([1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => host(n, n === 2 ? { labels: { team: 'a' } } : {})).concat([host(11)])), defaults, { maxOffboardShare: 0.1 });
    expect(plan.add).toEqual([{ hostId: 'h11', address: '10.0.0.11' }]);
    expect(plan.remove).toEqual([{ hostId: 'h10', address: '10.0.0.10' }]);
    expect(plan.relabel).toEqual([{ hostId: 'h2', labels: { env: 'prod', team: 'a' } }]);
    expect(plan.unchanged).toBe(8);
    expect(plan.held).toBeUndefined();
  });

  it('a pass that would offboard more than the share stops for approval (at least one host may always go)', () => {
    expect(offboardAllowance(5, 0.1)).toBe(1);
    expect(offboardAllowance(100, 0.1)).toBe(10);
    expect(planReconcile(members([1, 2, 3, 4, 5]), read([host(1), host(2), host(3), host(4)]), defaults, { maxOffboardShare: 0.1 }).held).toBeUndefined();
    const all = planReconcile(members([1, 2, 3, 4, 5]), read([]), defaults, { maxOffboardShare: 0.1 });
    expect(all.remove).toHaveLength(5);
    expect(all.held).toMatchObject({ allowed: 1 });
    expect(all.held?.reason).toContain('5 of 5');
  });

  it('changes the fleet cannot apply are listed, not applied; the source never gives secrets', () => {
    const plan = planReconcile(members([1]), read([host(1, { port: 2222 })]), defaults, { maxOffboardShare: 0.1 });
    expect(plan.unsupported).toEqual([{ hostId: 'h1', why: expect.stringContaining('port') }]);
    const m = inventoryMember(defaults, host(3, { username: 'root' }));
    expect(m).toEqual({ hostId: 'h3', address: '10.0.0.3', credential: { username: 'root', password: defaults.target.credential.password } });
    expect(inventoryMember(defaults, host(4, { dataPath: 'proxy' }))).toEqual({ ignored: expect.stringContaining('proxy') });
    expect(planReconcile([], read([host(4, { dataPath: 'proxy' })]), defaults, { maxOffboardShare: 0.1 }).ignored).toEqual([{ name: 'h4', why: expect.any(String) }]);
  });
});
