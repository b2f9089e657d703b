import { USERNAME_PATTERN } from './input-rules';

// Types shared by workflows, activities and the API. Plain data only: everything here crosses
// Temporal payloads. Secrets appear only as SealedSecret.

/** A secret sealed with the 'secret-seal' subkey (see lib/sealed-secret.ts). Opaque everywhere else. */
export interface SealedSecret {
  sealed: string;
}

export type OnboardingPhase =
  | 'probing'
  | 'creating-cloudroot'
  | 'installing-agent'
  | 'starting-tunnel'
  | 'verifying'
  | 'healthy'
  | 'needs-credentials'
  | 'needs-host-key-approval'
  | 'failed';

export const ONBOARDING_PHASES: readonly OnboardingPhase[] = [
  'probing', 'creating-cloudroot', 'installing-agent', 'starting-tunnel', 'verifying', 'healthy',
  'needs-credentials', 'needs-host-key-approval', 'failed',
];

/** How to log in: exactly one of password or privateKey; passphrase only with privateKey. */
export interface SshCredential {
  username: string;
  password?: SealedSecret;
  privateKey?: SealedSecret;
  passphrase?: SealedSecret;
}

/** An SSH server the controller talks to, with its pinned key (`SHA256:<base64>` as OpenSSH prints it). */
export interface SshTarget {
  address: string;
  port: number;
  credential: SshCredential;
  /** Pinned host key fingerprint; when absent the first contact captures it (TOFU). */
  hostKeySha256?: string;
  /** Jump host for the control path (the controller cannot reach `address` itself). */
  via?: SshTarget;
}

export type DataPath =
  | { kind: 'direct'; influxUrl: string } // the host writes to InfluxDB itself, at this URL as it sees it
  | { kind: 'tunnel' } // a remote forward on the host carries its writes
  // A forward on a proxy host of its private network. Without bindAddress the forward binds the proxy's address
  // as the host sees it (the peer address of the control session, captured by the probe).
  | { kind: 'proxy'; proxy: SshTarget; bindAddress?: string };

export interface AgentOptions {
  mode: 'artifact' | 'repo';
  /** Telegraf collection interval, e.g. "10s". */
  interval?: string;
  /** repo mode only: the package version to pin (e.g. "1.39.3-1"); absent = the newest. */
  version?: string;
}

export interface OnboardHostInput {
  hostId: string;
  target: SshTarget;
  dataPath: DataPath;
  agent: AgentOptions;
  labels?: Record<string, string>;
  /** Durations in ms; inputs so tests can shorten them. */
  timing?: { verifyDeadlineMs?: number; probeBudgetMs?: number; tunnelConnectDeadlineMs?: number };
  /**
   * A retry of a failed onboarding whose service login exists: the steps that made it (probe, cloudroot, the
   * forward key) are not run again; the onboarding goes on from the step that failed.
   */
  resume?: OnboardingResume;
}

/** What a retried onboarding starts from (sealed like every secret): the service login and what the first run saw. */
export interface OnboardingResume {
  /** The cloudroot login (key credential, pinned keys, bastion) and the tunnel with its forward key, if made. */
  service: { target: SshTarget; tunnel?: Omit<TunnelSpec, 'target'> };
  /** The failed run's status: its succeeded steps, facts and pins carry over. */
  previous: OnboardingStatus;
}

export interface HostFacts {
  hostname: string;
  os: string;
  osVersion: string;
  arch: string;
  initSystem: 'systemd' | 'none' | 'other';
  python3: string | null;
  cpus: number;
  memoryMiB: number;
  diskRootGiB: number;
}

export interface ProbeResult {
  hostKeySha256: string;
  /** The jump host's key, captured (TOFU) or checked on the way. */
  viaHostKeySha256?: string;
  facts: HostFacts;
  /**
   * The address the host sees the control session come from (first field of its SSH_CONNECTION): through a
   * bastion, the bastion's address on the private network — where a proxy forward must listen.
   */
  peerAddress?: string;
}

export interface CloudrootResult {
  username: string;
  publicKey: string;
  privateKey: SealedSecret;
}

/** A key pair that may only hold one remote forward (authorized_keys: restrict,port-forwarding,permitlisten=…). */
export interface ForwardKeyResult {
  /** The login the key is authorized for (cloudroot on the host, or the bastion login on a proxy). */
  username: string;
  publicKey: string;
  privateKey: SealedSecret;
  /** The permitlisten value: the only address:port the key may listen on. */
  permitListen: string;
}

