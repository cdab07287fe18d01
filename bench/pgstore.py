#!/usr/bin/env python3
"""bench/pgstore — herald on a PostgreSQL store, each figure side by side
with its reference in the same run (ratios: these machines are shared and
noisy):

  1. several machines against a slow relay: a relay answering each final
     dot after 200 ms (a slow content filter: tests/lib/faultsmtp.py, every
     end of data "slow"; smtp-sink's delays are whole seconds), one heraldd
     with 8 connections against three heraldd with 8 each on one
     PostgreSQL store. The relay is the limit: three nodes should reach
     about 3x (the issue asks >= 2.7x).
  2. one heraldd on PostgreSQL against one on SQLite, to plain smtp-sink
     dumping into memory (/dev/shm: the disk is not the limit), messages
     per second and heraldd's CPU per message; the PostgreSQL server's
     own CPU is printed, since on two cores it competes with heraldd.
  3. herald queue of a large list into PostgreSQL and into SQLite:
     seconds and peak memory of herald.

  bench/pgstore.py BUILD_DIR [COUNT] [QUEUE_COUNT]

Needs root (PostgreSQL runs as the user postgres, smtp-sink as nobody).
"""
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import faultsmtp  # noqa: E402
import mailservers as ms  # noqa: E402
import pgserver  # noqa: E402
from deliver import hwm_kib, journalists  # noqa: E402

CONNS = 8


class Store:
    """A store for one run: a SQLite file, or a new database on srv."""

    def __init__(self, tmp, name, srv=None):
        self.env = dict(os.environ)
        if srv is None:
            self.path = os.path.join(tmp, f"{name}.db")
            return
        srv.create_db(name)
        self.path = srv.url(name)
        passfile = os.path.join(tmp, "pgpass")
        if not os.path.exists(passfile):
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, f"127.0.0.1:{srv.port}:*:herald:{srv.password}\n"
                     .encode())
            os.close(fd)
        self.env["PGPASSFILE"] = passfile

    def config(self, tmp, name, relay, extra=""):
        cfg = os.path.join(tmp, f"{name}.yaml")
        with open(cfg, "w") as f:
            f.write(f"store: {self.path}\n"
                    f"control: {name}.sock\n"
                    f"relay: {{url: \"{relay}\", max_connections: {CONNS},"
                    f" max_per_connection: 1000, reply_timeout: 60s,"
                    f" dot_timeout: 60s}}\n"
                    + (extra or "daemon: {batch: 64, lease: 120s}\n"))
        return cfg


