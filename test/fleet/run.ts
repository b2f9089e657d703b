import { spawn } from 'node:child_process';
import { FleetCommandError } from './errors';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface RunOptions {
  /** Fed on stdin (secrets travel here, never in argv). */
  input?: string | Buffer;
  timeoutMs?: number;
  /** Resolve with the exit code instead of throwing on non-zero exit. */
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Runs a program without a shell. Errors name the program and its non-secret args, never the input. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const label = [file, ...args].join(' ').slice(0, 300);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined); // EPIPE when the program does not read its input
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new FleetCommandError(label, null, e.message));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const res: RunResult = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (timedOut ? `\n[timed out after ${opts.timeoutMs} ms]` : ''),
        exitCode: code ?? (signal ? 128 : 1),
      };
      if (res.exitCode !== 0 && !opts.allowFailure) reject(new FleetCommandError(label, code, res.stderr));
      else resolve(res);
    });
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs);
    }
    child.stdin.end(opts.input ?? '');
  });
}

/** `ip` with a batch of commands on stdin: one process for many netlink operations. */
export async function ipBatch(lines: string[], netns?: string): Promise<void> {
  if (lines.length === 0) return;
  const args = netns ? ['-n', netns, '-batch', '-'] : ['-batch', '-'];
  await run('ip', args, { input: lines.join('\n') + '\n', timeoutMs: 15_000 });
}
