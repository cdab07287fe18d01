#!/usr/bin/env python3
"""What heraldd has claimed: pause and cancel reach it, a crash strands
nothing that never left, a stop says what may go twice, two heraldd share
a store.

`test_claims.py --herald H --heraldd D --source S CASE` (ctest runs each as
claims/CASE) against Postfix's smtp-sink on 127.0.0.1, slowed at the final
dot so that messages stay on their connections while the case acts:

  pause         herald pause while heraldd sends: at most the in-flight
                count it prints arrives afterwards; resume sends the rest
  cancel        the same with herald cancel: the rest ends cancelled
  crash         heraldd killed (SIGKILL) with a 10-minute lease and
                restarted: every delivery not handed to the relay goes at
                once, the handed ones wait and herald show and status
                --watch say who holds them until when
  stop_in_flight  SIGTERM with messages on connections when the grace runs
                out: heraldd says how many may be duplicated, logs each,
                and herald show marks them
  two_daemons   two heraldd on one store: each logs the other, they split
                the work, pause reaches both, and the second neither takes
                nor removes the first one's control socket
  relative_socket  heraldd whose config names the store (and so its
                socket) by a relative path: herald pause from another
                directory reaches it
  silent_daemon herald pause while heraldd is stopped (SIGSTOP): its claims
                not handed over are given back in the store, what it
                handed over is counted in flight, and once it runs again
                nothing else of the release leaves
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers as ms  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import test_delivery as td  # noqa: E402

A = None
SAMPLE = td.SAMPLE
Failure = td.Failure
check = td.check


def slow_env(sink, lease="30s", grace="5s", batch=16, conns=4,
             timeout="120s"):
    """An Env sending to sink over conns connections, claiming batch at a
    time (so that claimed deliveries wait while others are on
    connections)."""
    return td.Env(f"smtp://127.0.0.1:{sink.port}",
                  daemon=f"{{lease: {lease}, grace: {grace}, "
                  f"batch: {batch}}}",
                  timeout=timeout,
                  relay_extra=f"  max_connections: {conns}\n")


def in_flight(out, cmd):
    """The in-flight count herald pause/cancel printed."""
    m = re.search(r"^in flight: (\d+)", out, re.M)
    check(m is not None, f"herald {cmd} printed no in-flight count:\n{out}")
    return int(m.group(1))


def release_ids(env, release):
    """The Message-IDs of a release's deliveries, from the store."""
    return {f"<{m}>" for (m,) in env.store_rows(
        "SELECT message_id FROM deliveries WHERE release_id = ?",
        (release,))}


def arrived(sink, ids):
    return sum(1 for m in td.message_ids(sink.messages()) if m in ids)


def steer_while_sending(cmd, sink, env):
    """herald CMD (pause or cancel) while heraldd sends through sink, which
    takes a second per message: the messages that arrive afterwards are at
    most those it says were in flight. A second release queued after it
    and delivered whole is the barrier: whatever heraldd still held of the
    first would have gone before it. Returns (heraldd, arrived after) with
    heraldd still running."""
    env.queue()
    first = release_ids(env, 1)
    p = env.start()
    ms.wait_until(lambda: sink.count() >= 6, 60, "some delivered")
    r = env.herald(cmd, "1")
    out = r.stdout.decode()
    before = arrived(sink, first)
    print(out.strip())
    env.herald("queue", td.other_release(env, "second-release"), "--to",
               "lists/journalists.yaml")
    second = release_ids(env, 2)
    ms.wait_until(lambda: arrived(sink, second) >= SAMPLE, 90,
                  "the second release delivered")
    after = arrived(sink, first)
    m = re.search(r"^in flight: (\d+)", out, re.M)
    flying = int(m.group(1)) if m else 0
    print(f"{before} arrived before {cmd} returned, {after - before} after;"
          f" {flying} in flight by herald {cmd}")
    check(after - before <= flying,
          f"{after - before} messages arrived after herald {cmd} returned, "
          f"but it said {flying} were in flight:\n{out}")
    check(in_flight(out, cmd) <= 4, f"more in flight than connections: {out}")
    check(f"heraldd pid {p.pid}" in out,
          f"herald {cmd} did not name the heraldd it told:\n{out}")
    ms.wait_until(lambda: states(env).get("sending", 0) == 0, 60,
                  "no delivery sending")
    return p, after


