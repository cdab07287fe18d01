#!/usr/bin/env python3
"""The fault matrix: heraldd sends a release to 2,000 journalists through
tests/lib/faultsmtp.py, a server that answers 4xx, 5xx, hangs, closes the
connection or answers slowly at every SMTP command, each decided by a fixed
seed from (recipient, attempt, command). The test computes from the same
rule what every recipient must end as and checks the accounting exactly:

- the final state of every delivery (herald log / herald show): 5xx at
  RCPT, DATA or after the dot → failed, with the server's code, enhanced
  status and text kept; a 4xx that clears → deferred, then sent; a 4xx that
  never clears → expired once the lifetime is over; a hang or a closed
  connection → retried, then sent; slow → sent; faults at EHLO, MAIL, RSET
  and QUIT are the relay's and end in sent;
- the server against the store: every message the server accepted is
  recorded sent, every delivery recorded sent is at the server, and a
  recipient has two copies only where the server closed the connection
  after the final dot without answering (counted, and bounded by the
  number of such faults); every copy has its delivery's Message-ID;
- no hang outlives the client's timeout: from the start of each hang to the
  client's disconnect, as the server measured it, at most the timeout and
  the second libcurl may block for another message's dot (HANG_MARGIN).

Usage: test_faults.py --herald H --heraldd D --source S [--recipients N]
[--seed N]; prints the faults injected per kind and command, the final
counts, the longest hang-to-disconnect time and the run's duration.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import faultsmtp as fs  # noqa: E402
import mailservers as ms  # noqa: E402
import transcript  # noqa: E402

A = None

# The client's timeouts (relay.reply_timeout and dot_timeout, equal here)
# and the slack allowed on top of them for a hang to end. With one libcurl
# multi handle for all connections a hang was ended up to a second late
# (libcurl 7.88 blocks for another message's dot and calls herald's
# progress callback once a second), and with equal timeouts curl's own
# could win a tie and wait a second for QUIT's reply; with a thread per
# connection and curl's timeout a second later than herald's, hangs end at
# the timeout (2.02 s at most in the runs of 2026-11-28). The slack keeps
# the second of libcurl's progress interval, which still applies while a
# transfer's own dot is waited for, and half a second for a loaded machine
# (the server's clock runs in the same load).
TIMEOUT = 2
HANG_MARGIN = 1.5
SECRET = b"herald-faults-secret-0123456789abcdef"
VERP_DOMAIN = "bounces.coalition.example.org"
LANGS = ["en", "ru", "uk", "de", "cs", "et"]


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def journalists(n):
    """A list of n journalists at 40 test domains, in the format of
    lists/journalists.yaml."""
    out = ["journalists:"]
    for i in range(n):
        out += [f"  - name: Journalist {i}",
                f"    email: j{i:05d}@outlet{i % 40:02d}.test",
                f"    language: {LANGS[i % len(LANGS)]}",
                f"    outlet: Outlet {i % 40}",
                "    beat: human rights",
                "    region: Europe",
                "    timezone: Europe/Berlin"]
    return "\n".join(out) + "\n"


class Env:
    def __init__(self, port, lifetime):
        self.dir = tempfile.mkdtemp(prefix="herald-faults-")
        os.chmod(self.dir, 0o755)
        self.cfg = os.path.join(self.dir, "herald.yaml")
        self.list = os.path.join(self.dir, "journalists.yaml")
        self.port = port
        fd = os.open(os.path.join(self.dir, "bounce.secret"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, SECRET + b"\n")
        os.close(fd)
        transcript.secret(SECRET)
        self.write_config(lifetime)
        self.proc = None
        self.log = os.path.join(self.dir, "heraldd.log")

    def write_config(self, lifetime):
        tmp = self.cfg + ".new"
        with open(tmp, "w") as f:
            f.write(f"store: {os.path.join(self.dir, 'herald.db')}\n"
                    f"retry: {{min_backoff: 1s, max_backoff: 2s, "
                    f"relay_min_backoff: 1s, relay_max_backoff: 2s, "
                    f"lifetime: {lifetime}}}\n"
                    "daemon: {lease: 60s, grace: 10s, batch: 64}\n"
                    f"relay:\n  url: smtp://127.0.0.1:{self.port}\n"
                    f"  connect_timeout: {TIMEOUT}s\n"
                    f"  reply_timeout: {TIMEOUT}s\n"
                    f"  dot_timeout: {TIMEOUT}s\n"
                    f"bounces:\n  domain: {VERP_DOMAIN}\n"
                    "  secret_file: bounce.secret\n")
        os.replace(tmp, self.cfg)

    def herald(self, *args, timeout=300):
        r = subprocess.run([A.herald, *args, "--config", self.cfg],
                           cwd=A.source, capture_output=True, timeout=timeout,
                           env=dict(os.environ, COLUMNS="250"))
        if r.returncode != 0:
            raise Failure(f"herald {' '.join(args)} exited {r.returncode}: "
                          f"{r.stderr.decode()}{r.stdout.decode()}")
        return r.stdout.decode()

    def attempts(self):
        return [json.loads(line) for line in
                self.herald("log", "--format", "json").splitlines()]

    def show(self, delivery):
        out = self.herald("show", str(delivery))
        return dict(re.findall(r"^([a-z -]+):\s+(.*)$", out, re.M))

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [A.heraldd, "--config", self.cfg], cwd=A.source,
                stdout=log, stderr=log)

    def stop(self):
        """SIGTERM; the seconds heraldd took to exit."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("heraldd did not exit within 120 s of SIGTERM")
        check(rc == 0, f"heraldd exited {rc}: {self.log_tail()}")
        return time.monotonic() - t0

    def log_tail(self, n=4000):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.log):
            with open(self.log, "rb") as f:
                transcript.record("heraldd logs", f.read())
        if os.environ.get(ms.KEEP_ENV):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def expected_state(plan):
    if plan.action == "5xx":
        return "failed"
    if plan.action == "4xx" and plan.forever:
        return "expired"
    return "sent"


