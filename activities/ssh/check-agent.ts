import type { AgentHealth, CheckAgentInput } from '../../workflows/contracts';
import { HOST_ID_PATTERN } from '../../workflows/input-rules';
import type { ActivityDeps } from '../deps';
import { whileHeartbeating } from '../heartbeat';
import { USERNAME_PATTERN } from './cloudroot';
import { dialSsh, type ExecResult, type SshSession } from './dialer';
import { agentCheckFailed, invalidInput, tail, type Endpoint } from './errors';
import { shellQuote } from './shell';

/**
 * Whether Telegraf runs on a host, seen over the service login, and a restart when it does not: the repair ladder's
 * rung between "restart the tunnel" and "run the whole role again". It looks where the Telegraf role
 * (deploy/ansible/roles/telegraf) put things: under systemd its unit; without an init system the role's supervisor
 * script, started detached by start-stop-daemon with a pid file, which runs Telegraf and restarts it when it exits.
 * A restart is what the role does: `systemctl restart`, or SIGHUP to a live supervisor (it starts Telegraf again at
 * once, skipping its backoff) and a `start-stop-daemon --start` of a dead one.
 */

/** Where checkAgent looks on a host. */
export interface AgentLayout {
  unit: string;
  unitFile: string;
  supervisorPath: string;
  supervisorPidFile: string;
  supervisorLog: string;
  /** Telegraf's own pid file (both managers). */
  pidFile: string;
  /** Where Telegraf is when nothing of ours runs it: artifact mode's, repo mode's. */
  binaries: readonly string[];
  /** Exists while systemd is the running init (what sd_booted() checks). */
  systemdRunDir: string;
  /** PATH of the scripts (sudo's secure_path may lack the sbin directories). */
  path: string;
}

/**
 * Where the role puts things (its defaults, and the unit path in tasks/service.yml; check-agent.spec.ts compares)
 * and where a Debian host has the rest.
 */
export const AGENT_LAYOUT: AgentLayout = {
  unit: 'telegraf.service',
  unitFile: '/etc/systemd/system/telegraf.service',
  supervisorPath: '/usr/local/lib/telegraf/telegraf-supervisor',
  supervisorPidFile: '/run/telegraf-supervisor.pid',
  supervisorLog: '/var/log/telegraf/supervisor.log',
  pidFile: '/run/telegraf/telegraf.pid',
  binaries: ['/usr/local/bin/telegraf', '/usr/bin/telegraf'],
  systemdRunDir: '/run/systemd/system',
  path: '/usr/sbin:/usr/bin:/sbin:/bin',
};

/** How long a restart may take to bring up a Telegraf process, then how long that process must stay up. */
export const RESTART_WAIT_S = 30;
export const SETTLE_S = 2;

/** Telegraf's error lines: `2025-01-01T00:00:00Z E! [outputs.influxdb_v2] …`, `… E! loading config file … failed: …`. */
const TELEGRAF_ERROR = String.raw`(^|[[:space:]])E! `;
/** Its manager's words for an exit: the supervisor's "telegraf exited with status N", systemd's. */
const MANAGER_ERROR = String.raw`telegraf exited with status|Main process exited|Failed with result`;

function preamble(p: AgentLayout): string {
  // The kernel keeps 15 characters of a script's name as its process name (the role's uninstall matches it too).
  const supervisorName = p.supervisorPath.slice(p.supervisorPath.lastIndexOf('/') + 1).slice(0, 15);
  return `set -u
PATH=${shellQuote(p.path)}
UNIT=${shellQuote(p.unit)}
UNIT_FILE=${shellQuote(p.unitFile)}
SUP=${shellQuote(p.supervisorPath)}
SUP_PID=${shellQuote(p.supervisorPidFile)}
SUP_NAME=${shellQuote(supervisorName)}
SUP_LOG=${shellQuote(p.supervisorLog)}
TG_PID=${shellQuote(p.pidFile)}
k() { printf '%s=%s\\n' "$1" "$(printf '%s' "$2" | tr '\\n' ' ')"; }
# alive PID NAME: PID is a live process called NAME (a stale pid file names nobody, or someone else).
alive() {
  case "$1" in ''|*[!0-9]*) return 1 ;; esac
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
  # A zombie has exited already (its parent has not reaped it yet).
  ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
`;
}