def states(env, release=1):
    """How many deliveries of a release are in each state, from the
    store."""
    return dict(env.store_rows("SELECT state, count(*) FROM deliveries"
                               " WHERE release_id = ? GROUP BY state",
                               (release,)))


def case_pause():
    sink = ms.SmtpSink(delays={".": 1})
    sink.start()
    env = None
    try:
        env = slow_env(sink)
        p, after = steer_while_sending("pause", sink, env)
        st = states(env)
        check(st.get("sent", 0) == after and
              st.get("queued", 0) == SAMPLE - after,
              f"after pause: {st}, {after} at the sink")
        r = env.herald("resume", "1")
        first = release_ids(env, 1)
        ms.wait_until(lambda: arrived(sink, first) >= SAMPLE, 60,
                      "every recipient after resume")
        ids = td.message_ids(sink.messages())
        check(len(ids) == 2 * SAMPLE == len(set(ids)),
              f"{len(ids)} messages for {len(set(ids))} deliveries")
        ms.wait_until(lambda: states(env).get("sent", 0) == SAMPLE, 30,
                      "all of release 1 sent")
        check(r.returncode == 0, "resume")
    finally:
        if env is not None:
            env.close()
        if sink is not None:
            sink.stop()


def case_cancel():
    sink = ms.SmtpSink(delays={".": 1})
    sink.start()
    env = None
    try:
        env = slow_env(sink)
        p, after = steer_while_sending("cancel", sink, env)
        st = states(env)
        check(st.get("sent", 0) == after and
              st.get("cancelled", 0) == SAMPLE - after,
              f"after cancel: {st}, {after} at the sink")
        ids = td.message_ids(sink.messages())
        check(len(ids) == len(set(ids)), "a message went twice")
    finally:
        if env is not None:
            env.close()
        if sink is not None:
            sink.stop()


def case_crash():
    sink = ms.SmtpSink(delays={".": 120})
    sink.start()
    port = sink.port
    env = slow_env(sink, lease="10m", timeout="300s")
    sink2 = None
    try:
        env.queue()
        p = env.start()
        # four on connections (smtp-sink dumps before it answers the dot)
        ms.wait_until(lambda: sink.count() >= 4, 60, "four on connections")
        ms.wait_until(lambda: states(env).get("sending", 0) == 16, 30,
                      "a whole batch claimed")
        p.send_signal(signal.SIGKILL)
        p.wait()
        handed = {m.recipients[0] for m in sink.messages()}
        check(len(handed) == 4, f"{len(handed)} on connections at the kill")
        sink.stop()
        sink2 = ms.SmtpSink(port=port)
        sink2.start()
        t0 = time.monotonic()
        p2 = env.start()
        ms.wait_until(lambda: sink2.count() >= SAMPLE - 4, 60,
                      "every delivery not handed over")
        print(f"{SAMPLE - 4} delivered {time.monotonic() - t0:.1f} s after "
              "the restart")
        got = {m.recipients[0] for m in sink2.messages()}
        check(not (got & handed), f"sent again before the lease ran out: "
              f"{sorted(got & handed)}")
        # smtp-sink dumps a message before it answers the dot, so the
        # sink may count it before heraldd has recorded it: wait for the
        # store (the grouped commit), then require the four still held
        try:
            ms.wait_until(lambda: states(env).get("sent", 0) == SAMPLE - 4,
                          30, "the store to record what the sink holds")
        except TimeoutError:
            pass
        st = states(env)
        check(st.get("sending", 0) == 4 and st.get("sent", 0) == SAMPLE - 4,
              f"after the restart: {st}")
        log = env.log_text()
        check(re.search(rf"heraldd pid {p.pid} on \S+ is gone", log),
              f"the restart did not say the dead heraldd was gone:\n{log}")
        host = socket.gethostname()
        for addr in sorted(handed):
            show = env.herald("show", addr).stdout.decode()
            print(show.split("history:")[0].strip())
            check(re.search(rf"held by heraldd pid {p.pid} on {re.escape(host)}"
                            r" until (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC, may have been sent",
                            show), f"herald show {addr}:\n{show}")
        # status --watch follows the release and says what it waits for
        w = subprocess.Popen([A.herald, "status", "1", "--watch", "--config",
                              env.cfg], cwd=A.source, stdout=subprocess.PIPE,
                             env=dict(os.environ, COLUMNS="250"))
        lines = []
        try:
            def held():
                line = w.stdout.readline().decode()
                lines.append(line)
                return "held by heraldd" in line or not line
            ms.wait_until(held, 20, "status --watch explaining the wait")
        finally:
            w.kill()
            w.wait()
        text = "".join(lines)
        check(re.search(rf"4 held by heraldd pid {p.pid} on \S+ until "
                        r"(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC, may have "
                        r"been sent", text),
              f"status --watch:\n{text}")
        p2.send_signal(signal.SIGTERM)
        check(p2.wait(timeout=30) == 0, "heraldd did not stop")
    finally:
        env.close()
        sink.stop()
        if sink2 is not None:
            sink2.stop()


