import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AGENT_LAYOUT, parseAgentStatus, parseRestart, restartScript, statusScript, type AgentLayout } from './check-agent';
import { shellQuote } from './shell';

const ROLE = path.join(__dirname, '../../deploy/ansible/roles/telegraf');

describe('where checkAgent looks', () => {
  const defaults = readFileSync(path.join(ROLE, 'defaults/main.yml'), 'utf8');
  const value = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(defaults)?.[1].trim();

  it("is where the role puts things (its defaults and its unit's path)", () => {
    expect(value('telegraf_supervisor_path')).toBe(AGENT_LAYOUT.supervisorPath);
    expect(value('telegraf_supervisor_pid_file')).toBe(AGENT_LAYOUT.supervisorPidFile);
    expect(value('telegraf_supervisor_log')).toBe(AGENT_LAYOUT.supervisorLog);
    expect(value('telegraf_pid_file')).toBe(AGENT_LAYOUT.pidFile);
    for (const bin of AGENT_LAYOUT.binaries) expect(value('telegraf_binary_path')).toContain(`'${bin}'`);
    const service = readFileSync(path.join(ROLE, 'tasks/service.yml'), 'utf8');
    expect(service).toContain(`dest: ${AGENT_LAYOUT.unitFile}`);
    expect(service).toMatch(new RegExp(`name: ${AGENT_LAYOUT.unit.replace(/\.service$/, '')}\\n`));
  });

  it('the scripts are valid POSIX sh', () => {
    for (const script of [statusScript(), restartScript('systemd'), restartScript('supervisor')]) {
      for (const sh of ['sh', 'dash']) {
        const r = spawnSync(sh, ['-n'], { input: script });
        if (r.error) continue; // that shell is not installed here
        expect({ sh, stderr: r.stderr.toString(), status: r.status }).toEqual({ sh, stderr: '', status: 0 });
      }
    }
  });
});

describe('parseAgentStatus', () => {
  const out = (...lines: string[]) => [...lines, 'check-agent-ok', ''].join('\n');

  it('reads a running systemd unit', () => {
    expect(parseAgentStatus(out('manager=systemd', 'unit.LoadState=loaded', 'unit.ActiveState=active', 'unit.SubState=running', 'unit.Result=success', 'error=', 'telegraf=812'))).toEqual({
      manager: 'systemd', running: true, state: 'active (running)', telegrafPid: 812,
    });
  });

  it('reads failed and restarting units, with the newest error line', () => {
    const err = '2025-06-01T10:00:00+0000 h1 telegraf[77]: 2025-06-01T10:00:00Z E! [telegraf] Error running agent: no outputs found';
    expect(parseAgentStatus(out('manager=systemd', 'unit.LoadState=loaded', 'unit.ActiveState=failed', 'unit.SubState=failed', 'unit.Result=exit-code', `error=${err}`))).toEqual({
      manager: 'systemd', running: false, state: 'failed (failed), result exit-code', error: err,
    });
    expect(parseAgentStatus(out('manager=systemd', 'unit.LoadState=loaded', 'unit.ActiveState=activating', 'unit.SubState=auto-restart', 'unit.Result=exit-code'))).toMatchObject({
      running: false, state: 'activating (auto-restart), result exit-code',
    });
    // A unit file systemd has not loaded (masked, or a daemon-reload short) runs nothing.
    expect(parseAgentStatus(out('manager=systemd', 'unit.LoadState=masked', 'unit.ActiveState=inactive', 'unit.SubState=dead'))).toMatchObject({
      running: false, state: 'unit masked',
    });
  });

  it('reads the supervisor: supervised, waiting out its backoff, gone, or Telegraf on its own', () => {
    expect(parseAgentStatus(out('manager=supervisor', 'supervisor=40', 'error=', 'telegraf=52'))).toEqual({
      manager: 'supervisor', running: true, state: 'supervised pid 52 (supervisor pid 40)', telegrafPid: 52,
    });
    expect(parseAgentStatus(out('manager=supervisor', 'supervisor=40', 'error=2025-06-01T10:00:00Z supervisor[40]: telegraf exited with status 1; restarting in 4s'))).toEqual({
      manager: 'supervisor',
      running: false,
      state: 'supervisor pid 40 runs, telegraf does not (it restarts it after a backoff)',
      error: '2025-06-01T10:00:00Z supervisor[40]: telegraf exited with status 1; restarting in 4s',
    });
    expect(parseAgentStatus(out('manager=supervisor', 'error='))).toEqual({ manager: 'supervisor', running: false, state: 'supervisor not running' });
    expect(parseAgentStatus(out('manager=supervisor', 'telegraf=52'))).toMatchObject({ running: true, state: 'telegraf pid 52 runs without its supervisor' });
  });

  it('reads a host without the agent', () => {
    expect(parseAgentStatus(out('manager=none'))).toEqual({ manager: 'none', running: false, state: 'not installed' });
    expect(parseAgentStatus(out('manager=none', 'binary=/usr/bin/telegraf'))).toMatchObject({
      manager: 'none', running: false, state: 'not installed (no unit or supervisor of ours; a telegraf binary is at /usr/bin/telegraf)',
    });
  });

  it('is undefined for output that did not reach its end, and takes only plain pids', () => {
    expect(parseAgentStatus('manager=supervisor\nsupervisor=40\n')).toBeUndefined();
    expect(parseAgentStatus(out('manager=supervisor', 'supervisor=40', 'telegraf=-1'))).not.toHaveProperty('telegrafPid');
  });
});

