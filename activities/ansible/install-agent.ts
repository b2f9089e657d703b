import { existsSync } from 'node:fs';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Keyring } from '../../lib/keyring';
import { unsealSecret } from '../../lib/sealed-secret';
import {
  FailureType, type AgentInstallSummary, type AgentOptions, type AgentUninstallResult, type SshTarget,
} from '../../workflows/contracts';
import { AGENT_VERSION_PATTERN, HOST_ID_PATTERN, INTERVAL_PATTERN, USERNAME_PATTERN, hasTemplateSyntax, labelsProblem, urlProblem } from '../../workflows/input-rules';
import type { ActivityDeps } from '../deps';
import { dialSsh, openJumpListener, scanHostKey } from '../ssh/dialer';
import { isLoginRefused } from '../ssh/errors';
import { describeFailure, totals, type PlaybookRecap } from './recap';
import { whileHeartbeating } from '../heartbeat';
import { runPlaybook, type PlaybookRun } from './run-playbook';
import type { InstallBatcher } from './install-batcher';

export interface InstallAgentInput {
  hostId: string;
  /** The cloudroot login: key credential, pinned host key (required: OpenSSH gets exactly this key). */
  target: SshTarget;
  agent: AgentOptions;
  /** Where Telegraf writes, as the host sees it (InfluxDB directly, or the tunnel's local end). */
  outputUrl: string;
  labels?: Record<string, string>;
}

export type UninstallAgentInput = Pick<InstallAgentInput, 'hostId' | 'target'> & { agent?: AgentOptions };

/** @deprecated the name before offboarding: `AgentUninstallResult` in workflows/contracts.ts. */
export type AgentUninstallSummary = AgentUninstallResult;

const INVENTORY_NAME = 'target';
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const ADDRESS_FORBIDDEN = /[\s"'`\\$;|&<>(){}\u0000-\u001f\u007f]/;

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidInput, message, nonRetryable: true });
}

function ansibleFailed(message: string, nonRetryable = true): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.AnsibleFailed, message, nonRetryable });
}

/** A heartbeat when running as an activity (tests call the functions directly too). */
function heartbeat(details: Record<string, unknown>): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // not inside an activity
  }
}

function where(t: SshTarget): string {
  return t.via ? `${t.address}:${t.port} via ${t.via.address}:${t.via.port}` : `${t.address}:${t.port}`;
}

/** The cloudroot key, unsealed for the run. OpenSSH cannot be given a passphrase non-interactively. */
function unsealKey(keyring: Keyring, target: SshTarget): string {
  const cred = target.credential;
  if (!cred?.privateKey) throw invalid(`installing the agent needs a key credential for ${cred?.username ?? '?'}@${where(target)}`);
  if (cred.passphrase) throw invalid('the service user key must not be passphrase-protected (OpenSSH runs non-interactively)');
  try {
    return unsealSecret(keyring, cred.privateKey);
  } catch {
    throw invalid('the private key could not be unsealed (unknown key id or corrupted secret)');
  }
}

/**
 * The same rules the API applies (workflows/input-rules.ts), again here: whatever started the workflow, nothing
 * that reaches the inventory, the extra vars or the host's files is template syntax, shell or TOML syntax.
 * (Ansible gets every string `!unsafe` besides.) Messages never quote the rejected value.
 */
function validate(input: UninstallAgentInput & Partial<InstallAgentInput>, installing: boolean): void {
  if (typeof input.hostId !== 'string' || !HOST_ID_PATTERN.test(input.hostId)) throw invalid(`hostId must match ${HOST_ID_PATTERN}`);
  const t = input.target;
  if (!t || typeof t.address !== 'string' || t.address.length === 0 || t.address.length > 253 || ADDRESS_FORBIDDEN.test(t.address) || hasTemplateSyntax(t.address)) {
    throw invalid('target.address must be an IP address or a DNS name');
  }
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw invalid('target.port must be a TCP port');
  if (typeof t.credential?.username !== 'string' || !USERNAME_PATTERN.test(t.credential.username)) {
    throw invalid(`target.credential.username must match ${USERNAME_PATTERN}`);
  }
  if (!t.hostKeySha256) throw invalid(`no pinned host key for ${t.address}: probe the host first`);
  if (!installing) return;
  const urlError = typeof input.outputUrl === 'string' ? urlProblem(input.outputUrl) : 'must be an http(s) URL';
  if (urlError) throw invalid(`outputUrl ${urlError}`);
  try {
    const u = new URL(input.outputUrl!);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    throw invalid(`outputUrl must be an http(s) URL`);
  }
  if (input.agent?.mode !== undefined && input.agent.mode !== 'artifact' && input.agent.mode !== 'repo') {
    throw invalid('agent.mode must be "artifact" or "repo"');
  }
  if (input.agent?.interval !== undefined && (typeof input.agent.interval !== 'string' || !INTERVAL_PATTERN.test(input.agent.interval))) {
    throw invalid(`agent.interval must match ${INTERVAL_PATTERN} (e.g. "10s")`);
  }
  if (input.agent?.version !== undefined) {
    if (typeof input.agent.version !== 'string' || !AGENT_VERSION_PATTERN.test(input.agent.version)) {
      throw invalid(`agent.version must match ${AGENT_VERSION_PATTERN} (a Debian package version, e.g. "1.39.3-1")`);
    }
    // Artifact mode copies the controller's one binary: there is no version to choose.
    if (input.agent.mode !== 'repo') throw invalid('agent.version pins the package in repo mode only (agent.mode "repo")');
  }
  if (input.labels !== undefined) {
    if (typeof input.labels !== 'object' || input.labels === null || Array.isArray(input.labels)) throw invalid('labels must be an object of strings');
    const problem = labelsProblem(input.labels);
    if (problem) throw invalid(`labels ${problem}`);
  }
}

