export { createFleet } from './fleet';
export type { AddHostOptions, ExecOptions, Fleet, FleetHost, FleetOptions, Topology } from './fleet';
export { cleanupStale } from './cleanup';
export type { CleanupOptions } from './cleanup';
export { cacheDir, defaultBaseDir, fleetUnsupportedReason } from './environment';
export { sha256Fingerprint } from './fingerprint';
export { FleetCommandError, FleetError, FleetHostStartError, FleetTeardownError, FleetUnsupportedError } from './errors';
export type { RunResult } from './run';