def case_stop_in_flight():
    sink = ms.SmtpSink(delays={".": 60})
    sink.start()
    port = sink.port
    env = slow_env(sink, lease="10m", grace="1s", timeout="120s")
    sink2 = None
    try:
        env.queue()
        p = env.start()
        ms.wait_until(lambda: sink.count() >= 4, 60, "four on connections")
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=30)
        log = env.log_text()
        print(log[-1500:])
        check(rc == 0, f"heraldd exited {rc}")
        flying = {m.recipients[0] for m in sink.messages()}
        m = re.search(r"(\d+) messages? may be duplicated", log)
        check(m is not None and int(m.group(1)) == len(flying),
              f"heraldd did not say that {len(flying)} may be duplicated:\n"
              f"{log}")
        dup_lines = re.findall(r"delivery=(\d+) to=<([^>]+)>[^\n]*"
                               r"result=may-duplicate", log)
        check({a for _, a in dup_lines} == flying,
              f"the messages on connections were not logged each: "
              f"{dup_lines} vs {sorted(flying)}")
        for did, addr in dup_lines:
            show = env.herald("show", did).stdout.decode()
            check("may duplicate:" in show and "SIGTERM" in show,
                  f"herald show {did}:\n{show}")
        sink.stop()
        sink2 = ms.SmtpSink(port=port)
        sink2.start()
        env.start()
        ms.wait_until(lambda: sink2.count() >= SAMPLE, 60, "all after restart")
        env.wait_all("sent")
        for did, _ in dup_lines:
            show = env.herald("show", did).stdout.decode()
            print(show.split("history:")[0].strip())
            check("state:      sent" in show and "may duplicate:" in show,
                  f"herald show {did} once sent:\n{show}")
    finally:
        env.close()
        sink.stop()
        if sink2 is not None:
            sink2.stop()


def case_two_daemons():
    with ms.SmtpSink(delays={".": 1}) as sink:
        env = slow_env(sink, conns=2, batch=8)
        try:
            sock = env.sock
            a = env.start()
            ms.wait_until(lambda: os.path.exists(sock), 20, "a's socket")
            b = env.start()
            ms.wait_until(lambda: f"pid {a.pid}" in open(env.logs[1]).read(),
                          20, "b naming a")
            ms.wait_until(lambda: f"pid {b.pid}" in open(env.logs[0]).read(),
                          30, "a naming b")
            log_b = open(env.logs[1]).read()
            print(log_b.strip())
            check(os.path.exists(sock), "b removed a's socket")
            env.queue()
            ms.wait_until(lambda: sink.count() >= 8, 60, "some delivered")
            r = env.herald("pause", "1")
            out = r.stdout.decode()
            print(out.strip())
            for p in (a, b):
                check(f"heraldd pid {p.pid}" in out,
                      f"herald pause did not reach pid {p.pid}:\n{out}")
            env.herald("resume", "1")
            ms.wait_until(lambda: len(set(td.message_ids(sink.messages())))
                          >= SAMPLE, 90, "every recipient")
            ids = td.message_ids(sink.messages())
            check(len(ids) == len(set(ids)) == SAMPLE,
                  f"{len(ids)} messages for {len(set(ids))} recipients")
            logs = [open(n).read() for n in env.logs]
            check(all("result=sent" in t for t in logs),
                  "one heraldd did all the work")
            # the second stops: the first keeps its socket and answers
            b.send_signal(signal.SIGTERM)
            check(b.wait(timeout=30) == 0, "b did not stop")
            check(os.path.exists(sock), "b's stop removed a's socket")
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(5)
            try:
                c.connect(sock)
                c.sendall(b"ping\n")
                check(c.recv(64) == b"pong\n", "a does not answer")
            except OSError as e:
                raise Failure(f"a's socket after b stopped: {e}")
            finally:
                c.close()
        finally:
            env.close()


