import type { IncomingMessage, ServerResponse } from 'node:http';

// The few Express request/response members we use (@types/express is not installed; Node's types suffice).
export type HttpRequest = IncomingMessage & { method: string; body?: unknown; ip?: string; path?: string; params?: Record<string, string>; apiRole?: string };
export type HttpResponse = ServerResponse & {
  status(code: number): HttpResponse;
  json(body: unknown): void;
};
export type NextFunction = (err?: unknown) => void;
export type RequestHandler = (req: HttpRequest, res: HttpResponse, next: NextFunction) => void;