/** `validate` for an install: throws InvalidInput naming the first field that is unusable. */
export function validateInstallInput(input: InstallAgentInput): void {
  validate(input, true);
}

/** Maps a finished run to the named failures; returns the recap when the run succeeded. */
function outcome(run: PlaybookRun, target: SshTarget): PlaybookRecap {
  if (run.cancelled) throw ansibleFailed(`ansible-playbook was cancelled on ${where(target)}`, false);
  if (run.timedOut) throw ansibleFailed(`ansible-playbook timed out on ${where(target)}`, false);
  const recap = run.recap;
  if (!recap) {
    throw ansibleFailed(`ansible-playbook ended without a recap (exit ${run.exitCode}): ${run.stderrTail || 'no output'}`);
  }
  const t = totals(recap);
  const failure = describeFailure(recap, INVENTORY_NAME) ?? run.stderrTail;
  if (t.unreachable > 0) {
    // Retryable: the workflow's policy decides how long an unreachable host is tried again.
    throw ApplicationFailure.create({
      type: FailureType.HostUnreachable,
      message: `Ansible could not reach ${where(target)}: ${failure}`,
      nonRetryable: false,
    });
  }
  if (t.failed > 0 || run.exitCode !== 0) {
    throw ansibleFailed(`ansible-playbook failed on ${where(target)}: ${failure || `exit ${run.exitCode}`}`);
  }
  return recap;
}

/**
 * Runs the playbook against one host as the service user. Direct hosts are reached at their address;
 * private ones through a local forward over their bastion. Either way OpenSSH sees only the pinned key.
 */
async function runOnHost(
  deps: ActivityDeps,
  target: SshTarget,
  extraVars: Record<string, unknown>,
  secrets: string[],
  batch?: { batcher: InstallBatcher; hostVars: Record<string, unknown> },
): Promise<PlaybookRecap> {
  const privateKey = unsealKey(deps.keyring, target);
  // Until ansible-playbook heartbeats itself: the jump and the key scan can take as long as a slow host lets them,
  // and an activity that stops heartbeating is retried elsewhere while this attempt still runs.
  const listener = target.via
    ? await whileHeartbeating(openJumpListener(target, deps.keyring, { log: deps.log }), { step: 'jump-listener' })
    : undefined;
  try {
    // Checks the pin and gives the key in the form known_hosts needs (the probe kept only its fingerprint).
    const hostPublicKey = listener
      ? listener.targetHostPublicKey
      : (await whileHeartbeating(scanHostKey(target, { keyring: deps.keyring, log: deps.log }), { step: 'host-key-scan' })).hostPublicKey;
    const host = {
      name: INVENTORY_NAME,
      address: listener ? listener.host : target.address,
      port: listener ? listener.port : target.port,
      user: target.credential.username,
      privateKey,
      hostPublicKey,
    };
    const run = batch
      ? // Shared with the installs that start close to this one; this activity heartbeats while it waits and runs.
        await whileHeartbeating(
          batch.batcher.submit({ host: { ...host, vars: batch.hostVars }, as: INVENTORY_NAME, extraVars, secrets: [...secrets, privateKey], signal: cancellation() }),
          { step: 'ansible-playbook (batch)' },
        )
      : await runPlaybook({ host, extraVars, secrets: [...secrets, privateKey], log: deps.log });
    deps.log.info('ansible-playbook finished', {
      address: target.address,
      exitCode: run.exitCode,
      durationMs: run.durationMs,
      ...(run.recap ? totals(run.recap) : {}),
    });
    return outcome(run, target);
  } finally {
    await listener?.close();
  }
}

function artifactPath(deps: ActivityDeps, mode: AgentOptions['mode']): string {
  if (mode !== 'artifact') return '';
  const p = deps.telegrafArtifact;
  if (!p || !existsSync(p)) {
    throw ansibleFailed('artifact mode needs a Telegraf binary on the controller (TELEGRAF_PATH); none was found');
  }
  return p;
}

