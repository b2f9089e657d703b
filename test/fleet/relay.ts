import * as net from 'node:net';

/**
 * A TCP relay in the root network namespace: listens on a host's gateway address and forwards to a loopback-only
 * service (InfluxDB), which is how a `reachable-influx` host reaches it without the service leaving 127.0.0.1.
 */
export class TcpRelay {
  private readonly sockets = new Set<net.Socket>();
  private server?: net.Server;

  constructor(
    readonly listenHost: string,
    readonly listenPort: number,
    readonly target: { host: string; port: number },
  ) {}

  async start(): Promise<void> {
    const server = net.createServer((client) => this.relay(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.listenHost, port: this.listenPort, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', () => undefined);
        resolve();
      });
    });
  }

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : this.listenPort;
  }

  private relay(client: net.Socket): void {
    const upstream = net.connect({ host: this.target.host, port: this.target.port });
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => this.sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (!server?.listening) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
