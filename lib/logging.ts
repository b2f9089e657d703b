/**
 * Structured one-line JSON logs. Fields whose names look secret are replaced before printing;
 * callers still never pass secrets (this is a second line of defence, not the first).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const SECRET_FIELD = /pass(word|phrase)?|secret|token|private.?key|authorization/i;
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = SECRET_FIELD.test(k) ? '[redacted]' : v;
  return out;
}

export function createLogger(component: string, base: Record<string, unknown> = {}): Logger {
  const min = ORDER[(process.env.AO_LOG_LEVEL as LogLevel) ?? 'info'] ?? ORDER.info;
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    // Fields never overwrite the envelope (a field named `level` once did).
    const line = JSON.stringify({ ...redact({ ...base, ...fields }), ts: new Date().toISOString(), level, component, msg });
    (level === 'error' || level === 'warn' ? process.stderr : process.stdout).write(line + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger(component, { ...base, ...f }),
  };
}