/**
 * POSIX sh, run as root (`sudo -n sh -s`), read-only. Prints `manager=systemd|supervisor|none`, the unit's
 * properties as `unit.<Name>=<value>` (systemd), `supervisor=<pid>` when the supervisor lives, `telegraf=<pid>` when
 * the process in the role's pid file is Telegraf, `binary=<path>` for a Telegraf that nothing of ours runs,
 * `error=<the newest error line>`, and `check-agent-ok` last.
 */
export function statusScript(p: AgentLayout = AGENT_LAYOUT): string {
  return `${preamble(p)}# The newest line in which Telegraf says why; only when there is none, its manager's words for an exit.
errors() {
  text=$(cat)
  l=$(printf '%s\n' "$text" | grep -E ${shellQuote(TELEGRAF_ERROR)} | tail -n 1)
  [ -n "$l" ] || l=$(printf '%s\n' "$text" | grep -E ${shellQuote(MANAGER_ERROR)} | tail -n 1)
  printf '%s' "$l" | tail -c 2000
}
if [ -d ${shellQuote(p.systemdRunDir)} ] && [ -f "$UNIT_FILE" ] && command -v systemctl >/dev/null 2>&1; then
  k manager systemd
  systemctl show -p LoadState -p ActiveState -p SubState -p Result "$UNIT" 2>/dev/null | sed -n 's/^\\([A-Za-z]*\\)=/unit.\\1=/p'
  k error "$(journalctl -u "$UNIT" -n 2000 --no-pager -o short-iso 2>/dev/null | errors)"
elif [ -f "$SUP" ]; then
  k manager supervisor
  sp=$(cat "$SUP_PID" 2>/dev/null || true)
  if alive "$sp" "$SUP_NAME"; then k supervisor "$sp"; fi
  k error "$(tail -c 1048576 "$SUP_LOG" 2>/dev/null | errors)"
else
  k manager none
  for b in ${p.binaries.map(shellQuote).join(' ')}; do if [ -x "$b" ]; then k binary "$b"; fi; done
fi
tg=$(cat "$TG_PID" 2>/dev/null || true)
if alive "$tg" telegraf; then k telegraf "$tg"; fi
echo check-agent-ok
`;
}

/**
 * POSIX sh, run as root: restarts Telegraf the way the role does for `manager`, waits up to RESTART_WAIT_S for a
 * new Telegraf process and SETTLE_S more to see it stay. Prints `method=…`, `restart_error=…` when the manager
 * refused, `settled=<pid>|no`, and `restart-agent-ok` last.
 */
export function restartScript(
  manager: 'systemd' | 'supervisor',
  { layout: p = AGENT_LAYOUT, waitS = RESTART_WAIT_S, settleS = SETTLE_S }: { layout?: AgentLayout; waitS?: number; settleS?: number } = {},
): string {
  if (!Number.isInteger(waitS) || waitS < 1 || !Number.isInteger(settleS) || settleS < 0) throw new Error('invalid restart timing');
  const restart = manager === 'systemd'
    ? `k method 'systemctl restart'
# As the role's handler does (daemon_reload): a unit file changed on disk is read before the restart.
if [ "$(systemctl show -p NeedDaemonReload --value "$UNIT" 2>/dev/null)" = yes ]; then systemctl daemon-reload || true; fi
if ! out=$(systemctl restart "$UNIT" 2>&1); then k restart_error "$(printf '%s' "$out" | tail -n 3)"; fi
`
    : `sp=$(cat "$SUP_PID" 2>/dev/null || true)
if alive "$sp" "$SUP_NAME"; then
  # The supervisor lives (waiting out its backoff): SIGHUP makes it start Telegraf now.
  k method 'supervisor SIGHUP'
  kill -HUP "$sp"
else
  k method 'start-stop-daemon --start'
  # --name: a stale pid file whose pid now belongs to another process does not count as running.
  if ! out=$(start-stop-daemon --start --background --make-pidfile --pidfile "$SUP_PID" --name "$SUP_NAME" --startas "$SUP" 2>&1); then
    k restart_error "$(printf '%s' "$out" | tail -n 3)"
  fi
fi
`;
  return `${preamble(p)}old=$(cat "$TG_PID" 2>/dev/null || true)
${restart}i=0 new=''
while [ "$i" -lt ${waitS * 5} ]; do
  new=$(cat "$TG_PID" 2>/dev/null || true)
  if [ "$new" != "$old" ] && alive "$new" telegraf; then break; fi
  new=''
  sleep 0.2
  i=$((i + 1))
done
if [ -n "$new" ]; then
  sleep ${settleS}
  if alive "$new" telegraf; then k settled "$new"; else k settled no; fi
else
  k settled no
fi
echo restart-agent-ok
`;
}

