#!/usr/bin/env python3
"""Several heraldd on one PostgreSQL store, as several machines would run
them: a real PostgreSQL 15 (tests/lib/pgserver.py) and Postfix's smtp-sink
on 127.0.0.1, each node a heraldd of its own with the same herald.yaml but
its own control socket.

`test_pgnodes.py --herald H --heraldd D --source S CASE` (ctest runs each as
pgnodes/CASE):

  three_nodes  three heraldd deliver a 20,000-journalist release: every
               journalist exactly once (distinct Message-IDs at the sink),
               all three did part of the work, herald status agrees
  kills        the same with one node SIGKILLed 10 times and started
               again: 20,000 of 20,000, duplicates only within the
               in-flight bound of each kill, herald status agrees
  cut          the same with every node's database session ended by
               pg_terminate_backend five times, then the PostgreSQL server
               restarted: 20,000 of 20,000, duplicates within the bound
  global_rate  relay.rate 20 msg/s with three nodes: at the sink, no
               stretch holds more than the one limit allows (plus its
               burst), not three times it
  skewed_clock three nodes whose clocks disagree by 20 minutes (faketime:
               one 10 minutes ahead, one 10 minutes behind) with 30 s
               leases: every journalist exactly once (a node ahead that
               went by its own clock would take the others' leases as run
               out and send their messages again), and every attempt's
               time in the log is the database's, not a node's
  host_lost    three nodes, each on a host name of its own (a UTS
               namespace, as three machines), leases of 80 s; one is
               SIGKILLed and never comes back: the others know it only by
               its heartbeat, end it once that is a minute old, and send
               at once what it had claimed and not handed to the relay;
               what it had handed over waits for its lease; every
               journalist at least once, duplicates within its in-flight
               bound
  pause_across herald pause on this host while the three nodes run on
               other hosts (the control socket cannot reach them): it says
               so, and after what it counts in flight nothing more of the
               release arrives; herald resume sends the rest
"""
import collections
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers as ms  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import test_daemon as tdm  # noqa: E402
import test_delivery as td  # noqa: E402
import test_pgstore as tp  # noqa: E402

A = None
Failure = td.Failure
check = td.check

NODES = 3
CONNECTIONS = 8  # relay.max_connections of each node
BATCH = 32       # daemon.batch of each node
# What one SIGKILL or one lost session may send twice: the node's messages
# on connections, its claims handed over, and the results it had not yet
# committed (recorder's batch, DELIVER_BATCH_RECORDS in deliver.c).
IN_FLIGHT = CONNECTIONS + BATCH + 128
# Debian's libfaketime (package faketime)
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def size():
    """Journalists of the release (about 20 s a case on two cores)."""
    return 20000


class Nodes:
    """n heraldd on one store, each with its own control socket and log."""

    def __init__(self, env, n=NODES):
        self.env = env
        self.cfgs = []
        with open(env.cfg) as f:
            text = f.read()
        for i in range(n):
            cfg = os.path.join(env.dir, f"node{i}.yaml")
            with open(cfg, "w") as f:
                f.write(text + f"control: node{i}.sock\n")
            self.cfgs.append(cfg)
        self.procs = [None] * n

    def start(self, i, *extra, clock=None, host=None):
        """Node i's heraldd; clock: "+600s" runs it under faketime with
        its clock that far off; host: on a host name of its own (a UTS
        namespace: to heraldd and to the store another machine)."""
        log = open(os.path.join(self.env.dir, f"node{i}-"
                                f"{len(self.env.logs)}.log"), "wb")
        env = dict(os.environ, **self.env.run_env)
        if clock:
            # libfaketime preloaded into heraldd itself: the faketime
            # program would fork it, and a SIGTERM to faketime would leave
            # heraldd running
            env["LD_PRELOAD"] = FAKETIME_LIB
            env["FAKETIME"] = clock
        pre = []
        if host:
            # unshare and sh exec: the process started is heraldd
            pre = ["unshare", "--uts", "sh", "-c",
                   f'hostname "$0" && exec "$@"', host]
        p = subprocess.Popen([*pre, A.heraldd, "--config", self.cfgs[i],
                              *extra],
                             cwd=A.source, stdout=log, stderr=log, env=env)
        self.env.procs.append(p)
        self.env.logs.append(log.name)
        self.procs[i] = p
        return p

    def sent_by(self):
        """Messages each node logged as sent, by node."""
        out = collections.Counter()
        for name in self.env.logs:
            node = re.search(r"node(\d+)-", name)
            if node is None:
                continue
            with open(name, errors="replace") as f:
                out[int(node.group(1))] += sum(1 for line in f
                                               if " result=sent " in line)
        return out


