import { isIP } from 'node:net';
import type { ActivityDeps } from '../deps';
import type { HostFacts, ProbeResult, SshTarget } from '../../workflows/contracts';
import { dialSsh } from './dialer';
import { tail, unsupportedOs } from './errors';

/**
 * POSIX sh, sent on stdin (the login shell may be anything, so `sh -s` runs it). Every fact is one
 * `key=value` line; missing tools just leave a fact empty so an unusual host still yields a report.
 */
export const FACTS_SCRIPT = `
k() { printf '%s=%s\\n' "$1" "$2"; }
k kernel "$(uname -s 2>/dev/null)"
k hostname "$(uname -n 2>/dev/null)"
k arch "$(uname -m 2>/dev/null)"
if [ -r /etc/os-release ]; then
  k os "$(sed -n 's/^ID=//p' /etc/os-release | head -n1 | tr -d "\\"'")"
  k os_version "$(sed -n 's/^VERSION_ID=//p' /etc/os-release | head -n1 | tr -d "\\"'")"
fi
if [ -d /run/systemd/system ]; then k init systemd; fi
k pid1 "$(cat /proc/1/comm 2>/dev/null)"
if command -v python3 >/dev/null 2>&1; then
  k python3 "$(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null)"
fi
k cpus "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"
k mem_kib "$(sed -n 's/^MemTotal:[[:space:]]*\\([0-9]*\\).*/\\1/p' /proc/meminfo 2>/dev/null)"
k root_kib "$(df -Pk / 2>/dev/null | awk 'NR==2 {print $2}')"
k peer "\${SSH_CONNECTION%% *}"
`;

/** PID 1 names of real init systems; anything else (a container's sshd, a shell) means nothing supervises services. */
const INIT_NAMES = new Set(['init', 'systemd', 'runit', 'runsvdir', 's6-svscan', 'openrc-init', 'upstart', 'busybox']);

export function parseFacts(stdout: string): { facts: HostFacts; kernel: string; peerAddress?: string } {
  const kv = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const num = (k: string) => {
    const n = Number(kv.get(k));
    return Number.isFinite(n) ? n : 0;
  };
  const pid1 = kv.get('pid1') ?? '';
  const initSystem: HostFacts['initSystem'] =
    kv.get('init') === 'systemd' ? 'systemd' : INIT_NAMES.has(pid1) ? 'other' : 'none';
  // Whatever the host says is data: only a plain IP address is taken.
  const peer = kv.get('peer') ?? '';
  return {
    kernel: kv.get('kernel') ?? '',
    ...(isIP(peer) ? { peerAddress: peer } : {}),
    facts: {
      hostname: kv.get('hostname') ?? '',
      os: kv.get('os') ?? '',
      osVersion: kv.get('os_version') ?? '',
      arch: kv.get('arch') ?? '',
      initSystem,
      python3: kv.get('python3') || null,
      cpus: num('cpus'),
      memoryMiB: Math.round(num('mem_kib') / 1024),
      diskRootGiB: Math.round((num('root_kib') / (1024 * 1024)) * 10) / 10,
    },
  };
}

/** Probe: log in with the bootstrap credential, capture or check the host key(s), collect facts. */
export function probeHost(deps: ActivityDeps) {
  return async function probeHost(input: { target: SshTarget }): Promise<ProbeResult> {
    const { target } = input;
    const session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
    try {
      const res = await session.exec('sh -s', { stdin: FACTS_SCRIPT, timeoutMs: 60_000, maxOutputBytes: 64 * 1024 });
      if (res.code !== 0) {
        // No POSIX sh (or a restricted shell): nothing we can manage with Ansible either.
        throw unsupportedOs(target, `collecting facts failed (exit ${res.code}): ${tail(res.stderr)}`, null);
      }
      const { facts, kernel, peerAddress } = parseFacts(res.stdout);
      const e = { address: target.address, port: target.port };
      if (kernel !== 'Linux') throw unsupportedOs(e, `kernel is "${kernel || 'unknown'}", only Linux is supported`, facts);
      if (!facts.python3) throw unsupportedOs(e, 'python3 is not installed (Ansible needs it)', facts);
      deps.log.info('probed host', { address: target.address, hostKeySha256: session.hostKeySha256, os: facts.os, arch: facts.arch });
      return {
        hostKeySha256: session.hostKeySha256,
        ...(session.viaHostKeySha256 ? { viaHostKeySha256: session.viaHostKeySha256 } : {}),
        facts,
        ...(peerAddress ? { peerAddress } : {}),
      };
    } finally {
      await session.close();
    }
  };
}
