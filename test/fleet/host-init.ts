/**
 * What runs inside a new host. `ip netns exec <ns> unshare --mount --uts --pid --fork --propagation private sh -c SETUP`
 * makes SETUP the PID 1 of a fresh pid namespace with a private mount namespace, so every mount below disappears
 * when that PID 1 dies. SETUP mounts the overlay root and the pseudo file systems, then execs INIT (python3 from the
 * base image, chrooted) which stays PID 1: it sets the hostname, creates fresh host keys and the bootstrap user
 * (password read from stdin, fed to chpasswd on stdin), starts sshd, reaps orphans (no systemd on these hosts, and
 * processes started with nohup/setsid get reparented to it), and reports readiness once sshd accepts connections.
 * Parameters come through the environment (none is secret).
 */

export const SETUP_SH = String.raw`
set -eu
# Our pid as the root pid namespace sees it (the /proc mounted here still belongs to it): the harness kills this
# process to take the whole host down.
read -r self_stat < /proc/self/stat
set -- $self_stat
echo "PID $1"
M="$AO_MERGED"
mount -t overlay overlay -o "lowerdir=$AO_LOWER,upperdir=$AO_UPPER,workdir=$AO_WORK" "$M"
mount -t proc -o nosuid,nodev,noexec proc "$M/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$M/sys"
mount -t tmpfs -o nosuid,mode=0755,size=64k tmpfs "$M/dev"
for d in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
  set -- $d; mknod -m 0666 "$M/dev/$1" c "$2" "$3"
done
mkdir -m 0755 "$M/dev/pts"; mkdir -m 1777 "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$M/dev/pts"
ln -s pts/ptmx "$M/dev/ptmx"; ln -s /proc/self/fd "$M/dev/fd"
ln -s /proc/self/fd/0 "$M/dev/stdin"; ln -s /proc/self/fd/1 "$M/dev/stdout"; ln -s /proc/self/fd/2 "$M/dev/stderr"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$M/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs "$M/run"
mkdir -m 0755 "$M/run/sshd" "$M/run/lock"
exec chroot "$M" /usr/bin/python3 -I -S -c "$AO_INIT_PY"
`;

export const INIT_PY = String.raw`
import glob, os, signal, socket, subprocess, sys, time
env = dict(os.environ)
port = int(env['AO_SSH_PORT'])
user = env['AO_USER']
socket.sethostname(env['AO_HOSTNAME'])
os.environ.clear()
os.environ.update(PATH='/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG='C.UTF-8', HOME='/root')
os.chdir('/')

def log(msg):
    os.write(2, ('[fleet-init] %s\n' % msg).encode())

def run(args, stdin=None):
    subprocess.run(args, input=stdin, check=True, stdout=subprocess.DEVNULL)

def stop(signum, frame):
    try:
        os.kill(-1, signal.SIGKILL)
    finally:
        os._exit(0)

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

credential = sys.stdin.buffer.readline()
devnull = os.open('/dev/null', os.O_RDWR)
os.dup2(devnull, 0)

for f in glob.glob('/etc/ssh/ssh_host_*'):
    os.unlink(f)
for kind in ('ed25519', 'ecdsa'):
    run(['ssh-keygen', '-q', '-t', kind, '-N', '', '-C', 'root@' + env['AO_HOSTNAME'], '-f', '/etc/ssh/ssh_host_%s_key' % kind])
run(['useradd', '--create-home', '--shell', '/bin/bash', '--groups', 'sudo', user])
run(['chpasswd'], stdin=credential)
credential = None
log('user and host keys ready')

sshd = subprocess.Popen(['/usr/sbin/sshd', '-D', '-e'])
deadline = time.monotonic() + 15
while True:
    s = socket.socket()
    try:
        s.connect(('127.0.0.1', port))
        break
    except OSError:
        if sshd.poll() is not None:
            log('sshd exited with %s before listening' % sshd.returncode)
            sys.exit(1)
        if time.monotonic() > deadline:
            log('sshd did not listen on port %d' % port)
            sys.exit(1)
        time.sleep(0.01)
    finally:
        s.close()
os.write(1, b'READY\n')
os.dup2(devnull, 1)
log('sshd listening on port %d' % port)

# PID 1 duty: reap everything; leave when sshd (the host's reason to exist) is gone.
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        os._exit(0)
    except InterruptedError:
        continue
    if pid == sshd.pid:
        log('sshd exited (status %d)' % status)
        os._exit(1)
`;

export interface SshdConfigOptions {
  port: number;
  gatewayPorts: boolean;
  clientAliveIntervalSec?: number;
  clientAliveCountMax?: number;
}

/** Drop-in read before the Debian defaults (sshd keeps the first value it sees). */
export function sshdConfig(o: SshdConfigOptions): string {
  const lines = [
    '# written by the agent-onboarding test fleet',
    `Port ${o.port}`,
    'ListenAddress 0.0.0.0',
    'PasswordAuthentication yes',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin no',
    'AllowTcpForwarding yes',
    `GatewayPorts ${o.gatewayPorts ? 'clientspecified' : 'no'}`,
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'HostKey /etc/ssh/ssh_host_ecdsa_key',
    'UseDNS no',
    // Tests open many connections at once; the default 10:30:100 would randomly refuse some.
    'MaxStartups 200:30:400',
    'MaxSessions 50',
  ];
  if (o.clientAliveIntervalSec !== undefined) lines.push(`ClientAliveInterval ${o.clientAliveIntervalSec}`);
  if (o.clientAliveCountMax !== undefined) lines.push(`ClientAliveCountMax ${o.clientAliveCountMax}`);
  return lines.join('\n') + '\n';
}

export function etcHosts(hostname: string, address: string): string {
  return `127.0.0.1\tlocalhost\n127.0.1.1\t${hostname}\n${address}\t${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
}