def env_for(srv, sink, **cfg):
    return tp.pg_env(srv, f"smtp://127.0.0.1:{sink.port}",
                     daemon=f"{{lease: 10s, grace: 5s, batch: {BATCH}}}",
                     timeout="30s",
                     relay_extra=f"  max_connections: {CONNECTIONS}\n"
                     + cfg.pop("relay_extra", ""), **cfg)


def queue_big(env, n):
    lst = os.path.join(env.dir, "big.yaml")
    tp.big_list(lst, n)
    r = env.herald("queue", "templates/report-launch", "--to", lst)
    check(f"{n} recipients".encode() in r.stdout, r.stdout.decode())


def wait_sent(env, n, timeout):
    """Until herald status says n sent (the store's own count)."""
    def sent():
        rows = env.store_rows("SELECT count(*) FROM deliveries WHERE "
                              "state = 'sent'")
        return rows[0][0]
    ms.wait_until(lambda: sent() >= n, timeout, f"{n} sent in the store")


def judge(env, sink, n, kills):
    """Every journalist at the sink, duplicates within the bound, and the
    store's figures as the sink's."""
    ms.wait_until(lambda: len(set(td.message_ids(sink.messages()))) >= n,
                  120, f"{n} distinct messages at the sink")
    ids = td.message_ids(sink.messages())
    twice = len(ids) - len(set(ids))
    check(len(set(ids)) == n, f"{len(set(ids))} distinct of {n}")
    check(twice <= kills * IN_FLIGHT,
          f"{twice} duplicates after {kills} interruptions (bound "
          f"{kills * IN_FLIGHT})")
    status = env.herald("status", "--format", "json").stdout.decode()
    check(re.search(rf'"sent": ?{n}\b', status),
          f"herald status does not say {n} sent: {status[:400]}")
    print(f"{n} journalists, {len(ids)} messages, {twice} duplicates "
          f"after {kills} interruptions")
    return ids


def case_three_nodes():
    n = size()
    with tp.Server() as srv, ms.SmtpSink() as sink:
        env = env_for(srv, sink)
        try:
            queue_big(env, n)
            nodes = Nodes(env)
            t0 = time.time()
            for i in range(NODES):
                nodes.start(i)
            wait_sent(env, n, 600)
            took = time.time() - t0
            judge(env, sink, n, 0)
            by = nodes.sent_by()
            check(len(by) == NODES and all(by[i] > 0 for i in range(NODES))
                  and sum(by.values()) == n,
                  f"sent by node: {dict(by)}")
            print(f"by node: {dict(by)} in {took:.1f} s")
        finally:
            env.close()


def case_kills():
    n = size()
    with tp.Server() as srv, ms.SmtpSink() as sink:
        env = env_for(srv, sink)
        try:
            queue_big(env, n)
            nodes = Nodes(env)
            for i in range(NODES):
                nodes.start(i)
            kills = 0
            while kills < 10:
                # often enough for ten kills before the release is out
                time.sleep(0.2)
                if env.store_sql("SELECT count(*) FROM deliveries WHERE "
                                 "state IN ('queued', 'deferred')") == 0:
                    break
                nodes.procs[0].send_signal(signal.SIGKILL)
                nodes.procs[0].wait()
                kills += 1
                nodes.start(0)
            check(kills == 10, f"only {kills} kills before the end")
            wait_sent(env, n, 600)
            judge(env, sink, n, kills)
        finally:
            env.close()