export interface AgentStatus {
  manager: AgentHealth['manager'];
  running: boolean;
  state: string;
  /** The Telegraf process in the role's pid file, when it is one. */
  telegrafPid?: number;
  /** Raw, unscrubbed: the caller scrubs and bounds it. */
  error?: string;
}

function keyValues(stdout: string): Map<string, string> {
  const kv = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  return kv;
}

/** Reads the status script's output; undefined when it did not run to its end. */
export function parseAgentStatus(stdout: string): AgentStatus | undefined {
  if (!stdout.split('\n').includes('check-agent-ok')) return undefined;
  const kv = keyValues(stdout);
  const pid = (k: string) => {
    const n = Number(kv.get(k));
    return Number.isInteger(n) && n > 0 ? n : undefined;
  };
  const telegrafPid = pid('telegraf');
  const error = kv.get('error')?.trim() || undefined;
  const common = { ...(telegrafPid ? { telegrafPid } : {}), ...(error ? { error } : {}) };
  const manager = kv.get('manager');
  if (manager === 'systemd') {
    const load = kv.get('unit.LoadState') ?? '';
    const active = kv.get('unit.ActiveState') ?? '';
    const sub = kv.get('unit.SubState') ?? '';
    const result = kv.get('unit.Result') ?? '';
    if (load !== 'loaded') return { manager, running: false, state: `unit ${load || 'unknown to systemd'}`, ...common };
    const state = `${active || 'unknown'} (${sub || 'unknown'})${result && result !== 'success' ? `, result ${result}` : ''}`;
    return { manager, running: active === 'active' && sub === 'running', state, ...common };
  }
  if (manager === 'supervisor') {
    const sp = pid('supervisor');
    if (telegrafPid && sp) return { manager, running: true, state: `supervised pid ${telegrafPid} (supervisor pid ${sp})`, ...common };
    if (telegrafPid) return { manager, running: true, state: `telegraf pid ${telegrafPid} runs without its supervisor`, ...common };
    if (sp) return { manager, running: false, state: `supervisor pid ${sp} runs, telegraf does not (it restarts it after a backoff)`, ...common };
    return { manager, running: false, state: 'supervisor not running', ...common };
  }
  const binary = kv.get('binary');
  const state = binary ? `not installed (no unit or supervisor of ours; a telegraf binary is at ${binary})` : 'not installed';
  return { manager: 'none', running: false, state, ...common };
}

/** Reads the restart script's output: the Telegraf pid that stayed up, and what the manager said if it refused. */
export function parseRestart(stdout: string): { method: string; settledPid?: number; error?: string } | undefined {
  if (!stdout.split('\n').includes('restart-agent-ok')) return undefined;
  const kv = keyValues(stdout);
  const settled = Number(kv.get('settled'));
  const error = kv.get('restart_error')?.trim();
  return {
    method: kv.get('method') ?? '',
    ...(Number.isInteger(settled) && settled > 0 ? { settledPid: settled } : {}),
    ...(error ? { error } : {}),
  };
}

