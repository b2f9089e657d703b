import os from 'node:os';

/** For the smoke workflow: which worker process answered. */
export async function workerInfo(): Promise<{ pid: number; hostname: string }> {
  return { pid: process.pid, hostname: os.hostname() };
}
