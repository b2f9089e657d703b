import type { ActivityDeps } from '../deps';
import { installAgent, uninstallAgent } from './install-agent';
import { INSTALL_BATCH_DEFAULTS, InstallBatcher } from './install-batcher';
import { runPlaybook } from './run-playbook';

export type { InstallAgentInput, UninstallAgentInput, AgentUninstallSummary } from './install-agent';
export { deployDir, runPlaybook } from './run-playbook';
export { InstallBatcher, INSTALL_BATCH_DEFAULTS } from './install-batcher';
export { sweepStalePlaybookRuns } from './playbook-runs';
export type { SweptRun } from './playbook-runs';
export type { PlaybookHost, PlaybookRun, RunPlaybookOptions } from './run-playbook';
export { parseRecap } from './recap';
export type { PlaybookRecap, HostRecap, TaskFailure } from './recap';

/** The Ansible activities, registered by name on the worker. */
export function createAnsibleActivities(deps: ActivityDeps) {
  // One batcher per worker: installs of this worker's activities that start together share a run.
  const batcher = new InstallBatcher(deps.installBatch ?? INSTALL_BATCH_DEFAULTS, runPlaybook, deps.log);
  return {
    installAgent: installAgent(deps, batcher),
    uninstallAgent: uninstallAgent(deps),
  };
}
