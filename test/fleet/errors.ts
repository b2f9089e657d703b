/** Base for every failure the fleet harness reports; messages never contain passwords. */
export class FleetError extends Error {
  override name = 'FleetError';
}

/** A host did not come up (sshd never listened, setup failed); `log` is the tail of its init/sshd log. */
export class FleetHostStartError extends FleetError {
  override name = 'FleetHostStartError';
  constructor(
    message: string,
    readonly log: string,
  ) {
    super(log ? `${message}\n--- host log (tail) ---\n${log}` : message);
  }
}

/** A command the harness ran on this machine (ip, nsenter, ...) failed. */
export class FleetCommandError extends FleetError {
  override name = 'FleetCommandError';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim().slice(0, 2000)}`);
  }
}

/** The kernel or toolset lacks a feature (e.g. the netem qdisc) the caller asked for. */
export class FleetUnsupportedError extends FleetError {
  override name = 'FleetUnsupportedError';
}

/** Teardown hit errors; every step was still attempted. */
export class FleetTeardownError extends FleetError {
  override name = 'FleetTeardownError';
  constructor(readonly causes: Error[]) {
    super(`fleet teardown finished with ${causes.length} error(s): ${causes.map((c) => c.message).join('; ')}`);
  }
}
