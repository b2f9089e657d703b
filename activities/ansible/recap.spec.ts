import { describeFailure, parseRecap, shorten, totals } from './recap';

// Captured from real runs of deploy/ansible/onboard.yml (ao_recap callback and the default one).
const AO_OK =
  '{"ao_recap": 1, "custom": {"target": {"telegraf_started_at_ms": "1795312623958", "telegraf_version": "1.39.3"}}, ' +
  '"failures": {}, "hosts": {"target": {"changed": 0, "failed": 0, "ignored": 0, "ok": 20, "rescued": 0, "skipped": 5, "unreachable": 0}}}';
const AO_FAILED =
  '{"ao_recap": 1, "custom": {}, "failures": {"h1": {"kind": "failed", "message": "Could not find or access ' +
  "'/nonexistent/telegraf' on the Ansible Controller. If you are using a module and expect the file to exist on the remote, " +
  'see the remote_src option", "task": "telegraf : Copy the Telegraf binary"}}, "hosts": {"h1": {"changed": 0, "failed": 1, ' +
  '"ignored": 0, "ok": 5, "rescued": 0, "skipped": 0, "unreachable": 0}}}';
const AO_UNREACHABLE =
  '{"ao_recap": 1, "custom": {}, "failures": {"h1": {"kind": "unreachable", "message": "Data could not be sent to remote host ' +
  '\\"10.213.254.9\\". Make sure this host can be reached over ssh: Connection timed out during banner exchange", ' +
  '"task": "Gathering Facts"}}, "hosts": {"h1": {"changed": 0, "failed": 0, "ignored": 0, "ok": 0, "rescued": 0, "skipped": 0, "unreachable": 1}}}';

const TEXT_FAILED = `
PLAY [Onboard hosts into monitoring] *******************************************

TASK [Gathering Facts] *********************************************************
ok: [h1]

TASK [telegraf : Copy the Telegraf binary] *************************************
fatal: [h1]: FAILED! => 
    changed: false
    msg: |-
        Could not find or access '/nonexistent/telegraf' on the Ansible Controller.
        If you are using a module and expect the file to exist on the remote, see the remote_src option

PLAY RECAP *********************************************************************
h1                         : ok=5    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0   
`;

const TEXT_JSON_RESULT_IGNORED = `
TASK [probe] *******************************************************************
fatal: [h2]: FAILED! => {"changed": false, "msg": "tolerated"}
...ignoring

TASK [install] *****************************************************************
fatal: [h2]: FAILED! => {"changed": false, "msg": "apt failed: no such package"}

PLAY RECAP *********************************************************************
h2                         : ok=1    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=1
`;

describe('parseRecap', () => {
  it('reads counts and the published report from the ao_recap document', () => {
    const r = parseRecap(`[WARNING]: something\n${AO_OK}\n`);
    expect(r?.hosts.target).toEqual({ ok: 20, changed: 0, failed: 0, unreachable: 0, skipped: 5, rescued: 0, ignored: 0 });
    expect(r?.failures).toEqual([]);
    expect(r?.custom.target).toEqual({ telegraf_started_at_ms: '1795312623958', telegraf_version: '1.39.3' });
  });

  it('names the failed task and keeps the message short', () => {
    const r = parseRecap(AO_FAILED)!;
    expect(totals(r).failed).toBe(1);
    expect(r.failures[0]).toMatchObject({ host: 'h1', kind: 'failed', task: 'telegraf : Copy the Telegraf binary' });
    expect(describeFailure(r, 'h1')).toMatch(/^telegraf : Copy the Telegraf binary: Could not find or access/);
  });

  it('tells unreachable apart from failed', () => {
    const r = parseRecap(AO_UNREACHABLE)!;
    expect(r.hosts.h1.unreachable).toBe(1);
    expect(r.failures[0]).toMatchObject({ kind: 'unreachable', task: 'Gathering Facts' });
  });

  it('understands the default callback (YAML results)', () => {
    const r = parseRecap(TEXT_FAILED)!;
    expect(r.hosts.h1).toMatchObject({ ok: 5, failed: 1, unreachable: 0 });
    expect(r.failures).toEqual([
      {
        host: 'h1',
        kind: 'failed',
        task: 'telegraf : Copy the Telegraf binary',
        message: expect.stringMatching(/^Could not find or access '\/nonexistent\/telegraf' on the Ansible Controller\. If you/),
      },
    ]);
  });

  it('skips ignored failures and reads JSON results', () => {
    const r = parseRecap(TEXT_JSON_RESULT_IGNORED)!;
    expect(r.hosts.h2.ignored).toBe(1);
    expect(r.failures).toEqual([{ host: 'h2', kind: 'failed', task: 'install', message: 'apt failed: no such package' }]);
  });

  it('returns null when the run ended before a recap', () => {
    expect(parseRecap('ERROR! the playbook: onboard.yml could not be found\n')).toBeNull();
    expect(parseRecap('{"ao_recap": 1, "hosts": {"h1": {"ok"')).toBeNull();
  });

  it('bounds messages', () => {
    const long = 'x'.repeat(5000);
    const r = parseRecap(JSON.stringify({ ao_recap: 1, hosts: {}, failures: { h: { kind: 'failed', task: 't', message: long } } }))!;
    expect(r.failures[0].message.length).toBeLessThanOrEqual(300);
    expect(shorten('a\n  b\tc')).toBe('a b c');
  });
});
