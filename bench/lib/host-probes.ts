import type { Fleet, FleetHost } from '../../test/fleet';

/**
 * Python programs run INSIDE a fleet host (fleet.exec, script on stdin) — the host's own view of its
 * loopback forward, like Telegraf's. Both print one JSON line.
 */

/** Polls `GET /ping` on 127.0.0.1:PORT every 10 ms until InfluxDB answers 204; prints the epoch ms of success. */
export const PING_UNTIL_UP_PY = String.raw`
import json, socket, sys, time
port = int(sys.argv[1]); deadline = time.time() + float(sys.argv[2])
while True:
    try:
        s = socket.create_connection(('127.0.0.1', port), timeout=2)
        s.sendall(b'GET /ping HTTP/1.0\r\nHost: bench\r\n\r\n')
        d = s.recv(64); s.close()
        if d.startswith(b'HTTP/1.') and b' 204' in d[:16]:
            print(json.dumps({'upAtMs': int(time.time() * 1000)})); break
    except OSError:
        pass
    if time.time() > deadline:
        print(json.dumps({'upAtMs': None})); break
    time.sleep(0.01)
`;

/** N keep-alive POSTs of a 1 KiB line-protocol body to /write; prints the per-request latencies in ms. */
export const WRITE_LATENCY_PY = String.raw`
import http.client, json, socket, sys, time
host, port, n, warm, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
head = 'bench_latency,host_id=bench-latency f="'
body = (head + 'x' * (1024 - len(head) - 2) + '"\n').encode()
assert len(body) == 1024
c = http.client.HTTPConnection(host, port, timeout=10)
c.connect()
# Like Telegraf (Go sets TCP_NODELAY by default): no Nagle/delayed-ACK stalls in the figures.
c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
out = []
for i in range(n + warm):
    t = time.perf_counter()
    c.request('POST', '/write?db=' + db, body=body, headers={'Content-Type': 'text/plain'})
    r = c.getresponse(); r.read()
    if r.status != 204:
        raise SystemExit('write failed: %d' % r.status)
    if i >= warm:
        out.append((time.perf_counter() - t) * 1000)
print(json.dumps({'ms': out}))
`;

/** Epoch ms at which `GET /ping` through the host's loopback PORT first answered 204 (PING_UNTIL_UP_PY); throws past the budget. */
export async function pingUntilUp(fleet: Fleet, h: FleetHost, port: number, budgetS: number): Promise<number> {
  const r = await fleet.exec(h, `python3 - ${port} ${budgetS}`, { input: PING_UNTIL_UP_PY, timeoutMs: (budgetS + 10) * 1000 });
  const up = (JSON.parse(r.stdout.trim() || '{}') as { upAtMs?: number | null }).upAtMs;
  if (!up) throw new Error(`forward on ${h.name}:${port} not up within ${budgetS} s (${r.stderr.trim()})`);
  return up;
}