def case_relative_socket():
    """heraldd run where its config names the store by a relative path
    (its socket too): herald pause run from elsewhere still reaches it,
    through the daemons table."""
    with ms.SmtpSink(delays={".": 1}) as sink:
        env = slow_env(sink)
        try:
            env.queue()
            log = open(os.path.join(env.dir, "heraldd-rel.log"), "wb")
            with open(env.cfg) as f:
                text = f.read()
            with open(env.cfg, "w") as f:
                f.write(text.replace(f"store: {env.store}\n",
                                     "store: herald.db\n", 1))
            p = subprocess.Popen([A.heraldd, "--config", "herald.yaml"],
                                 cwd=env.dir, stdout=log, stderr=log)
            env.procs.append(p)
            env.logs.append(log.name)
            ms.wait_until(lambda: sink.count() >= 1, 60, "some delivered")
            r = env.herald("pause", "1")
            out = r.stdout.decode()
            print(out.strip())
            check(f"heraldd pid {p.pid}:" in out and
                  "did not answer" not in out,
                  f"herald pause did not reach heraldd pid {p.pid}:\n{out}")
        finally:
            env.close()


def case_silent_daemon():
    """herald pause while heraldd is stopped (SIGSTOP: running, but not
    answering): herald says so, gives back in the store what it claimed
    and never handed over, and counts what it handed over as in flight;
    once it runs again it sends nothing else of the release."""
    sink = ms.SmtpSink(delays={".": 1})
    sink.start()
    env = slow_env(sink)
    try:
        env.queue()
        first = release_ids(env, 1)
        p = env.start()
        ms.wait_until(lambda: sink.count() >= 6, 60, "some delivered")
        p.send_signal(signal.SIGSTOP)
        try:
            out = env.herald("pause", "1").stdout.decode()
            before = arrived(sink, first)
        finally:
            p.send_signal(signal.SIGCONT)
        print(out.strip())
        check(f"heraldd pid {p.pid} on " in out and "did not answer" in out,
              f"herald pause did not say heraldd was silent:\n{out}")
        check(re.search(r"^\d+ claimed by a heraldd that did not answer "
                        r"given back", out, re.M),
              f"nothing given back for the silent heraldd:\n{out}")
        # on connections, and answered but not yet recorded (heraldd
        # stopped before its next commit): the store cannot tell them apart
        flying = in_flight(out, "pause")
        check(flying >= 1, f"in flight: {flying}")
        env.herald("queue", td.other_release(env, "second-release"),
                   "--to", "lists/journalists.yaml")
        second = release_ids(env, 2)
        ms.wait_until(lambda: arrived(sink, second) >= SAMPLE, 90,
                      "the second release delivered")
        after = arrived(sink, first)
        print(f"{after - before} of release 1 arrived after the pause, "
              f"{flying} in flight")
        check(after - before <= flying,
              f"{after - before} arrived after herald pause, {flying} in "
              "flight")
        # it reads herald's request once it runs again, or finds its
        # claims gone when it would hand them to the relay
        log = env.log_text()
        check("taken back meanwhile" in log or
              "control: release=1 paused" in log,
              f"heraldd did not say it dropped its claims:\n{log[-2000:]}")
    finally:
        env.close()
        sink.stop()


if __name__ == "__main__":
    sys.exit(td.run_cases(globals()))