def verp_key(sender):
    m = re.match(r"bounces\+([^-@]+)-[a-z2-7]+@", sender)
    return m.group(1) if m else None


def poll(predicate, timeout, what, pause=1.0):
    """predicate() every `pause` seconds until true (each poll reads the
    whole log, so not more often), else Failure after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        ok, state = predicate()
        if ok:
            return
        if time.monotonic() >= deadline:
            raise Failure(f"gave up after {timeout:g} s waiting for {what}; "
                          f"{state}")
        time.sleep(pause)


def final_rows(rows):
    """The last attempt of each recipient (the log's rows after it say
    what came of it: a suppression)."""
    last = {}
    for r in rows:
        if r["attempt"] is not None:
            last[r["recipient"]] = r
    return last


def run():
    t_start = time.monotonic()
    # 10% of the recipients get each kind of fault; faults of the relay
    # (EHLO, MAIL, QUIT) are rarer, as each pauses the relay (trouble.c)
    # and so the whole run for a second or two.
    plan = fs.FaultPlan(seed=A.seed, rate=0.10, conn_rate=0.005,
                        slow=(0.25 * TIMEOUT, 0.5 * TIMEOUT))
    with fs.FaultSmtp(plan) as srv:
        env = Env(srv.port, "1h")
        try:
            return matrix(env, srv, plan, t_start)
        finally:
            env.close()


def matrix(env, srv, plan, t_start):
    with open(env.list, "w") as f:
        f.write(journalists(A.recipients))
    out = env.herald("queue", "templates/report-launch", "--to", env.list)
    check("queued release 1" in out, out)
    rcpts = [f"j{i:05d}@outlet{i % 40:02d}.test"
             for i in range(A.recipients)]
    plans = {r: plan.recipient_plan(r) for r in rcpts}
    want = {r: expected_state(p) for r, p in plans.items()}
    forever = {r for r, p in plans.items() if p.action == "4xx" and p.forever}

    # 1. Everything but the 4xx that never clears comes to its end; those
    # are deferred, tried again and again.
    env.start()
    t_send = time.monotonic()

    final = ("sent", "failed", "expired")
    report = [time.monotonic() + 30]

    def settled():
        if env.proc.poll() is not None:
            raise Failure(f"heraldd died: {env.log_tail()}")
        last = final_rows(env.attempts())
        if time.monotonic() >= report[0]:
            report[0] += 30
            c = {}
            for x in last.values():
                c[x["result"]] = c.get(x["result"], 0) + 1
            print(f"  {time.monotonic() - t_send:.0f} s: {c}", flush=True)
        # at an end: the checks below say whether it is the right one
        done = sum(1 for r in rcpts if r not in forever and
                   last.get(r, {}).get("result") in final)
        again = sum(1 for r in forever
                    if last.get(r, {}).get("result") == "deferred"
                    and last[r]["attempt"] >= 2)
        late = [r for r in rcpts if r not in forever and
                last.get(r, {}).get("result") not in final]
        return (done == len(rcpts) - len(forever) and
                again == len(forever),
                f"{done} at their end, {again} of {len(forever)} 4xx-forever "
                f"deferred twice; not yet: "
                f"{[(r, last.get(r, {}).get('result')) for r in late[:5]]}")
    poll(settled, A.deadline, "every recipient but the 4xx-forever ones at "
         "its end, those deferred twice or more")
    t_phase1 = time.monotonic() - t_send

    # 2. The lifetime ends (config reloaded with SIGHUP): the next attempt
    # of each never-clearing 4xx expires it.
    env.write_config("1s")
    env.proc.send_signal(signal.SIGHUP)

    def expired():
        last = final_rows(env.attempts())
        left = [r for r in forever if last.get(r, {}).get("result") not in
                final]
        return not left, f"not expired: {left[:5]}"
    poll(expired, 120, "the 4xx-forever recipients expired")
    stop_s = env.stop()
    t_total = time.monotonic() - t_send

    rows = env.attempts()
    last = final_rows(rows)
    ledger = srv.ledger()
    by_rcpt = {}
    for r in rows:
        by_rcpt.setdefault(r["recipient"], []).append(r)
    problems = []

    # Final states, and the replies kept.
    for r in rcpts:
        got = last.get(r, {}).get("result")
        if got != want[r]:
            problems.append(f"{r}: {got}, want {want[r]} "
                            f"(plan {plans[r]}; rows {by_rcpt.get(r)})")
            continue
        p = plans[r]
        # "550 5.1.1 User unknown" at RCPT suppresses the address, as a
        # hard bounce does; no other refusal here says the address is bad
        sup = [x for x in by_rcpt.get(r, []) if x["result"] == "suppressed"]
        if bool(sup) != (p.action == "5xx" and p.command == "RCPT"):
            problems.append(f"{r}: suppressed rows {sup} after {p}")
        if p.action in ("4xx", "5xx"):
            # every refusal the server gave this recipient is one attempt
            # row with its code, enhanced status and text
            code, status, text = fs.reply_for(p.action, p.command, r, 0)
            pat = re.compile(re.escape(f"{code} {status} ") + re.escape(
                text).replace("attempt\\ 0", r"attempt\ \d+"))
            given = sum(1 for e in ledger.get(r, [])
                        if e.action == p.action and e.command == p.command)
            mine = [x for x in by_rcpt[r] if f"<{r}>" in x["reply"]]
            for x in mine:
                if (x["code"], x["status"]) != (code, status) or \
                        not pat.fullmatch(x["reply"]):
                    problems.append(f"{r}: attempt row {x} does not keep "
                                    f"the server's reply {code} {status} "
                                    f"{text}")
            if len(mine) != given:
                problems.append(f"{r}: {len(mine)} attempt rows with its "
                                f"{p.action} at {p.command}, the server "
                                f"gave {given}")
    # Every failed delivery through herald show too: state, last reply.
    for r in rcpts:
        if want[r] != "failed" or r not in last:
            continue
        sh = env.show(last[r]["delivery"])
        code, status, text = fs.reply_for("5xx", plans[r].command, r, 1)
        if sh.get("state") != "failed" or \
                not sh.get("last reply", "").startswith(f"{code} {status}") \
                or text not in sh.get("last reply", ""):
            problems.append(f"{r}: herald show says {sh}")

    # The server against the store.
    copies = {}
    for a in srv.accepted:
        copies.setdefault(a.rcpt, []).append(a)
    sent = {r for r in rcpts if last.get(r, {}).get("result") == "sent"}
    for r, cs in copies.items():
        if r not in sent:
            problems.append(f"{r}: accepted by the server {len(cs)} time(s) "
                            f"but recorded {last.get(r, {}).get('result')}")
        ids = {c.message_id for c in cs}
        keys = {verp_key(c.sender) for c in cs}
        if len(ids) != 1 or None in ids or len(keys) != 1 or \
                next(iter(keys)) is None or \
                not next(iter(ids)).startswith("<" + next(iter(keys))):
            problems.append(f"{r}: copies with Message-IDs {ids} and "
                            f"return paths {[c.sender for c in cs]}")
    for r in sent - set(copies):
        problems.append(f"{r}: recorded sent, never accepted by the server")
    close_dot = sum(1 for e in srv.events
                    if e.command == "DOT" and e.action == "close")
    dups = {r: len(cs) - 1 for r, cs in copies.items() if len(cs) > 1}
    for r, n in dups.items():
        closed = sum(1 for c in copies[r] if c.closed_before_reply)
        if n > closed:
            problems.append(f"{r}: {n + 1} copies at the server, only "
                            f"{closed} closed before the 250")
    n_dups = sum(dups.values())
    if n_dups > close_dot:
        problems.append(f"{n_dups} duplicates for {close_dot} connections "
                        f"closed after the final dot")
    # herald show agrees with the server on a sample of the sent ones.
    for r in sorted(sent)[::97]:
        sh = env.show(last[r]["delivery"])
        if sh.get("state") != "sent" or \
                sh.get("message-id") != copies.get(r, [None])[0].message_id:
            problems.append(f"{r}: herald show {sh} vs server "
                            f"{copies.get(r)}")

    # Hangs: from the start to the client's disconnect.
    hangs = srv.closed_hangs()
    open_hangs = [h for h in hangs if h.end is None]
    for h in open_hangs:
        problems.append(f"hang at {h.command} for {h.key} attempt "
                        f"{h.attempt}: the client never disconnected")
    times = sorted(((h.end - h.start, h) for h in hangs
                    if h.end is not None), key=lambda x: x[0])
    if os.environ.get("HERALD_FAULTS_HANGS"):
        for dt, h in times:
            if dt > TIMEOUT + 0.5:
                print(f"hang at {h.command} for {h.key} attempt {h.attempt}: "
                      f"{dt:.2f} s (from {h.start:.3f} to {h.end:.3f})")
    for dt, h in times:
        if dt > TIMEOUT + HANG_MARGIN:
            problems.append(f"hang at {h.command} for {h.key} attempt "
                            f"{h.attempt}: client disconnected after "
                            f"{dt:.2f} s, timeout {TIMEOUT} s (from "
                            f"{h.start:.3f} to {h.end:.3f}, monotonic "
                            f"clock)")

    # Report.
    inj = srv.injected()
    print(f"faults injected (seed {A.seed}, {A.recipients} recipients, "
          f"{srv.connections} connections, {srv.commands} commands):")
    print("  %-6s" % "" + "".join("%7s" % c for c in fs.COMMANDS) +
          "  total")
    for a in fs.ACTIONS:
        n = [inj.get((a, c), 0) for c in fs.COMMANDS]
        print("  %-6s" % a + "".join("%7d" % x for x in n) +
              "%7d" % sum(n))
    states = {}
    for r in rcpts:
        s = last.get(r, {}).get("result", "none")
        states[s] = states.get(s, 0) + 1
    wstates = {}
    for s in want.values():
        wstates[s] = wstates.get(s, 0) + 1
    print("final states:", ", ".join(f"{k} {v}" for k, v in
                                      sorted(states.items())),
          "| expected:", ", ".join(f"{k} {v}" for k, v in
                                   sorted(wstates.items())))
    print(f"attempt rows {len(rows)}; server accepted {len(srv.accepted)} "
          f"messages for {len(copies)} recipients; duplicates {n_dups} "
          f"(connections closed after the dot: {close_dot})")
    if times:
        dt, h = times[-1]
        print(f"hangs {len(hangs)}: longest hang-to-disconnect "
              f"{dt:.2f} s (at {h.command}), timeout {TIMEOUT} s; "
              f"by command: " + ", ".join(
                  f"{c} max {max(t for t, x in times if x.command == c):.2f}"
                  for c in fs.COMMANDS
                  if any(x.command == c for _, x in times)))
    print(f"time: until all but the never-clearing 4xx settled "
          f"{t_phase1:.0f} s, sending in all {t_total:.0f} s, heraldd exit "
          f"after SIGTERM {stop_s:.1f} s, whole test "
          f"{time.monotonic() - t_start:.0f} s")
    if problems:
        print(f"{len(problems)} problems:")
        for p in problems[:40]:
            print("  " + p)
        raise Failure(f"{len(problems)} problems")
    print("fault matrix: every recipient accounted for")


def main():
    global A
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--herald", required=True)
    ap.add_argument("--heraldd", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--recipients", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--deadline", type=float, default=900,
                    help="seconds for everything to settle")
    A = ap.parse_args()
    try:
        run()
    except (Failure, ms.HarnessError, TimeoutError) as e:
        print(f"FAIL: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