export interface AgentInstallSummary {
  ok: number;
  changed: number;
  failed: number;
  unreachable: number;
  telegrafVersion: string;
  /** Agent start time as the host saw it, ms since epoch: verification wants points newer than this. */
  agentStartedAtMs: number;
  outputUrl: string;
}

export interface VerifyResult {
  pointsSeen: number;
  lastPointAtMs: number;
}

export type StepName = 'probe' | 'cloudroot' | 'forward-key' | 'install-agent' | 'tunnel' | 'verify';

/** Which SSH server of a target a failure, an approval or new credentials are about. */
export type SshHop = 'target' | 'bastion';

export interface StepRecord {
  step: StepName;
  startedAtMs: number;
  endedAtMs?: number;
  attempts: number;
  status: 'running' | 'succeeded' | 'failed' | 'waiting';
  error?: { type: string; message: string };
}

export interface OnboardingStatus {
  hostId: string;
  address: string;
  phase: OnboardingPhase;
  steps: StepRecord[];
  facts?: HostFacts;
  hostKeySha256?: string;
  /** The bastion's pinned key (control path through a bastion). */
  bastionHostKeySha256?: string;
  /** The key seen when a mismatch stopped us, for approval. */
  offeredHostKeySha256?: string;
  /** Which hop the waiting phase (needs-credentials, needs-host-key-approval) is about. */
  waitingOn?: SshHop;
  cloudrootUser?: string;
  /** Where the host sees the control session come from (the probe's peer address): a proxy forward binds it. */
  peerAddress?: string;
  tunnelId?: string;
  agent?: AgentInstallSummary;
  verified?: VerifyResult;
  lastError?: { type: string; message: string };
}

// ---- tunnels ----

export interface TunnelSpec {
  tunnelId: string;
  /** Where the forward lives (the monitored host, or a proxy host). */
  ssh: SshTarget;
  /** Address and port the forward listens on, on that host. */
  bind: { address: string; port: number };
  /** Where the controller sends what arrives (InfluxDB); `tls` when InfluxDB's URL is https. */
  target: { host: string; port: number; tls?: boolean };
  timing?: {
    keepaliveIntervalMs?: number;
    keepaliveCountMax?: number;
    heartbeatMs?: number;
    maxBackoffMs?: number;
    /**
     * A session that was up at least this long and then drops ends the activity normally, so the keeper starts a
     * fresh one at once instead of retrying with the backoff accumulated by earlier drops in the same lease.
     */
    healthyResetMs?: number;
  };
}

export interface TunnelStats {
  connected: boolean;
  boundPort?: number;
  openConnections: number;
  totalConnections: number;
  bytesIn: number;
  bytesOut: number;
  connectedSinceMs?: number;
  reconnects: number;
  lastError?: string;
}

export interface TunnelStatus {
  tunnelId: string;
  /** refused: the SSH server turned the forward away (changed host key, refused login); it waits for a new spec. */
  state: 'connecting' | 'connected' | 'reconnecting' | 'refused' | 'stopped';
  stats?: TunnelStats;
  attempt?: number;
  lastFailure?: string;
  /** While refused: the named failure (its type, message and the dialer's details: hop, address, port, offered key). */
  refusal?: TunnelRefusal;
}

export interface TunnelRefusal {
  type: string;
  message: string;
  details?: Record<string, unknown>;
}