/**
 * The role's variables for an install (deploy/ansible/roles/telegraf/defaults/main.yml), after `validate`. The
 * token is among them: they reach Ansible only through its 0600 extra-vars file.
 */
export function installExtraVars(deps: ActivityDeps, input: InstallAgentInput): Record<string, unknown> {
  const mode = input.agent?.mode ?? 'artifact';
  return {
    telegraf_state: 'present',
    telegraf_host_id: input.hostId,
    telegraf_labels: input.labels ?? {},
    telegraf_install_mode: mode,
    telegraf_artifact_path: artifactPath(deps, mode),
    telegraf_output_url: input.outputUrl,
    telegraf_influx_token: deps.influx.token,
    telegraf_influx_org: deps.influx.org,
    telegraf_influx_bucket: deps.influx.bucket,
    ...(input.agent?.interval ? { telegraf_interval: input.agent.interval } : {}),
    // Empty (the role's default) installs the newest package; a version pins it (`apt install telegraf=<version>`).
    ...(input.agent?.version ? { telegraf_package_version: input.agent.version } : {}),
  };
}

/** The role variables of an install that are this host's own (a batch gives them as host vars, the rest is shared). */
const PER_HOST_VARS = ['telegraf_host_id', 'telegraf_labels', 'telegraf_output_url', 'telegraf_interval', 'telegraf_package_version'];

/** The activity's cancellation signal, when running as one. */
function cancellation(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

export function installAgent(deps: ActivityDeps, batcher?: InstallBatcher) {
  return async function installAgent(input: InstallAgentInput): Promise<AgentInstallSummary> {
    heartbeat({ step: 'validate' });
    validate(input, true);
    const all = installExtraVars(deps, input);
    const shared = Object.fromEntries(Object.entries(all).filter(([k]) => !PER_HOST_VARS.includes(k)));
    const own = Object.fromEntries(Object.entries(all).filter(([k]) => PER_HOST_VARS.includes(k)));
    const recap = batcher
      ? await runOnHost(deps, input.target, shared, [deps.influx.token], { batcher, hostVars: own })
      : await runOnHost(deps, input.target, all, [deps.influx.token]);
    const t = totals(recap);
    const report = recap.custom[INVENTORY_NAME] ?? {};
    const startedAt = Number(report.telegraf_started_at_ms);
    const version = typeof report.telegraf_version === 'string' ? report.telegraf_version : '';
    if (!version || !Number.isFinite(startedAt) || startedAt <= 0) {
      throw ansibleFailed(`the playbook succeeded on ${where(input.target)} but did not report Telegraf's version and start time`);
    }
    return {
      ok: t.ok,
      changed: t.changed,
      failed: t.failed,
      unreachable: t.unreachable,
      telegrafVersion: version,
      agentStartedAtMs: startedAt,
      outputUrl: input.outputUrl,
    };
  };
}

/**
 * Whether Ansible's "unreachable" was the service user's login being refused. Asked with ssh2 only after a failed
 * run: OpenSSH's message says little, and a refusal needs no retry.
 */
async function serviceLoginRefused(deps: ActivityDeps, target: SshTarget): Promise<boolean> {
  try {
    const s = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
    await s.close();
    return false;
  } catch (err) {
    return isLoginRefused(err);
  }
}

/**
 * Stops Telegraf and removes everything the role installed (offboarding, or undoing a cancelled onboarding).
 * Idempotent: a host without the agent changes nothing and says `alreadyGone`. So does a host whose service user
 * login is refused — offboarding removes the agent before the user, so that user is gone because an earlier
 * offboarding finished; nothing can run there any more either way.
 */
export function uninstallAgent(deps: ActivityDeps) {
  return async function uninstallAgent(input: UninstallAgentInput): Promise<AgentUninstallResult> {
    heartbeat({ step: 'validate' });
    validate(input, false);
    let recap: PlaybookRecap;
    try {
      recap = await runOnHost(deps, input.target, {
        telegraf_state: 'absent',
        telegraf_host_id: input.hostId,
        telegraf_install_mode: input.agent?.mode ?? 'artifact',
      }, []);
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === FailureType.HostUnreachable)) throw err;
      if (!(await whileHeartbeating(serviceLoginRefused(deps, input.target), { step: 'login-check' }))) throw err;
      const user = input.target.credential.username;
      deps.log.info('agent not uninstalled: the service user login is refused', { hostId: input.hostId, address: input.target.address, user });
      return { ok: 0, changed: 0, alreadyGone: true, notes: [`the ${user} login is refused: the host was offboarded before (or ${user} was removed by hand)`] };
    }
    const t = totals(recap);
    const alreadyGone = t.changed === 0;
    return { ok: t.ok, changed: t.changed, alreadyGone, notes: alreadyGone ? ['nothing of the agent was left on the host'] : [] };
  };
}