def terminate_herald(srv, db):
    """End every session of the role herald on db; how many."""
    out = srv.sql("postgres", "SELECT count(*) FROM (SELECT "
                  "pg_terminate_backend(pid) FROM pg_stat_activity "
                  f"WHERE usename = 'herald' AND datname = '{db}') t")
    return int(out.strip() or 0)


def case_cut():
    n = size()
    with tp.Server() as srv, ms.SmtpSink() as sink:
        env = env_for(srv, sink)
        try:
            queue_big(env, n)
            nodes = Nodes(env)
            for i in range(NODES):
                nodes.start(i)
            cuts = 0
            for _ in range(5):
                time.sleep(1.0)
                if terminate_herald(srv, env.pg_db) > 0:
                    cuts += 1
            check(cuts >= 3, f"only {cuts} cuts found sessions to end")
            time.sleep(1.0)
            srv.restart()
            wait_sent(env, n, 600)
            judge(env, sink, n, cuts + 1)
            for i, p in enumerate(nodes.procs):
                check(p.poll() is None,
                      f"node {i} ended: {env.log_text()[-2000:]}")
            text = env.log_text()
            check("herald tries again" in text or "trying again" in text,
                  "no node said it lost the store")
        finally:
            env.close()


def case_global_rate():
    rate = 20
    n = 300
    with tp.Server() as srv, ms.SmtpSink() as sink:
        env = env_for(srv, sink, relay_extra=f"  rate: {rate}\n")
        try:
            queue_big(env, n)
            nodes = Nodes(env)
            # daemons, not --drain: a drain stops at deliveries another
            # node gave back to wait for the limit (it cannot tell them
            # from retries)
            for i in range(NODES):
                nodes.start(i)
            wait_sent(env, n, 300)
            ms.wait_until(lambda: sink.count() >= n, 30, f"{n} at the sink")
            got = tdm.arrivals(sink)
            check(len(got) == n and len({r for _, r in got}) == n,
                  f"{len(got)} messages for {n} journalists")
            span = tdm.check_spacing([t for t, _ in got], rate, rate,
                                     f"relay.rate {rate} over {NODES} "
                                     "nodes")
            by = nodes.sent_by()
            check(sum(1 for i in range(NODES) if by[i] > 0) >= 2,
                  f"one node did it all: {dict(by)}")
            print(f"{n} messages over {span:.1f} s from {dict(by)} (the "
                  f"limit allows no less than {(n - rate) / rate:.1f} s)")
        finally:
            env.close()


def case_skewed_clock():
    n = size()
    with tp.Server() as srv, ms.SmtpSink() as sink:
        env = env_for(srv, sink)
        try:
            with open(env.cfg) as f:
                text = f.read()
            with open(env.cfg, "w") as f:
                f.write(text.replace("lease: 10s", "lease: 30s", 1))
            queue_big(env, n)
            nodes = Nodes(env)
            t0 = time.time()
            for i, clock in enumerate((None, "+600s", "-600s")):
                nodes.start(i, clock=clock)
            wait_sent(env, n, 600)
            t1 = time.time()
            judge(env, sink, n, 0)
            by = nodes.sent_by()
            check(all(by[i] > 0 for i in range(NODES)),
                  f"sent by node: {dict(by)}")
            # the attempts' times: the database's clock (this machine's),
            # whichever node recorded them
            far = env.store_sql("SELECT count(*) FROM attempts WHERE "
                                "at < ? OR at > ?",
                                (int(t0) - 5, int(t1) + 5))
            check(far == 0, f"{far} attempts recorded at a node's own time")
            print(f"by node (0 true, 1 +10 min, 2 -10 min): {dict(by)}")
        finally:
            env.close()