def queue(herald, store, cfg, lst):
    t0 = time.monotonic()
    p = subprocess.Popen([herald, "queue", "templates/report-launch",
                          "--to", lst, "--config", cfg], cwd=ROOT,
                         env=store.env, stdout=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        peak = max(peak, hwm_kib(p.pid))
        time.sleep(0.02)
    if p.returncode != 0:
        sys.exit(f"herald queue exited {p.returncode}")
    return time.monotonic() - t0, peak / 1024


def drain(heraldd, store, cfgs):
    """Start one heraldd --drain per config at once; seconds until the
    last is done, and the CPU seconds (user + system) they used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    procs = [subprocess.Popen([heraldd, "--config", c, "--drain"], cwd=ROOT,
                              env=store.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for c in cfgs]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"heraldd --drain exited {p.returncode}")
    took = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + \
        (after.ru_stime - before.ru_stime)
    return took, cpu


def proc_cpu(pid):
    """CPU seconds of pid and its children that ended (from /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return sum(int(x) for x in v[11:15]) / ticks
    except OSError:
        return 0.0


def server_cpu(srv):
    """CPU seconds of every postgres process of srv so far."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"postgres" in cmd and (srv.directory.encode() in cmd or
                                   _child_of(pid, srv.proc.pid)):
            total += proc_cpu(int(pid))
    return total


def _child_of(pid, parent):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == parent
    except OSError:
        return False


class DotAfter(faultsmtp.FaultPlan):
    """Every end of data answered after the same delay, nothing else
    slowed or refused."""

    def __init__(self, delay):
        super().__init__(slow=(delay, delay))

    def decide(self, key, attempt, command):
        return "slow" if command == "DOT" else "ok"


def slow_relay(tmp, herald, heraldd, srv, count):
    delay = 0.2
    print(f"== slow relay (each final dot answered after {delay * 1000:.0f}"
          f" ms), {count} messages, {CONNS} connections per node")
    lst = os.path.join(tmp, "slow.yaml")
    journalists(lst, count)
    rates = {}
    with faultsmtp.FaultSmtp(DotAfter(delay)) as relay_srv:
        relay = f"smtp://127.0.0.1:{relay_srv.port}"
        for nodes in (1, 3):
            st = Store(tmp, f"slow{nodes}", srv)
            # claims ahead of the connections stay with their node: keep
            # them near the connection count so the nodes share the work
            cfgs = [st.config(tmp, f"slow{nodes}-{i}", relay,
                              f"daemon: {{batch: {CONNS * 2}, lease: 120s}}\n")
                    for i in range(nodes)]
            queue(herald, st, cfgs[0], lst)
            took, cpu = drain(heraldd, st, cfgs)
            rates[nodes] = count / took
            print(f"  {nodes} node{'s' if nodes > 1 else ' '}: "
                  f"{rates[nodes]:7.1f} msg/s ({took:.1f} s)")
    print(f"  three nodes / one node: {rates[3] / rates[1]:.2f}x "
          f"(limit: the relay, {CONNS} sessions of {1 / delay:.0f} msg/s "
          f"per node)")


def sink_speed(tmp, herald, heraldd, srv, count):
    print(f"== one heraldd, PostgreSQL vs SQLite store, {count} messages "
          f"to smtp-sink dumping into /dev/shm")
    lst = os.path.join(tmp, "plain.yaml")
    journalists(lst, count)
    tempfile.tempdir = "/dev/shm"  # the sink's dumps
    got = {}
    try:
        with ms.SmtpSink(backlog=256) as sink:
            relay = f"smtp://127.0.0.1:{sink.port}"
            for kind in ("sqlite", "postgresql"):
                st = Store(tmp, f"plain_{kind}",
                           srv if kind == "postgresql" else None)
                cfg = st.config(tmp, f"plain-{kind}", relay)
                queue(herald, st, cfg, lst)
                pg0 = server_cpu(srv)
                took, cpu = drain(heraldd, st, [cfg])
                time.sleep(0.5)  # the session's backend ends and is reaped
                pg1 = server_cpu(srv)
                got[kind] = count / took
                print(f"  {kind:10s}: {got[kind]:7.0f} msg/s, heraldd "
                      f"{cpu / count * 1e6:5.0f} us CPU/msg, PostgreSQL "
                      f"server {pg1 - pg0:5.1f} s CPU")
    finally:
        tempfile.tempdir = None
    print(f"  PostgreSQL / SQLite: {got['postgresql'] / got['sqlite']:.2f}x"
          f" (goal >= 0.7)")


def queue_speed(tmp, herald, srv, count):
    print(f"== herald queue of {count} journalists")
    lst = os.path.join(tmp, "queue.yaml")
    journalists(lst, count)
    for kind in ("sqlite", "postgresql"):
        st = Store(tmp, f"queue_{kind}", srv if kind == "postgresql"
                   else None)
        cfg = st.config(tmp, f"queue-{kind}", "maildir:/nonexistent")
        took, peak = queue(herald, st, cfg, lst)
        print(f"  {kind:10s}: {took:6.1f} s, herald peak {peak:6.1f} MiB")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    qcount = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    herald = os.path.abspath(os.path.join(build, "herald"))
    heraldd = os.path.abspath(os.path.join(build, "heraldd"))
    with tempfile.TemporaryDirectory(prefix="herald-bench-pg-") as tmp:
        os.chmod(tmp, 0o755)
        # durable as a production server (fsync on), on the same disk as
        # the SQLite store it is compared with
        srv = pgserver.PgServer(os.path.join(tmp, "pg"),
                                durable=True).start()
        try:
            slow_relay(tmp, herald, heraldd, srv, 2400)
            sink_speed(tmp, herald, heraldd, srv, count)
            queue_speed(tmp, herald, srv, qcount)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