/** Runs a script as root through the service user's passwordless sudo. */
async function asRoot(session: SshSession, e: Endpoint, username: string, script: string, timeoutMs: number): Promise<ExecResult> {
  const res = await session.exec('sudo -n sh -s', { stdin: script, timeoutMs, maxOutputBytes: 256 * 1024 });
  if (res.code === 1 && /^sudo: /m.test(res.stderr)) {
    throw agentCheckFailed(e, `${username} can log in but "sudo -n" refuses it (${tail(res.stderr, [], 160)})`, { nonRetryable: true });
  }
  if (res.code === 127) throw agentCheckFailed(e, `sudo or sh is missing on the host: ${tail(res.stderr, [], 160)}`, { nonRetryable: true });
  return res;
}

/**
 * Logs in as the service user (through its jump host when there is one), reports how Telegraf runs and whether it
 * does, with the newest error line of its log, and starts it again when it is not running (unless `restart` is
 * false). Idempotent: a running Telegraf is only looked at. No agent is `manager: 'none'`, not a failure. SSH
 * failures are the dialer's (HostKeyMismatch, AuthFailed, HostUnreachable).
 */
export interface CheckAgentOptions {
  layout?: AgentLayout;
  /** Seconds a restart may take to bring Telegraf up, and that it must then stay up (tests shorten them). */
  restartWaitS?: number;
  settleS?: number;
}

export function checkAgent(deps: ActivityDeps, opts: CheckAgentOptions = {}) {
  const layout = opts.layout ?? AGENT_LAYOUT;
  const waitS = opts.restartWaitS ?? RESTART_WAIT_S;
  const settleS = opts.settleS ?? SETTLE_S;
  return async function checkAgent(input: CheckAgentInput): Promise<AgentHealth> {
    const { target } = input;
    if (typeof input.hostId !== 'string' || !HOST_ID_PATTERN.test(input.hostId)) throw invalidInput(`hostId must match ${HOST_ID_PATTERN}`);
    const username = target?.credential?.username;
    if (typeof username !== 'string' || !USERNAME_PATTERN.test(username)) throw invalidInput('target.credential.username must be the service user');
    if (!target.hostKeySha256) throw invalidInput(`no pinned host key for ${target.address}: probe the host first`);
    const e: Endpoint = { address: target.address, port: target.port };
    const secrets = [deps.influx.token];
    const log = deps.log.child({ hostId: input.hostId, address: target.address });

    const status = async (session: SshSession): Promise<AgentStatus> => {
      const res = await asRoot(session, e, username, statusScript(layout), 60_000);
      const parsed = res.code === 0 ? parseAgentStatus(res.stdout) : undefined;
      if (!parsed) throw agentCheckFailed(e, `the check script failed (exit ${res.code}): ${tail(res.stderr, secrets)}`);
      return parsed;
    };

    return whileHeartbeating((async () => {
      const session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
      try {
        let seen = await status(session);
        let restarted = false;
        let note = '';
        if (!seen.running && seen.manager !== 'none' && input.restart !== false) {
          const res = await asRoot(session, e, username, restartScript(seen.manager, { layout, waitS, settleS }), (waitS + settleS + 120) * 1000);
          const r = res.code === 0 ? parseRestart(res.stdout) : undefined;
          if (!r) throw agentCheckFailed(e, `the restart script failed (exit ${res.code}): ${tail(res.stderr, secrets)}`);
          restarted = true;
          const before = seen.state;
          seen = await status(session);
          // Up after the restart means the process that stayed up for the settle time is the one running now.
          const stayed = seen.running && r.settledPid !== undefined && seen.telegrafPid === r.settledPid;
          if (!stayed) {
            note = r.error ? `; ${r.method} failed: ${tail(r.error, secrets, 200)}` : `; telegraf did not stay up after ${r.method}`;
            seen = { ...seen, running: false };
          }
          log.info(stayed ? 'telegraf restarted' : 'telegraf restart did not bring it up', { manager: seen.manager, before, after: seen.state, method: r.method });
        }
        const health: AgentHealth = {
          manager: seen.manager,
          running: seen.running,
          state: seen.state + note,
          restarted,
          checkedAtMs: Date.now(),
          ...(seen.error ? { lastError: tail(seen.error, secrets, 400) } : {}),
        };
        if (!restarted) log.info('agent checked', { manager: health.manager, running: health.running, state: health.state });
        return health;
      } finally {
        await session.close();
      }
    })(), { step: 'check-agent', hostId: input.hostId });
  };
}
