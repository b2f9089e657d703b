import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';

const { workerInfo } = proxyActivities<ReturnType<typeof createActivities>>({ startToCloseTimeout: '10 seconds' });

/** Proves the wiring end to end: client → server → workflow worker → activity worker → back. */
export async function smokeTest(): Promise<{ workflow: 'ok'; worker: { pid: number; hostname: string } }> {
  return { workflow: 'ok', worker: await workerInfo() };
}
