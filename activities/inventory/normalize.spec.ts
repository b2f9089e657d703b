import { canonicalAddress, digestOf, MAX_IGNORED_LISTED, MAX_INVENTORY_ENTRIES, normalizeHosts, type RawHost } from './normalize';

const at = (i: number, fields: Partial<RawHost>): RawHost => ({ name: `hosts[${i}]`, address: '10.0.0.1', ...fields });

/** Values that must never reach a workflow id, an Ansible var, Telegraf's TOML or a shell. */
const HOSTILE = ['$(id)', '`id`', 'a;reboot', 'a\nb', '{{ lookup("pipe","id") }}', '{% raw %}', 'a"b', "a'b", 'x = "y"\n[agent]', 'a\\b', '${INFLUX_TOKEN}'];

describe('normalizeHosts', () => {
  it('keeps valid hosts, canonical and sorted', () => {
    const read = normalizeHosts(
      [
        at(0, { address: 'Web1.Example.COM.', port: '2222', username: 'ops', hostId: 'web-1', labels: { z: '1', a: 'two words' }, dataPath: 'tunnel' }),
        at(1, { address: '2001:DB8:0:0:0:0:0:1' }),
        at(2, { address: '10.0.0.1', port: 22 }),
      ],
      1234,
    );
    expect(read.ignored).toEqual([]);
    expect(read.readAtMs).toBe(1234);
    expect(read.hosts).toEqual([
      { address: '10.0.0.1', port: 22 },
      { address: '2001:db8::1' },
      { address: 'web1.example.com', port: 2222, hostId: 'web-1', username: 'ops', labels: { a: 'two words', z: '1' }, dataPath: 'tunnel' },
    ]);
    expect(Object.keys(read.hosts[2].labels!)).toEqual(['a', 'z']);
    expect(read.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the digest depends on the hosts, not on their order or on ignored entries', () => {
    const a = at(0, { address: 'a.example.com', labels: { x: '1', y: '2' } });
    const b = at(1, { address: 'b.example.com' });
    const bad = at(2, { address: '$(id)' });
    const one = normalizeHosts([a, b], 1);
    const two = normalizeHosts([bad, b, { ...a, labels: { y: '2', x: '1' } }], 2);
    expect(two.digest).toBe(one.digest);
    expect(digestOf(one.hosts)).toBe(one.digest);
    expect(normalizeHosts([a, { ...b, port: 2200 }], 3).digest).not.toBe(one.digest);
  });

  it.each([
    ['address', (v: string) => ({ address: v }), /address must be an IP address or a DNS name/],
    ['hostId', (v: string) => ({ hostId: v }), /hostId must match/],
    ['username', (v: string) => ({ username: v }), /username must match/],
    ['label value', (v: string) => ({ labels: { role: v } }), /labels entry #1: value/],
    ['label key', (v: string) => ({ labels: { [v]: 'x' } }), /labels entry #1: key/],
    ['dataPath', (v: string) => ({ dataPath: v }), /dataPath must be one of/],
    ['port', (v: string) => ({ port: v }), /port must be an integer/],
  ])('hostile values in %s are ignored with a reason that does not quote them', (_field, make, why) => {
    const entries = HOSTILE.map((v, i) => at(i, { address: `h${i}.example.com`, ...make(v) }));
    const read = normalizeHosts(entries, 0);
    expect(read.hosts).toEqual([]);
    expect(read.ignored).toHaveLength(HOSTILE.length);
    for (const [i, ig] of read.ignored.entries()) {
      expect(ig.name).toBe(`hosts[${i}]`);
      expect(ig.why).toMatch(why);
      for (const v of HOSTILE) expect(ig.why).not.toContain(v);
    }
  });

  it.each([
    [{ port: 0 }, /port/],
    [{ port: 65536 }, /port/],
    [{ port: 22.5 }, /port/],
    [{ port: { __ansible_vault: 'x' } }, /port/],
    [{ address: '999.1.1.1' }, /address/],
    [{ address: '10.0.0.1%eth0' }, /address/],
    [{ address: 'fe80::1%eth0' }, /address/],
    [{ address: '-rf.example.com' }, /address/],
    [{ address: 'a..b' }, /address/],
    [{ address: 12 }, /address/],
    [{ address: ['10.0.0.1'] }, /address/],
    [{ hostId: 'Upper' }, /hostId/],
    [{ hostId: 7 }, /hostId/],
    [{ labels: ['a'] }, /labels must be a map/],
    [{ labels: 'role=web' }, /labels must be a map/],
    [{ labels: { role: 5 } }, /value must be a string/],
    [{ labels: { host_id: 'x' } }, /reserved/],
    [{ labels: { role: { __ansible_vault: 'x' } } }, /value must be a string/],
    [{ dataPath: 'DIRECT' }, /dataPath/],
    [{ problem: 'unknown field(s): password' }, /unknown field/],
  ])('ignores %j', (fields, why) => {
    const read = normalizeHosts([at(0, fields as Partial<RawHost>)], 0);
    expect(read.hosts).toEqual([]);
    expect(read.ignored).toEqual([{ name: 'hosts[0]', why: expect.stringMatching(why) }]);
  });

  it('uses the source field names in reasons', () => {
    const read = normalizeHosts([at(0, { port: 'ssh' })], 0, { port: 'ansible_port' });
    expect(read.ignored[0].why).toMatch(/^ansible_port must be/);
  });

  it('a duplicate address:port or host id: the later entry is ignored', () => {
    const read = normalizeHosts(
      [
        at(0, { address: 'a.example.com', hostId: 'a' }),
        at(1, { address: 'A.example.com.', port: 22 }), // same host: names are case-insensitive, 22 is the default
        at(2, { address: 'a.example.com', port: 2222 }), // another sshd on the same machine: a host of its own
        at(3, { address: 'b.example.com', hostId: 'a' }),
        at(4, { address: '2001:db8::1' }),
        at(5, { address: '2001:0db8:0000::0001' }),
      ],
      0,
    );
    expect(read.hosts.map((h) => `${h.address}:${h.port ?? ''}`)).toEqual(['2001:db8::1:', 'a.example.com:', 'a.example.com:2222']);
    expect(read.ignored).toEqual([
      { name: 'hosts[1]', why: 'same address and port as hosts[0], listed earlier' },
      { name: 'hosts[3]', why: 'same hostId as hosts[0], listed earlier' },
      { name: 'hosts[5]', why: 'same address and port as hosts[4], listed earlier' },
    ]);
  });

  it('bounds what it lists and what it reads', () => {
    const many = Array.from({ length: MAX_IGNORED_LISTED + 50 }, (_, i) => at(i, { address: '$(id)' }));
    const read = normalizeHosts(many, 0);
    expect(read.ignored).toHaveLength(MAX_IGNORED_LISTED + 1);
    expect(read.ignored.at(-1)).toEqual({ name: '…', why: '50 more entries ignored' });
    const tooMany = Array.from({ length: MAX_INVENTORY_ENTRIES + 1 }, (_, i) => at(i, { address: `h${i}.example.com` }));
    expect(() => normalizeHosts(tooMany, 0)).toThrow(expect.objectContaining({ type: 'InventoryUnreadable', nonRetryable: true }));
  });
});

describe('canonicalAddress', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['::FFFF:10.0.0.1', '::ffff:a00:1'],
    ['Host-1.Example.org.', 'host-1.example.org'],
    ['localhost', 'localhost'],
    ['1.2.3', null],
    ['[::1]', null],
    ['a_b.example.com', null],
    ['', null],
  ])('%s → %s', (input, expected) => expect(canonicalAddress(input)).toBe(expected));
});