describe('parseRestart', () => {
  it('reads the pid that stayed up, or the refusal', () => {
    expect(parseRestart('method=supervisor SIGHUP\nsettled=91\nrestart-agent-ok\n')).toEqual({ method: 'supervisor SIGHUP', settledPid: 91 });
    expect(parseRestart("method=systemctl restart\nrestart_error=Job for telegraf.service failed.\nsettled=no\nrestart-agent-ok\n")).toEqual({
      method: 'systemctl restart', error: 'Job for telegraf.service failed.',
    });
    expect(parseRestart('method=start-stop-daemon --start\n')).toBeUndefined();
  });
});

// The status script for real, with the role's paths moved into a temp dir: a "telegraf" and a supervisor process
// (copies of sleep, so the kernel names them as it names the real ones) and a log with errors in it.
describe('the status script on this machine', () => {
  let dir: string;
  let paths: AgentLayout;
  const procs: ChildProcess[] = [];
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ao-check-agent-'));
    mkdirSync(path.join(dir, 'lib'));
    paths = {
      ...AGENT_LAYOUT,
      unitFile: path.join(dir, 'telegraf.service'),
      supervisorPath: path.join(dir, 'lib/telegraf-supervisor'),
      supervisorPidFile: path.join(dir, 'supervisor.pid'),
      supervisorLog: path.join(dir, 'supervisor.log'),
      pidFile: path.join(dir, 'telegraf.pid'),
      binaries: [path.join(dir, 'telegraf')],
    };
  });
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const run = () => parseAgentStatus(spawnSync('sh', ['-s'], { input: statusScript(paths) }).stdout.toString());
  const start = (name: string) => {
    const bin = path.join(dir, name);
    copyFileSync('/bin/sleep', bin);
    const p = spawn(bin, ['60'], { stdio: 'ignore' });
    procs.push(p);
    return p.pid!;
  };

  it('finds nothing, then a binary without a manager', () => {
    expect(run()).toEqual({ manager: 'none', running: false, state: 'not installed' });
    copyFileSync('/bin/sleep', paths.binaries[0]);
    expect(run()?.state).toMatch(/^not installed \(no unit or supervisor of ours; a telegraf binary is at /);
  });

  it("tells a supervised Telegraf from stale pid files, and takes Telegraf's newest error line from the log", () => {
    writeFileSync(paths.supervisorPath, '#!/bin/sh\n');
    // Stale: the pids name processes that are not the supervisor and Telegraf (this test runner).
    writeFileSync(paths.supervisorPidFile, `${process.pid}\n`);
    writeFileSync(paths.pidFile, `${process.pid}\n`);
    writeFileSync(paths.supervisorLog, [
      '2025-06-01T10:00:00Z I! Starting Telegraf 1.39.3',
      '2025-06-01T10:00:10Z E! [outputs.influxdb_v2] When writing to [http://127.0.0.1:18086/api/v2/write]: connection refused',
      '2025-06-01T10:00:11Z supervisor[40]: telegraf exited with status 1; restarting in 1s',
      '2025-06-01T10:00:12Z W! [agent] a warning is not an error',
      '',
    ].join('\n'));
    // Telegraf's own words win over the supervisor's newer "exited" line: they say why.
    expect(run()).toEqual({
      manager: 'supervisor',
      running: false,
      state: 'supervisor not running',
      error: '2025-06-01T10:00:10Z E! [outputs.influxdb_v2] When writing to [http://127.0.0.1:18086/api/v2/write]: connection refused',
    });
    const sp = start('telegraf-supervisor');
    const tg = start('telegraf');
    writeFileSync(paths.supervisorPidFile, `${sp}\n`);
    writeFileSync(paths.pidFile, `${tg}\n`);
    expect(run()).toMatchObject({ manager: 'supervisor', running: true, state: `supervised pid ${tg} (supervisor pid ${sp})`, telegrafPid: tg });
  });

  it("takes the supervisor's words when Telegraf said nothing (killed), and nothing from a clean log", () => {
    writeFileSync(paths.supervisorPath, '#!/bin/sh\n');
    writeFileSync(paths.supervisorLog, '2025-06-01T10:00:00Z I! Starting Telegraf 1.39.3\n');
    expect(run()).not.toHaveProperty('error');
    writeFileSync(paths.supervisorLog, [
      '2025-06-01T10:00:00Z supervisor[40]: started telegraf (pid 41)',
      '2025-06-01T10:00:09Z supervisor[40]: telegraf exited with status 137; restarting in 1s',
      '2025-06-01T10:00:10Z supervisor[40]: started telegraf (pid 52)',
      '',
    ].join('\n'));
    expect(run()?.error).toBe('2025-06-01T10:00:09Z supervisor[40]: telegraf exited with status 137; restarting in 1s');
  });
});

