import type { ActivityDeps } from '../deps';
import { installAgent, uninstallAgent } from './install-agent';

export type { InstallAgentInput, UninstallAgentInput, AgentUninstallSummary } from './install-agent';
export { deployDir, runPlaybook } from './run-playbook';
export { sweepStalePlaybookRuns } from './playbook-runs';
export type { SweptRun } from './playbook-runs';
export type { PlaybookHost, PlaybookRun, RunPlaybookOptions } from './run-playbook';
export { parseRecap } from './recap';
export type { PlaybookRecap, HostRecap, TaskFailure } from './recap';

/** The Ansible activities, registered by name on the worker. */
export function createAnsibleActivities(deps: ActivityDeps) {
  return {
    installAgent: installAgent(deps),
    uninstallAgent: uninstallAgent(deps),
  };
}