// ---- named failures (ApplicationFailure types) ----
export const FailureType = {
  AuthFailed: 'AuthFailed',
  HostKeyMismatch: 'HostKeyMismatch',
  HostUnreachable: 'HostUnreachable',
  UnsupportedOS: 'UnsupportedOS',
  CloudrootFailed: 'CloudrootFailed',
  AnsibleFailed: 'AnsibleFailed',
  NoPoints: 'NoPoints',
  StalePoints: 'StalePoints',
  InfluxUnreachable: 'InfluxUnreachable',
  TunnelFailed: 'TunnelFailed',
  InvalidInput: 'InvalidInput',
  /** `checkAgent` could not tell (sudo refused, the check script failed); SSH failures keep their own names. */
  AgentCheckFailed: 'AgentCheckFailed',
  /** A fleet's inventory source could not be read or parsed (retryable only for HTTP 5xx, 429 and timeouts). */
  InventoryUnreadable: 'InventoryUnreadable',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** What `checkAgent` saw of Telegraf on a host over SSH (and whether it started it again). */
export interface AgentHealth {
  /** How Telegraf is run there: a systemd unit, the role's supervisor, or not installed at all. */
  manager: 'systemd' | 'supervisor' | 'none';
  running: boolean;
  /** The manager's own words (systemd ActiveState/SubState, "supervised pid 123", "not installed"). */
  state: string;
  /** The newest error line of Telegraf's log (journal or supervisor log), scrubbed and bounded. */
  lastError?: string;
  /** This check found it stopped and started it. */
  restarted: boolean;
  checkedAtMs: number;
}
export interface CheckAgentInput {
  hostId: string;
  /** The cloudroot login. */
  target: SshTarget;
  /** Start Telegraf when it is not running (default true). */
  restart?: boolean;
}

/** A new cloudroot key, installed beside the old one and proven to log in; the old one still works. */
export interface AddedCloudrootKey {
  username: string;
  privateKey: SealedSecret;
  /** OpenSSH SHA256 fingerprint of the new public key. */
  publicKeySha256: string;
}
export interface AddCloudrootKeyInput {
  hostId: string;
  /** The cloudroot login with its current key. */
  target: SshTarget;
}
export interface RetireCloudrootKeysInput {
  hostId: string;
  /** The cloudroot login with the NEW key (it must work before anything is removed). */
  target: SshTarget;
  /** The key that stays; every other cloudroot login key goes (forward-only keys stay). */
  keepPublicKeySha256: string;
}

/** Memo key under which onboardHost publishes its OnboardingStatus, so `describe` alone can answer readers. */
export const STATUS_MEMO_KEY = 'status';

/** `{ sealed: 'v1.…' | 'v2.…' }` as lib/sealed-secret.ts writes it. Checked where secrets enter a workflow. */
const SEALED_PATTERN = /^v[12]\.[A-Za-z0-9_.-]{1,32}(\.[A-Za-z0-9_-]+){2,3}$/;

export function isSealedSecret(value: unknown): value is SealedSecret {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === 'sealed' && typeof (value as SealedSecret).sealed === 'string' && SEALED_PATTERN.test((value as SealedSecret).sealed);
}

/** Why a credential handed to a workflow is unusable, or null: a user name and exactly one sealed secret. */
export function credentialProblem(c: unknown): string | null {
  if (typeof c !== 'object' || c === null) return 'a credential object is required';
  const cred = c as Record<string, unknown>;
  const allowed = new Set(['username', 'password', 'privateKey', 'passphrase']);
  const unknown = Object.keys(cred).filter((k) => !allowed.has(k));
  if (unknown.length > 0) return `unknown credential field(s): ${unknown.join(', ')}`;
  if (typeof cred.username !== 'string' || !USERNAME_PATTERN.test(cred.username)) return 'a valid username is required';
  if ((cred.password === undefined) === (cred.privateKey === undefined)) return 'exactly one of password or privateKey is required';
  for (const k of ['password', 'privateKey', 'passphrase'] as const) {
    if (cred[k] !== undefined && !isSealedSecret(cred[k])) return `${k} must be sealed (send it through the API, which seals it)`;
  }
  if (cred.passphrase !== undefined && cred.privateKey === undefined) return 'passphrase is only valid with privateKey';
  return null;
}

export const workflowIds = {
  /** The host entity: from the first POST to offboarded. */
  host: (hostId: string) => `host/${hostId}`,
  onboarding: (hostId: string) => `onboard/${hostId}`,
  tunnel: (tunnelId: string) => `tunnel/${tunnelId}`,
  fleet: (fleetId: string) => `fleet/${fleetId}`,
};

// ---- offboarding (results of the saga's idempotent activities) ----

/** `revokeForwardKey`: whether this tunnel's line was in the login's authorized_keys (it is not any more). */
export interface ForwardKeyRevokeResult {
  removed: boolean;
}

/** `removeCloudroot`: the service user, its home (authorized_keys with it) and its sudoers drop-in. */
export interface CloudrootRemovalResult {
  /** This run removed the user. */
  removed: boolean;
  /** The login was already refused when the run began: removed before, or by someone else. */
  alreadyGone: boolean;
  /** Seen from outside after the run: the service user's login is refused ('unverified': could not tell). */
  verified: 'login-refused' | 'unverified';
  /** What was found and what was left, for the offboarding's record. */
  notes: string[];
}

/** `uninstallAgent`: the role's counts; `alreadyGone` when nothing of the agent was left to remove. */
export interface AgentUninstallResult {
  ok: number;
  changed: number;
  /**
   * Nothing was removed: the agent was never installed or already removed, or the service user's login is
   * refused (removed by an earlier offboarding: the agent goes before the user), in which case nothing could run.
   */
  alreadyGone: boolean;
  notes: string[];
}