// The systemd branch with stand-ins for systemctl and journalctl on the scripts' PATH (this machine runs no systemd).
describe('the systemd branch on this machine', () => {
  let dir: string;
  let layout: AgentLayout;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ao-check-agent-sd-'));
    mkdirSync(path.join(dir, 'bin'));
    mkdirSync(path.join(dir, 'systemd'));
    layout = { ...AGENT_LAYOUT, unitFile: path.join(dir, 'telegraf.service'), pidFile: path.join(dir, 'telegraf.pid'), systemdRunDir: path.join(dir, 'systemd'), path: `${dir}/bin:${AGENT_LAYOUT.path}` };
    writeFileSync(layout.unitFile, '[Service]\n');
    copyFileSync('/bin/sleep', path.join(dir, 'telegraf'));
    writeFileSync(path.join(dir, 'props'), 'LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\n');
    writeFileSync(path.join(dir, 'journal'), [
      '2025-06-01T10:00:00+0000 h1 telegraf[77]: 2025-06-01T10:00:00Z E! [telegraf] Error running agent: input plugins recorded 1 errors',
      '2025-06-01T10:00:00+0000 h1 systemd[1]: telegraf.service: Main process exited, code=exited, status=1/FAILURE',
      "2025-06-01T10:00:00+0000 h1 systemd[1]: telegraf.service: Failed with result 'exit-code'.",
      '',
    ].join('\n'));
    const F = shellQuote(dir);
    writeFileSync(path.join(dir, 'bin/systemctl'), `#!/bin/sh
F=${F}
echo "$*" >> "$F/calls"
case "$1" in
  show) if [ "$3" = NeedDaemonReload ]; then echo no; exit 0; fi; cat "$F/props"; echo 'Not a property'; ;;
  restart)
    "$F/telegraf" 60 </dev/null >/dev/null 2>&1 &
    echo $! > "$F/telegraf.pid"
    printf 'LoadState=loaded\\nActiveState=active\\nSubState=running\\nResult=success\\n' > "$F/props" ;;
esac
`, { mode: 0o755 });
    writeFileSync(path.join(dir, 'bin/journalctl'), `#!/bin/sh\necho "journalctl $*" >> ${F}/calls\ncat ${F}/journal\n`, { mode: 0o755 });
  });
  afterEach(() => {
    spawnSync('sh', ['-c', `kill -KILL "$(cat ${shellQuote(layout.pidFile)})" 2>/dev/null`]);
    rmSync(dir, { recursive: true, force: true });
  });
  const sh = (script: string) => spawnSync('sh', ['-s'], { input: script }).stdout.toString();

  it('reads the unit and the journal, restarts with systemctl, and sees the new process stay up', () => {
    expect(parseAgentStatus(sh(statusScript(layout)))).toEqual({
      manager: 'systemd',
      running: false,
      state: 'failed (failed), result exit-code',
      error: '2025-06-01T10:00:00+0000 h1 telegraf[77]: 2025-06-01T10:00:00Z E! [telegraf] Error running agent: input plugins recorded 1 errors',
    });
    const restarted = parseRestart(sh(restartScript('systemd', { layout, waitS: 3, settleS: 1 })))!;
    expect(restarted.method).toBe('systemctl restart');
    expect(restarted.settledPid).toBe(Number(readFileSync(layout.pidFile, 'utf8')));
    expect(parseAgentStatus(sh(statusScript(layout)))).toMatchObject({ manager: 'systemd', running: true, state: 'active (running)', telegrafPid: restarted.settledPid });
    const calls = readFileSync(path.join(dir, 'calls'), 'utf8');
    expect(calls).toContain('show -p LoadState -p ActiveState -p SubState -p Result telegraf.service');
    expect(calls).toContain('journalctl -u telegraf.service -n 2000 --no-pager -o short-iso');
    expect(calls).toContain('restart telegraf.service');
    expect(calls).not.toContain('daemon-reload');
  });

  it('without a running systemd the unit file alone does not make it the manager', () => {
    rmSync(layout.systemdRunDir, { recursive: true });
    expect(parseAgentStatus(sh(statusScript(layout)))?.manager).toBe('none');
  });
});