def case_host_lost():
    n = 1200  # through a relay taking a second a message: about 80 s
    with tp.Server() as srv, ms.SmtpSink(delays={".": 1}) as sink:
        env = env_for(srv, sink)
        try:
            with open(env.cfg) as f:
                text = f.read()
            with open(env.cfg, "w") as f:
                # longer than the minute a heartbeat may be late: what
                # node 2 never handed over comes back first
                f.write(text.replace("lease: 10s", "lease: 80s", 1))
            queue_big(env, n)
            nodes = Nodes(env)
            for i in range(NODES):
                nodes.start(i, host=f"node{i}.test")
            ms.wait_until(lambda: sink.count() >= 50, 60, "some delivered")
            # node 2 claims ahead of its connections: some of its claims
            # are handed over, some not
            nodes.procs[2].send_signal(signal.SIGSTOP)
            rows = env.store_rows(
                "SELECT d.id, d.handed_at IS NULL FROM deliveries d"
                " JOIN daemons m ON m.id = d.owner"
                " WHERE d.state = 'sending' AND m.host = 'node2.test'")
            nodes.procs[2].send_signal(signal.SIGKILL)
            nodes.procs[2].wait()
            killed = time.time()
            unhanded = [i for i, u in rows if u]
            held = (len(unhanded), len(rows) - len(unhanded))
            check(held[0] > 0, f"node 2 held nothing unhanded: {held}")
            # gone by its heartbeat (60 s), not by its pid: another host
            ms.wait_until(lambda: "node2.test is gone (no heartbeat since"
                          in env.log_text(), 120, "node 2 found gone")
            gone = time.time() - killed
            check(gone >= 55, f"node 2 found gone after {gone:.0f} s, "
                  "before its heartbeat was a minute old")
            wait_sent(env, n, 900)
            judge(env, sink, n, 1)
            # what it never handed over went before its lease ran out
            last = env.store_sql(
                "SELECT max(at) FROM attempts WHERE delivery_id IN (" +
                ",".join(str(i) for i in unhanded) + ")")
            check(last < killed + 80,
                  f"node 2's unhanded claims went {last - killed:.0f} s "
                  "after its kill: they waited for the lease")
            print(f"node 2 held {held[0]} unhanded and {held[1]} handed "
                  f"claims; found gone {gone:.0f} s after its kill")
        finally:
            env.close()


def case_pause_across():
    with tp.Server() as srv, ms.SmtpSink(delays={".": 1}) as sink:
        env = env_for(srv, sink)
        try:
            queue_big(env, 600)
            nodes = Nodes(env)
            for i in range(NODES):
                nodes.start(i, host=f"node{i}.test")
            ms.wait_until(lambda: sink.count() >= 20, 60, "some delivered")
            r = env.herald("pause", "1")
            out = r.stdout.decode()
            before = sink.count()
            m = re.search(r"^in flight: (\d+)", out, re.M)
            check(m is not None and "runs on another host and was not told"
                  in out, f"herald pause said:\n{out}")
            flying = int(m.group(1))
            ms.wait_until(lambda: env.store_sql(
                "SELECT count(*) FROM deliveries WHERE state = 'sending'")
                == 0, 60, "nothing of the release sending")
            time.sleep(2)
            after = sink.count()
            check(after - before <= flying,
                  f"{after - before} arrived after herald pause, which "
                  f"counted {flying} in flight:\n{out}")
            env.herald("resume", "1")
            wait_sent(env, 600, 300)
            judge(env, sink, 600, 1)
            print(f"pause: {flying} in flight, {after - before} arrived "
                  "after it")
        finally:
            env.close()


def main():
    return td.run_cases(globals())


if __name__ == "__main__":
    sys.exit(main())
