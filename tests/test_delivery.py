#!/usr/bin/env python3
"""heraldd end to end, against real servers on 127.0.0.1 (tests/lib).

Each case is a function; `test_delivery.py --herald H --heraldd D --source
S CASE` runs one (ctest runs each as delivery/CASE). A case queues the
sample release with `herald queue` into a fresh store, runs heraldd, and
judges by what the servers received and by `herald log/status/show`.
"""
import argparse
import collections
import email
import email.policy
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers as ms  # noqa: E402
import pgserver  # noqa: E402
import transcript  # noqa: E402

A = None
SAMPLE = 47  # journalists in lists/journalists.yaml
# When set: the directory of a PostgreSQL server tests/lib/pgserver.py
# started; every Env then keeps its store in a database of its own there
# (postgresql://herald@127.0.0.1:PORT/DB, the password from a 0600
# PGPASSFILE) instead of a SQLite file.
PG_ENV = "HERALD_TEST_PG"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Env:
    """A scratch directory with a config and a store, and the commands."""

    def __init__(self, relay, **cfg):
        self.dir = tempfile.mkdtemp(prefix="herald-dlv-")
        os.chmod(self.dir, 0o755)
        relay = relay.replace("{dir}", self.dir)  # a Maildir in it
        self.store = os.path.join(self.dir, "herald.db")
        self.pg = self.pg_db = None
        self.run_env = {}
        if os.environ.get(PG_ENV):
            self.use_pg(pgserver.attach(os.environ[PG_ENV]))
        self.cfg = os.path.join(self.dir, "herald.yaml")
        retry = cfg.pop("retry", "{min_backoff: 1s, max_backoff: 2s, "
                        "relay_min_backoff: 1s, relay_max_backoff: 2s}")
        daemon = cfg.pop("daemon", "{lease: 5s, grace: 5s, batch: 16}")
        extra = cfg.pop("relay_extra", "")
        timeout = cfg.pop("timeout", "5s")
        with open(self.cfg, "w") as f:
            f.write(f"store: {self.store}\n"
                    f"retry: {retry}\n"
                    f"daemon: {daemon}\n"
                    f"relay:\n  url: {relay}\n"
                    f"  connect_timeout: {timeout}\n"
                    f"  reply_timeout: {timeout}\n"
                    f"  dot_timeout: {timeout}\n{extra}")
        self.procs = []
        self.logs = []

    def use_pg(self, srv):
        """Keep the store in a new database of the PostgreSQL server srv,
        as the role herald with its password in a 0600 file."""
        self.pg = srv
        self.pg_db = srv.create_db(f"h{os.getpid()}_{id(self) % 100000}")
        self.store = srv.url(self.pg_db)
        passfile = os.path.join(self.dir, "pgpass")
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, f"127.0.0.1:{srv.port}:*:herald:{srv.password}\n"
                 .encode())
        os.close(fd)
        transcript.secret(srv.password.encode())
        self.run_env = {"PGPASSFILE": passfile}
        # for every herald and heraldd the case starts, also those it
        # starts by its own subprocess calls
        os.environ["PGPASSFILE"] = passfile

    def store_rows(self, sql, params=()):
        """The rows of sql (? for each of params) on the store, SQLite or
        PostgreSQL alike, committed; bytea and blobs as bytes."""
        if self.pg is not None:
            import psycopg2  # Debian python3-psycopg2
            db = psycopg2.connect(host=self.pg.sockdir, port=self.pg.port,
                                  user="postgres", dbname=self.pg_db)
            try:
                cur = db.cursor()
                cur.execute(sql.replace("?", "%s"), tuple(params))
                rows = cur.fetchall() if cur.description else []
                db.commit()
            finally:
                db.close()
            return [tuple(bytes(v) if isinstance(v, memoryview) else v
                          for v in row) for row in rows]
        db = sqlite3.connect(self.store, timeout=30)
        try:
            rows = db.execute(sql, tuple(params)).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    def store_sql(self, sql, params=()):
        """The first value of the first row of sql on the store."""
        return self.store_rows(sql, params)[0][0]

    def store_exists(self):
        """Is there a store yet (a file; herald's tables in the
        database)?"""
        if self.pg is not None:
            return self.store_sql("SELECT count(*) FROM pg_tables WHERE "
                                  "tablename = 'herald_schema'") > 0
        return os.path.exists(self.store)

    @property
    def sock(self):
        """heraldd's control socket by default: beside a store file, or
        beside herald.yaml with a PostgreSQL store."""
        if self.pg is not None:
            return os.path.join(self.dir, "heraldd.sock")
        return self.store + ".sock"

    @property
    def store_shown(self):
        """The store as herald names it (a file by its absolute path)."""
        return self.store if self.pg is not None else \
            os.path.realpath(self.store)

    def wrap(self, what):
        """The valgrind command line to run herald or heraldd under, when
        the test runs with --valgrind (one log per process)."""
        if not A.valgrind:
            return []
        return ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect",
                "--track-fds=no", "--num-callers=30",
                f"--suppressions={A.source}/tests/valgrind.supp",
                f"--log-file={self.dir}/valgrind-{what}-%p.log"]

    def valgrind_reports(self):
        """What valgrind reported, log by log (empty logs are clean)."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("valgrind-"):
                with open(os.path.join(self.dir, name), "rb") as f:
                    text = f.read().decode("utf-8", "replace").strip()
                if text:
                    out.append(f"{name}:\n{text}")
        return out

    def write_private(self, name, data):
        """A file only its owner may read (keys, secrets), in the scratch
        directory."""
        fd = os.open(os.path.join(self.dir, name),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        transcript.secret(data)
        os.write(fd, data)
        os.close(fd)

    def herald(self, *args, check_rc=True, timeout=120):
        env = dict(os.environ, COLUMNS="250",  # tables wide enough to read
                   **self.run_env)
        r = subprocess.run([*self.wrap("herald"), A.herald, *args,
                            "--config", self.cfg],
                           cwd=A.source, capture_output=True, timeout=timeout,
                           env=env)
        transcript.record("herald " + " ".join(args), r.stdout + r.stderr)
        if check_rc and r.returncode != 0:
            raise Failure(f"herald {' '.join(args)} exited {r.returncode}: "
                          f"{r.stderr.decode()}{r.stdout.decode()}")
        return r

    def queue(self, *extra):
        return self.herald("queue", "templates/report-launch", "--to",
                           "lists/journalists.yaml", *extra)

    def start(self, *extra):
        log = open(os.path.join(self.dir, f"heraldd{len(self.procs)}.log"),
                   "wb")
        p = subprocess.Popen([*self.wrap("heraldd"), A.heraldd, "--config",
                              self.cfg, *extra],
                             cwd=A.source, stdout=log, stderr=log,
                             env=dict(os.environ, **self.run_env))
        self.procs.append(p)
        self.logs.append(log.name)
        return p

    def drain(self, *extra, timeout=120):
        p = self.start("--drain", *extra)
        rc = p.wait(timeout=timeout)
        check(rc == 0, f"heraldd --drain exited {rc}: {self.log_text()}")

    def log_text(self):
        out = ""
        for name in self.logs:
            with open(name, "rb") as f:
                out += f.read().decode("utf-8", "replace")
        return out

    def attempts(self, *filters):
        r = self.herald("log", "--format", "json", *filters)
        return [json.loads(line) for line in r.stdout.decode().splitlines()]

    def counts(self):
        r = self.herald("log", "--format", "json")
        last = {}
        for row in (json.loads(l) for l in r.stdout.decode().splitlines()):
            last[row["recipient"]] = row["result"]
        return last

    def status_line(self):
        return self.herald("status").stdout.decode()

    def wait_all(self, state, n=SAMPLE, timeout=60):
        def done():
            c = self.counts()
            return sum(1 for v in c.values() if v == state) >= n
        ms.wait_until(done, timeout, f"{n} deliveries {state}")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        transcript.record("heraldd logs", self.log_text())
        reports = self.valgrind_reports() if A.valgrind else []
        if A.valgrind:
            n = len([x for x in os.listdir(self.dir)
                     if x.startswith("valgrind-")])
            print(f"valgrind: {n} processes, {len(reports)} with reports")
        if os.environ.get(ms.KEEP_ENV):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.pg is not None:
                try:
                    self.pg.sql("postgres", f'DROP DATABASE "{self.pg_db}"'
                                " WITH (FORCE)")
                except RuntimeError:
                    pass  # the server is gone with its directory
        if reports:
            raise Failure("valgrind:\n" + "\n".join(reports)[-6000:])


def message_ids(msgs):
    out = []
    for m in msgs:
        hit = re.search(rb"^Message-ID: *(<[^>]+>)", m.data, re.M | re.I)
        out.append(hit.group(1).decode() if hit else None)
    return out


def without_date(raw):
    return re.sub(rb"^Date: [^\r\n]*\r\n", b"", raw, count=1, flags=re.M)


def other_release(env, name):
    """A copy of the sample release under another name (a second press
    release to the same list), in the scratch directory."""
    src = os.path.join(A.source, "templates", "report-launch")
    dst = os.path.join(env.dir, name)
    shutil.copytree(src, dst)
    path = os.path.join(dst, "release.yaml")
    with open(path) as f:
        text = f.read()
    coal = os.path.join(A.source, "lists", "coalition.yaml")
    text2 = text.replace("name: report-launch", f"name: {name}", 1).replace(
        "coalition: ../../lists/coalition.yaml", f"coalition: {coal}", 1)
    check(text2.count(name) >= 1 and coal in text2,
          "could not rename the sample release")
    with open(path, "w") as f:
        f.write(text2)
    return dst


def maildir_env(relay, dom, secret):
    """An Env whose bounce mailbox is a fresh Maildir (returned too), with
    signed return paths at dom under secret."""
    md = tempfile.mkdtemp(prefix="herald-mbox-")
    for sub in ("new", "cur", "tmp"):
        os.mkdir(os.path.join(md, sub))
    env = Env(relay, relay_extra=f"bounces:\n  domain: {dom}\n"
              f"  secret_file: bounce.secret\n  mailbox: maildir:{md}\n")
    env.write_private("bounce.secret", secret + b"\n")
    return env, md


def events(env, *args):
    r = env.herald("bounces", "--format", "json", *args)
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def suppression_list(env):
    r = env.herald("suppress", "list", "--format", "json")
    return {json.loads(l)["email"]: json.loads(l)
            for l in r.stdout.decode().splitlines()}


# ---- cases ------------------------------------------------------------------


def case_sample_to_sink():
    """The sample list through smtp-sink: each recipient exactly once,
    byte-identical to herald preview (but for Date)."""
    with ms.SmtpSink() as sink:
        env = Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            r = env.queue()
            check(b"queued release 1" in r.stdout, r.stdout.decode())
            env.drain()
            got = sink.wait_for(SAMPLE, timeout=30)
            ids = message_ids(got)
            check(len(got) == SAMPLE and len(set(ids)) == SAMPLE,
                  f"{len(got)} messages, {len(set(ids))} Message-IDs")
            out = os.path.join(env.dir, "preview")
            env.herald("preview", "templates/report-launch", "--to",
                       "lists/journalists.yaml", "--out", out)
            for m in got:
                check(len(m.recipients) == 1, f"recipients {m.recipients}")
                with open(os.path.join(out, m.recipients[0] + ".eml"),
                          "rb") as f:
                    want = f.read()
                check(without_date(m.data) == without_date(want),
                      f"{m.recipients[0]}: differs from herald preview")
            rows = env.attempts()
            check(len(rows) == SAMPLE and
                  all(r["result"] == "sent" and r["code"] == 250
                      for r in rows), "log rows")
            # done: total, sent, then every other state 0
            st = env.status_line()
            check(re.search(rf"\bdone\s+\S+\s+{SAMPLE}\s+{SAMPLE}"
                            rf"(\s+0){{9}}\s", st), f"status: {st}")
            log = env.log_text()
            check(log.count("result=sent") == SAMPLE, "heraldd log lines")
        finally:
            env.close()


def case_soft_reject_then_ok():
    """4xx at RCPT: all deferred with the reply kept; the sink restarted
    without the fault: all delivered on retry."""
    sink = ms.SmtpSink(soft_reject=["RCPT"])
    sink.start()
    port = sink.port
    env = Env(f"smtp://127.0.0.1:{port}")
    try:
        env.queue()
        p = env.start()
        env.wait_all("deferred")
        rows = env.attempts("--state", "deferred")
        check(all(r["code"] // 100 == 4 and r["status"].startswith("4.")
                  and r["reply"] for r in rows), f"deferred rows {rows[:2]}")
        check(sink.count() == 0, "a message arrived despite the 4xx")
        sink.stop()
        sink2 = ms.SmtpSink(port=port)  # where heraldd expects it
        sink2.start()
        try:
            got = sink2.wait_for(SAMPLE, timeout=60)
            check(len(set(message_ids(got))) == SAMPLE, "not all delivered")
            env.wait_all("sent")
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
            sink2.stop()
    finally:
        sink.stop()
        env.close()


def case_hard_reject():
    """5xx at RCPT: failed, with the reply text and enhanced status in the
    log."""
    with ms.SmtpSink(hard_reject=["RCPT"],
                     hard_reply="550 5.1.1 <x>: Recipient address rejected: "
                     "User unknown") as sink:
        env = Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            env.queue()
            env.drain()
            rows = env.attempts("--state", "failed")
            check(len(rows) == SAMPLE, f"{len(rows)} failed rows")
            check(all(r["code"] == 550 and r["status"] == "5.1.1" and
                      "User unknown" in r["reply"] for r in rows),
                  f"row {rows[0]}")
            table = env.herald("log", "--state", "failed").stdout.decode()
            check("5.1.1" in table and "User unknown" in table, table[:400])
        finally:
            env.close()


def case_relay_down_then_421():
    """No server, then 421 at connect: the relay pauses, no recipient fails
    or is charged; all delivered once a working sink is back."""
    port = ms.free_port()
    env = Env(f"smtp://127.0.0.1:{port}")
    try:
        env.queue()
        p = env.start()
        ms.wait_until(lambda: "paused" in env.log_text(), 30,
                      "the relay paused")
        sink421 = ms.SmtpSink(reply_421=["CONNECT"], port=port)
        sink421.start()
        try:
            ms.wait_until(lambda: env.log_text().count("code=421") >= 1, 30,
                          "a 421 seen")
        finally:
            sink421.stop()
        c = env.counts()
        check(all(v in ("deferred",) for v in c.values()),
              f"states while the relay was down: {set(c.values())}")
        show = env.herald("show", "1").stdout.decode()
        check("attempts:   0" in show, show)
        sink = ms.SmtpSink(port=port)
        sink.start()
        try:
            got = sink.wait_for(SAMPLE, timeout=60)
            check(len(set(message_ids(got))) == SAMPLE, "not all delivered")
            env.wait_all("sent")
            check(not any(v == "failed" for v in env.counts().values()),
                  "a recipient failed")
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
            sink.stop()
    finally:
        env.close()


def case_drop_mid_data():
    """The connection dropped at DATA: temporary; delivered later, once."""
    sink = ms.SmtpSink(disconnect=["DATA"])
    sink.start()
    port = sink.port
    env = Env(f"smtp://127.0.0.1:{port}")
    try:
        env.queue()
        p = env.start()
        env.wait_all("deferred")
        sink.stop()
        sink = ms.SmtpSink(port=port)
        sink.start()
        sink.wait_for(SAMPLE, timeout=60)
        env.wait_all("sent")
        ids = message_ids(sink.messages())
        check(len(ids) == SAMPLE and len(set(ids)) == SAMPLE,
              f"{len(ids)} messages for {len(set(ids))} recipients")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    finally:
        sink.stop()
        env.close()


def case_postfix_maildir():
    """A real Postfix on loopback delivering into a local Maildir: every
    message arrives intact."""
    with ms.SmtpSink() as bounces, \
            ms.Postfix(relayhost=bounces, maildir=True) as pf:
        env = Env(f"smtp://127.0.0.1:{pf.port}")
        try:
            env.queue()
            env.drain()
            ms.wait_until(lambda: len(pf.maildir_messages()) >= SAMPLE, 60,
                          "the Maildir filled")
            out = os.path.join(env.dir, "preview")
            env.herald("preview", "templates/report-launch", "--to",
                       "lists/journalists.yaml", "--out", out)
            for raw in pf.maildir_messages():
                msg = email.message_from_bytes(raw,
                                               policy=email.policy.default)
                to = msg["X-Original-To"] or msg["Delivered-To"]
                with open(os.path.join(out, str(to) + ".eml"), "rb") as f:
                    want = f.read().replace(b"\r\n", b"\n")
                body = raw.split(b"\n\n", 1)[1]
                check(body == want.split(b"\n\n", 1)[1],
                      f"{to}: body differs after Postfix")
                for part in msg.walk():
                    check(not part.defects, f"{to}: {part.defects}")
        finally:
            env.close()


def case_embargo():
    """Queued with --at a few seconds ahead: nothing before, all after."""
    with ms.SmtpSink() as sink:
        env = Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            start = time.time()
            env.queue("--at", "+4s")
            # the store keeps whole seconds: "+4s" must round up, never
            # down (it once counted from time()'s truncated now and let
            # the release leave up to a second early)
            not_before = env.store_sql("SELECT not_before FROM releases")
            check(not_before >= start + 4,
                  f"not_before {not_before} is before queue time "
                  f"{start:.3f} + 4 s")
            p = env.start()
            while time.time() < start + 3:
                check(sink.count() == 0, "a message left before --at")
                time.sleep(0.2)
            got = sink.wait_for(SAMPLE, timeout=30)
            # the first dump's mtime is when its message ended; 20 ms for
            # the file system's coarse clock
            first = min(os.stat(m.path).st_mtime for m in got)
            check(first >= start + 4 - 0.02,
                  f"the first message arrived {first - start:.3f} s after "
                  "queue, before --at +4s")
            check(len(set(message_ids(got))) == SAMPLE, "not all delivered")
            p.send_signal(signal.SIGTERM)
            check(p.wait(timeout=20) == 0, "heraldd did not stop with 0")
        finally:
            env.close()


def case_sigkill():
    """heraldd killed with SIGKILL mid-delivery and restarted: every
    recipient delivered, none lost."""
    with ms.SmtpSink(delays={".": 1}) as sink:
        # timeouts well above the sink's delay: a timeout after the final
        # dot would be a duplicate of its own
        env = Env(f"smtp://127.0.0.1:{sink.port}",
                  daemon="{lease: 3s, grace: 5s, batch: 8}", timeout="60s",
                  relay_extra="  max_connections: 4\n")
        try:
            env.queue()
            p = env.start()
            ms.wait_until(lambda: sink.count() >= 5, 30, "some delivered")
            p.send_signal(signal.SIGKILL)
            p.wait()
            before = sink.count()
            env.drain(timeout=120)
            ms.wait_until(lambda: len(set(message_ids(sink.messages())))
                          >= SAMPLE, 60, "every recipient")
            ids = message_ids(sink.messages())
            dup = len(ids) - len(set(ids))
            print(f"killed after {before} messages; {dup} sent twice "
                  "(the in-flight set at the kill)")
            check(len(set(ids)) == SAMPLE, "a recipient was lost")
            check(dup <= 8, f"{dup} duplicates: more than were in flight")
            c = env.counts()
            check(sum(1 for v in c.values() if v == "sent") == SAMPLE,
                  f"status disagrees: {set(c.values())}")
        finally:
            env.close()


def case_maildir_default():
    """The embedded default transport: a Maildir, no server."""
    env = Env("maildir:" + "PLACEHOLDER")
    try:
        md = os.path.join(env.dir, "outbox")
        with open(env.cfg) as f:
            text = f.read().replace("PLACEHOLDER", md)
        with open(env.cfg, "w") as f:
            f.write(text)
        r = env.queue()
        # no heraldd yet (as in scripts/demo): said plainly, not as an error
        check(b"heraldd is not listening on " in r.stdout and
              b"the release waits in the store until heraldd runs"
              in r.stdout and b"woke heraldd" not in r.stdout,
              f"queue without heraldd said: {r.stdout}")
        env.drain()
        files = os.listdir(os.path.join(md, "new"))
        check(len(files) == SAMPLE, f"{len(files)} files in new/")
        # herald show by address: the same delivery the log names
        who = "shuvalova@example.org"
        row = json.loads(env.herald("log", "--recipient", who, "--format",
                                    "json").stdout.splitlines()[0])
        for extra in ((), ("--release", "report-launch")):
            out = env.herald("show", who, *extra).stdout.decode()
            check(f"delivery:   {row['delivery']}\n" in out and
                  f"<{who}>" in out and "state:      sent" in out,
                  f"herald show {who} {extra}: {out}")
        r = env.herald("show", "nobody@example.org", check_rc=False)
        check(r.returncode == 65 and
              b"no release was sent to nobody@example.org" in r.stderr,
              f"show of an unknown address: {r.returncode} {r.stderr}")
        r = env.herald("show", check_rc=False)
        check(r.returncode == 64 and b"give a delivery number (from herald "
              b"log) or a journalist's address" in r.stderr,
              f"show without an argument: {r.returncode} {r.stderr}")
        r = env.herald("show", "holloway", check_rc=False)
        check(r.returncode == 64 and b"neither a delivery number" in r.stderr,
              f"show holloway: {r.returncode} {r.stderr}")
        check(os.listdir(os.path.join(md, "tmp")) == [], "tmp/ not empty")
        for name in files:
            st = os.stat(os.path.join(md, "new", name))
            check(st.st_mode & 0o077 == 0, f"{name} mode {st.st_mode:o}")
    finally:
        env.close()


def case_password_file():
    """AUTH password from a 0600 file: a world-readable one is refused, and
    the password appears in no log or output."""
    with ms.SmtpSink() as sink:
        secret = "s3cret-Pa55-for-herald-tests"
        transcript.secret(secret)
        env = Env(f"smtp://127.0.0.1:{sink.port}",
                  relay_extra="  user: press\n  password_file: relay.pass\n")
        try:
            pw = os.path.join(env.dir, "relay.pass")
            with open(pw, "w") as f:
                f.write(secret + "\n")
            os.chmod(pw, 0o644)
            p = env.start("--drain")
            rc = p.wait(timeout=30)
            check(rc != 0, "a world-readable password file was accepted")
            check("readable by others" in env.log_text(), env.log_text())
            os.chmod(pw, 0o600)
            env.queue()
            p = env.start("--drain")
            # smtp-sink offers no AUTH: the relay pauses, and --drain
            # waits out a relay's pause (heraldd(8)); the tries are what
            # is judged here
            ms.wait_until(lambda: " paused until " in env.log_text() or
                          p.poll() is not None, 60, "a try with AUTH")
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
            everything = env.log_text() + env.herald("log").stdout.decode()
            check(secret not in everything, "the password was printed")
        finally:
            env.close()


def case_proof():
    """herald proof: one marked message per language to staff, at once,
    nothing queued."""
    with ms.SmtpSink() as sink:
        env = Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            r = env.herald("proof", "templates/report-launch", "--to",
                           "lists/journalists.yaml", "--proof-to",
                           "desk@coalition.example.org")
            got = sink.wait_for(6, timeout=30)
            subjects = set()
            for m in got:
                msg = email.message_from_bytes(m.data,
                                               policy=email.policy.default)
                check(m.recipients == ["desk@coalition.example.org"],
                      f"proof to {m.recipients}")
                subjects.add(str(msg["Subject"])[:10])
            check(subjects == {f"[PROOF {l}]" for l in
                               ("en", "ru", "uk", "de", "cs", "et")},
                  f"subjects {subjects}")
            check(r.stdout.decode().count("proof sent to") == 6,
                  r.stdout.decode())
            # nothing queued: not even a store was made
            r = env.herald("status", check_rc=False)
            check(r.returncode == 66 and not env.store_exists(),
                  f"proof left a store: {r.returncode} {r.stdout}")
        finally:
            env.close()


def case_control_and_reload():
    """The control socket is 0600 and wakes heraldd; SIGHUP reloads the
    config; SIGTERM ends with 0."""
    with ms.SmtpSink() as sink:
        env = Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            p = env.start()
            sock = env.sock
            ms.wait_until(lambda: os.path.exists(sock), 10, "the socket")
            check(os.stat(sock).st_mode & 0o077 == 0,
                  f"socket mode {os.stat(sock).st_mode:o}")
            check(env.pg is not None or
                  os.stat(env.store).st_mode & 0o077 == 0, "store mode")
            t0 = time.time()
            r = env.queue()
            check(b"woke heraldd" in r.stdout and
                  b"not listening" not in r.stdout,
                  f"heraldd was not woken: {r.stdout}")
            sink.wait_for(SAMPLE, timeout=30)
            print(f"delivered {time.time() - t0:.2f} s after queue")
            p.send_signal(signal.SIGHUP)
            ms.wait_until(lambda: "config reloaded" in env.log_text(), 10,
                          "the reload")
            p.send_signal(signal.SIGTERM)
            check(p.wait(timeout=20) == 0, "heraldd did not exit 0")
            check(not os.path.exists(sock), "the socket was left behind")
        finally:
            env.close()


def case_verp():
    """Signed return paths and List-Unsubscribe: the envelope sender and
    the unsubscribe addresses name each delivery with an HMAC that this
    test computes itself from the secret; preview shows the same."""
    import base64
    import hashlib
    import hmac

    secret = b"herald-test-secret-0123456789abcdef"
    dom = "bounces.coalition.example.org"

    def token(kind, key):
        mac = hmac.new(secret, f"herald-verp-v1:{kind}:{key}".encode(),
                       hashlib.sha256).digest()[:10]
        return key + "-" + base64.b32encode(mac).decode().lower()

    with ms.SmtpSink() as sink:
        env = Env(f"smtp://127.0.0.1:{sink.port}",
                  relay_extra=f"bounces:\n  domain: {dom}\n"
                  f"  secret_file: bounce.secret\n"
                  f"  unsubscribe_url: https://coalition.example.org/u/"
                  f"{{token}}\n")
        try:
            env.write_private("bounce.secret", secret + b"\n")
            env.queue()
            env.drain()
            got = sink.wait_for(SAMPLE, timeout=30)
            out = os.path.join(env.dir, "preview")
            env.herald("preview", "templates/report-launch", "--to",
                       "lists/journalists.yaml", "--out", out)
            for m in got:
                msg = email.message_from_bytes(m.data,
                                               policy=email.policy.default)
                key = str(msg["Message-ID"]).strip("<>").split("@")[0]
                check(m.sender == f"bounces+{token('bounces', key)}@{dom}",
                      f"envelope sender {m.sender}")
                lu = " ".join(str(msg["List-Unsubscribe"]).split())
                want = (f"<mailto:unsubscribe+{token('unsubscribe', key)}"
                        f"@{dom}?subject=unsubscribe>, "
                        f"<https://coalition.example.org/u/"
                        f"{token('unsubscribe', key)}>")
                check(lu == want, f"List-Unsubscribe {lu!r}")
                check(str(msg["List-Unsubscribe-Post"]) ==
                      "List-Unsubscribe=One-Click", "List-Unsubscribe-Post")
                with open(os.path.join(out, m.recipients[0] + ".eml"),
                          "rb") as f:
                    check(without_date(f.read()) == without_date(m.data),
                          "differs from herald preview")
            check(secret.decode() not in env.log_text(), "secret logged")
        finally:
            env.close()


def case_real_dsn(by_daemon=False):
    """Real DSNs from a real Postfix, read from a Maildir by `herald bounces
    fetch` (or by heraldd itself): every delivery bounced and its address
    suppressed; a copy with a forged signature changes nothing."""
    secret = b"herald-test-secret-0123456789abcdef"
    dom = "bounces.coalition.example.org"
    with ms.SmtpSink(hard_reject=["RCPT"],
                     hard_reply="550 5.1.1 <x>: Recipient address rejected: "
                     "User unknown in virtual mailbox table") as dest, \
            ms.SmtpSink() as bounces, \
            ms.Postfix(relayhost=dest, bounce_to=bounces) as pf:
        env, md = maildir_env(f"smtp://127.0.0.1:{pf.port}", dom, secret)
        try:
            env.queue()
            env.drain()
            dsns = bounces.wait_for(SAMPLE, timeout=120)
            for i, m in enumerate(dsns):
                check(m.sender == "", f"a DSN from <{m.sender}>")
                with open(os.path.join(md, "new", f"{1700000000 + i}.M{i}.t"),
                          "wb") as f:
                    f.write(m.data)
            # one forged copy: the signature of its return path altered
            forged = re.sub(rb"(bounces\+[0-9a-f]{32}-)([a-z2-7])",
                            lambda x: x.group(1) + (b"a" if x.group(2) != b"a"
                                                    else b"b"),
                            dsns[0].data, count=0)
            check(forged != dsns[0].data, "could not forge")
            with open(os.path.join(md, "new", "1800000000.M0.forged"),
                      "wb") as f:
                f.write(forged)
            if by_daemon:
                env.drain()
                out = env.log_text()
                check(out.count(" suppressed\n") == SAMPLE,
                      f"{out.count(' suppressed')} suppressed")
            else:
                # first on their own: the forged copy, and a valid return
                # path of one delivery reporting another journalist
                first = dsns[0].data
                a = re.search(rb"Final-Recipient: *rfc822; *([^\s]+)", first)
                b = re.search(rb"Final-Recipient: *rfc822; *([^\s]+)",
                              dsns[1].data)
                check(a and b and a.group(1) != b.group(1),
                      "DSNs without Final-Recipient")
                swapped = first.replace(a.group(1), b.group(1))
                victim = b.group(1).decode()
                os.rename(os.path.join(md, "new", "1800000000.M0.forged"),
                          os.path.join(md, "1800000000.M0.forged"))
                keep = os.listdir(os.path.join(md, "new"))
                for n in keep:
                    os.rename(os.path.join(md, "new", n), os.path.join(md, n))
                os.rename(os.path.join(md, "1800000000.M0.forged"),
                          os.path.join(md, "new", "1800000000.M0.forged"))
                with open(os.path.join(md, "new", "1800000001.M1.swapped"),
                          "wb") as f:
                    f.write(swapped)
                before = env.status_line()
                r = env.herald("bounces", "fetch")
                out = r.stdout.decode()
                check("handled 2 messages" in out and
                      "suppressed" not in out.replace("0 suppressed", ""),
                      f"forgeries acted on: {out}")
                check(env.status_line() == before,
                      f"forgeries changed deliveries: {env.status_line()}")
                check(suppression_list(env) == {}, "forgeries suppressed")
                un = events(env, "--unmatched")
                check(sorted((e["type"], e["matched_by"]) for e in un) ==
                      [("bounce", "mismatch"), ("unknown", None)],
                      f"unmatched events: {un}")
                raw = env.herald("bounces", "show",
                                 str(un[0]["event"])).stdout
                check(raw in (forged, swapped), "show: not the message kept")
                for n in keep:
                    os.rename(os.path.join(md, n), os.path.join(md, "new", n))
                r = env.herald("bounces", "fetch")
                out += r.stdout.decode()
                check(f"handled {SAMPLE} messages" in r.stdout.decode(),
                      out[-300:])
                check(out.count("suppressed\n") == SAMPLE,
                      f"{out.count('suppressed')} suppressed")
                ev = events(env)
                check(len(ev) == SAMPLE + 2 and
                      sum(e["matched_by"] == "verp" and e["hard"] is True
                          and e["reason"] == "userunknown" and
                          e["status"] == "5.1.1" for e in ev) == SAMPLE,
                      f"event list: {ev[:3]}")
                csv = env.herald("bounces", "--format", "csv").stdout
                check(csv.count(b"\r\n") == SAMPLE + 3, "csv rows")
                sup = suppression_list(env)
                check(len(sup) == SAMPLE and
                      all(v["reason"] == "bounce: userunknown"
                          for v in sup.values()), f"suppressions: {sup}")
                check(victim in sup, "victim")
                # the next release skips every suppressed address
                rel = other_release(env, "second-release")
                r = env.herald("queue", rel, "--to",
                               "lists/journalists.yaml")
                check(f"{SAMPLE} suppressed addresses skipped" in
                      r.stdout.decode(), r.stdout.decode())
            check("unknown message=1800000000.M0.forged" in out,
                  "the forged bounce was not set aside")
            # total, sent, queued, sending, deferred, failed, bounced, ...
            st = env.status_line()
            check(re.search(rf"\bdone\s+\S+\s+{SAMPLE}(\s+0){{5}}\s+{SAMPLE}"
                            rf"(\s+0){{4}}\s", st), f"status: {st}")
            check(len(os.listdir(os.path.join(md, "new"))) == 0 and
                  len(os.listdir(os.path.join(md, "cur"))) ==
                  SAMPLE + (1 if by_daemon else 2),
                  "the Maildir was not moved to cur/")
            show = env.herald("show", "1").stdout.decode()
            check("state:      bounced" in show, show)
        finally:
            env.close()
            shutil.rmtree(md, ignore_errors=True)


def case_real_dsn_daemon():
    """The same, with heraldd reading the mailbox on its own loop."""
    case_real_dsn(by_daemon=True)


def case_unsubscribe():
    """Unsubscribe requests from the bounce mailbox: mail to the address in
    List-Unsubscribe suppresses that journalist for every later release; a
    journalist's reply saying "unsubscribe" (no token: anyone can write
    one) waits for an admin and does so once `herald suppress confirm`
    confirms it; a reply naming another journalist's message, a thank-you
    reply and a request to an unsubscribe address with a broken signature
    change nothing."""
    secret = b"herald-test-secret-0123456789abcdef"
    dom = "bounces.coalition.example.org"
    with ms.SmtpSink() as sink:
        env, md = maildir_env(f"smtp://127.0.0.1:{sink.port}", dom, secret)
        try:
            env.queue()
            env.drain()
            got = sorted(sink.wait_for(SAMPLE, timeout=30),
                         key=lambda m: m.recipients[0])
            msgs = [email.message_from_bytes(m.data,
                                             policy=email.policy.default)
                    for m in got]

            def mailto(msg):
                lu = str(msg["List-Unsubscribe"])
                return re.search(r"<mailto:([^?>]+)", lu).group(1)

            def put(name, text):
                with open(os.path.join(md, "new", name), "wb") as f:
                    f.write(text.replace("\n", "\r\n").encode())

            j = [m.recipients[0] for m in got]
            # 0: the mailto: of List-Unsubscribe, as a mail client sends it
            put("1.M1.mailto",
                f"From: <{j[0]}>\nTo: <{mailto(msgs[0])}>\n"
                f"Delivered-To: {mailto(msgs[0])}\n"
                f"Subject: unsubscribe\nMessage-ID: <u1@client.test>\n\n"
                f"This message was sent to unsubscribe.\n")
            # 1: a reply to the press release saying unsubscribe
            put("2.M2.reply",
                f"From: Someone <{j[1]}>\nTo: press@coalition.example.org\n"
                f"Subject: Re: {msgs[1]['Subject']}\n"
                f"In-Reply-To: {msgs[1]['Message-ID']}\n"
                f"Message-ID: <u2@client.test>\n\nunsubscribe\n\n"
                f"> The coalition welcomes\n")
            # 2: someone else answering journalist 2's message
            put("3.M3.other",
                f"From: <prankster@elsewhere.test>\n"
                f"To: press@coalition.example.org\n"
                f"Subject: unsubscribe\nIn-Reply-To: {msgs[2]['Message-ID']}\n"
                f"Message-ID: <u3@client.test>\n\nunsubscribe\n")
            # 3: a thank-you reply
            put("4.M4.thanks",
                f"From: <{j[3]}>\nTo: press@coalition.example.org\n"
                f"Subject: Re: {msgs[3]['Subject']}\n"
                f"In-Reply-To: {msgs[3]['Message-ID']}\n"
                f"Message-ID: <u4@client.test>\n\nThank you, we will "
                f"cover the report on Monday.\n")
            # 4: journalist 4's unsubscribe address with a broken signature
            bad = re.sub(r"-([a-z2-7])", lambda x: "-" + (
                "a" if x.group(1) != "a" else "b"), mailto(msgs[4]), count=1)
            check(bad != mailto(msgs[4]), "could not forge")
            put("5.M5.forged",
                f"From: <{j[4]}>\nTo: <{bad}>\nDelivered-To: {bad}\n"
                f"Subject: unsubscribe\nMessage-ID: <u5@client.test>\n\n"
                f"unsubscribe\n")
            r = env.herald("bounces", "fetch")
            out = r.stdout.decode()
            check("handled 5 messages" in out, out)
            sup = suppression_list(env)
            check(set(sup) == {j[0]}, f"suppressed {sorted(sup)}, want {j[0]}")
            ev = {e["recipient"]: e for e in events(env)}
            check(ev[j[0]]["type"] == "unsubscribe" and
                  ev[j[0]]["matched_by"] == "verp", f"{ev.get(j[0])}")
            check(ev[j[1]]["type"] == "unsubscribe" and
                  "waits for an admin" in (ev[j[1]]["held"] or ""),
                  f"{ev.get(j[1])}")
            r = env.herald("suppress", "confirm", str(ev[j[1]]["event"]))
            check(f"suppressed {j[1]}" in r.stdout.decode(),
                  r.stdout.decode())
            sup = suppression_list(env)
            check(set(sup) == {j[0], j[1]},
                  f"suppressed {sorted(sup)}, want {j[0]}, {j[1]}")
            un = events(env, "--unmatched")
            check(any(e["matched_by"] == "mismatch" and
                      e["recipient"] == "prankster@elsewhere.test"
                      for e in un), f"the prank was not set aside: {un}")
            check(any(e["type"] == "unknown" and "forged" in e["diagnostic"]
                      for e in un), f"the forgery was not set aside: {un}")
            # every later release skips them
            rel = other_release(env, "second-release")
            r = env.herald("queue", rel, "--to", "lists/journalists.yaml")
            check("2 suppressed addresses skipped" in r.stdout.decode(),
                  r.stdout.decode())
        finally:
            env.close()
            shutil.rmtree(md, ignore_errors=True)


def case_suppress_cli():
    """herald suppress: add, list, export, import (all or nothing, bad
    lines named by file:line:column), remove; queue honours the list."""
    with ms.SmtpSink() as sink:
        env = Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            a, b = "m.holloway@capitol-ledger.test", "priya.raman@example.com"
            env.herald("suppress", "add", a, "--reason", "asked by phone")
            r = env.herald("suppress", "add", "not an address", a,
                           check_rc=False)
            check(r.returncode == 65 and b"not an address" in r.stderr,
                  f"bad address: {r.returncode} {r.stderr}")
            r = env.herald("suppress", "add", a, "--reason", "x\ny",
                           check_rc=False)
            check(r.returncode == 64, "a reason with a line break accepted")
            sup = suppression_list(env)
            check(list(sup) == [a] and sup[a]["reason"] == "asked by phone",
                  f"list: {sup}")
            bad = os.path.join(env.dir, "bad.txt")
            with open(bad, "w") as f:
                f.write(f"# from the old system\n{b}\n\n  bad@@x.test\n"
                        f"good@example.org\n")
            r = env.herald("suppress", "import", bad, check_rc=False)
            check(r.returncode == 65 and
                  f"{bad}:4:3:".encode() in r.stderr and
                  b"nothing imported" in r.stderr, f"import: {r.stderr}")
            check(list(suppression_list(env)) == [a], "half an import")
            good = os.path.join(env.dir, "good.csv")
            with open(good, "w") as f:
                f.write(f'email,reason,time\r\n"{b}","old list, 2019",'
                        f'2019-05-01T00:00:00Z\r\n"{a}",,\r\n')
            r = env.herald("suppress", "import", good)
            check(b"imported 2 addresses: 1 new, 1 already listed"
                  in r.stdout, r.stdout.decode())
            exp = env.herald("suppress", "export").stdout.decode()
            check(exp.startswith("email,reason,time,rule,evidence\r\n") and
                  f'"{b}","old list, 2019",2019-05-01T00:00:00Z' in exp and
                  f'"{a}","asked by phone",' in exp, exp)
            # the export imports back into another store unchanged
            env2 = os.path.join(env.dir, "other.db")
            path = os.path.join(env.dir, "export.csv")
            with open(path, "w") as f:
                f.write(exp)
            env.herald("suppress", "import", path, "--store", env2)
            exp2 = env.herald("suppress", "export", "--store",
                              env2).stdout.decode()
            check(exp2 == exp, f"round trip: {exp2!r} != {exp!r}")
            r = env.queue()
            check(b"2 suppressed addresses skipped" in r.stdout,
                  r.stdout.decode())
            env.drain()
            got = {m.recipients[0] for m in sink.wait_for(SAMPLE - 2)}
            check(a not in got and b not in got and len(got) == SAMPLE - 2,
                  "mailed a suppressed address")
            r = env.herald("suppress", "remove", a)
            check(f"removed {a}".encode() in r.stdout, r.stdout.decode())
            r = env.herald("suppress", "remove", a, check_rc=False)
            check(r.returncode == 65 and b"not on the suppression list"
                  in r.stderr, "removed twice")
            rel = other_release(env, "second-release")
            r = env.herald("queue", rel, "--to", "lists/journalists.yaml")
            check(b"1 suppressed address skipped" in r.stdout,
                  r.stdout.decode())
        finally:
            env.close()


# ---- the bounce mailbox over IMAP (Dovecot) ---------------------------------

IMAP_SECRET = b"herald-test-secret-0123456789abcdef"
IMAP_DOMAIN = "bounces.coalition.example.org"


def imap_env(relay, dv, ca_path, *, tls="imaps", folder="INBOX",
             move_to="Handled", poll="1h", password=None):
    """An Env whose bounce mailbox is folder on Dovecot dv (over imaps or
    imap with STARTTLS), the test CA trusted, the password in a 0600
    file."""
    imap = (f"  imap:\n    password_file: imap.pass\n"
            f"    ca_file: {ca_path}\n    timeout: 10s\n")
    if move_to:
        imap += f"    move_to: {move_to}\n"
    env = Env(relay, relay_extra=f"bounces:\n  domain: {IMAP_DOMAIN}\n"
              f"  secret_file: bounce.secret\n"
              f"  mailbox: {dv.url(tls, folder)}\n  poll: {poll}\n{imap}")
    env.write_private("bounce.secret", IMAP_SECRET + b"\n")
    env.write_private("imap.pass",
                      (password or dv.password).encode() + b"\n")
    # herald bounces fetch reads into a store that is there (heraldd or a
    # queue makes it; here an empty suppression list does)
    empty = os.path.join(env.dir, "no-suppressions.txt")
    open(empty, "w").close()
    env.herald("suppress", "import", empty)
    return env


def store_count(env, sql):
    return env.store_sql(sql)


def fetch(env, trace=False):
    """herald bounces fetch, with the IMAP trace on stderr if asked."""
    saved = os.environ.get("HERALD_IMAP_TRACE")
    if trace:
        os.environ["HERALD_IMAP_TRACE"] = "1"
    try:
        r = env.herald("bounces", "fetch", check_rc=False)
    finally:
        if saved is None:
            os.environ.pop("HERALD_IMAP_TRACE", None)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def case_real_dsn_imap():
    """Real DSNs from a real Postfix reach heraldd through Dovecot over
    IMAP with TLS (test CA): heraldd, waiting in IDLE (bounces.poll is an
    hour, so only IDLE can explain a prompt read), marks every delivery
    bounced and suppresses its address; a forged copy read first changes
    nothing; handled mail is moved to Handled and not read twice; the next
    release queued skips the suppressed addresses."""
    with ms.SmtpSink(hard_reject=["RCPT"],
                     hard_reply="550 5.1.1 <x>: Recipient address rejected: "
                     "User unknown in virtual mailbox table") as dest, \
            ms.SmtpSink() as bounces, \
            ms.Postfix(relayhost=dest, bounce_to=bounces) as pf, \
            ms.TestCA() as ca:
        cert, key = ca.issue()
        with ms.Dovecot(cert, key, ca=ca.cert_path) as dv:
            env = imap_env(f"smtp://127.0.0.1:{pf.port}", dv, ca.cert_path)
            try:
                env.queue()
                env.start()
                dsns = bounces.wait_for(SAMPLE, timeout=120)
                env.wait_all("sent")
                ms.wait_until(lambda: store_count(
                    env, "SELECT count(*) FROM mailbox_state") == 1, 30,
                    "heraldd's first pass over the mailbox")
                # a forged copy of the first DSN (its return path's
                # signature altered) arrives first: nothing may change
                forged = re.sub(rb"(bounces\+[0-9a-f]{32}-)([a-z2-7])",
                                lambda x: x.group(1) +
                                (b"a" if x.group(2) != b"a" else b"b"),
                                dsns[0].data)
                check(forged != dsns[0].data, "could not forge")
                dv.append(forged)
                ms.wait_until(lambda: "mailbox: unknown" in env.log_text(),
                              30, "heraldd to read the forged DSN (IDLE)")
                check(store_count(env, "SELECT count(*) FROM deliveries "
                                  "WHERE state = 'bounced'") == 0,
                      "a forged DSN bounced a delivery")
                check(store_count(env, "SELECT count(*) FROM suppressions")
                      == 0, "a forged DSN suppressed an address")
                t0 = time.time()
                for m in dsns:
                    check(m.sender == "", f"a DSN from <{m.sender}>")
                    dv.append(m.data)
                ms.wait_until(lambda: env.log_text().count(" suppressed\n")
                              >= SAMPLE, 60,
                              f"heraldd to read {SAMPLE} DSNs over IMAP")
                print(f"read {SAMPLE} DSNs {time.time() - t0:.2f} s after "
                      f"they arrived (bounces.poll is 1h)")
                st = env.status_line()
                check(re.search(rf"\bdone\s+\S+\s+{SAMPLE}(\s+0){{5}}\s+"
                                rf"{SAMPLE}(\s+0){{4}}\s", st),
                      f"status: {st}")
                check(store_count(env, "SELECT count(*) FROM deliveries "
                                  "WHERE state = 'bounced'") == SAMPLE,
                      "not every delivery bounced")
                check(store_count(env, "SELECT count(*) FROM suppressions")
                      == SAMPLE, "not every address suppressed")
                ms.wait_until(lambda: dv.count("Handled") == SAMPLE + 1, 30,
                              "every message moved to Handled")
                check(dv.count("INBOX") == 0, "INBOX not emptied")
                for p in env.procs:
                    p.send_signal(signal.SIGTERM)
                    check(p.wait(timeout=30) == 0, "heraldd did not exit 0")
                # read again: nothing new, nothing recorded twice
                events = store_count(env, "SELECT count(*) FROM events")
                check(events == SAMPLE + 1, f"{events} events")
                rc, out, err = fetch(env)
                check(rc == 0 and "handled 0 messages" in out, out + err)
                check(store_count(env, "SELECT count(*) FROM events") ==
                      events, "events recorded twice")
                # the next release to the same list skips them
                r = env.herald("queue", other_release(env, "second-release"),
                               "--to", "lists/journalists.yaml")
                check(f"{SAMPLE} suppressed addresses skipped" in
                      r.stdout.decode(), r.stdout.decode())
                everything = env.log_text() + out + err
                check(dv.password not in everything, "the password printed")
                login = [l for l in dv.log().splitlines()
                         if "Login: user=<herald>" in l]
                check(login and all(", TLS" in l for l in login),
                      f"a login without TLS: {login}")
            finally:
                env.close()


def case_imap_failures():
    """IMAP failures are reported, exit non-zero and leak no password: a
    wrong password (over STARTTLS); a certificate from another CA, or for
    another address, refused before anything is sent (Dovecot saw no
    login), over imaps and STARTTLS; the server killed in the middle of a
    pass, after which the next pass handles every message exactly once.
    And a message read again (its place in the store lost) is not acted
    on twice."""
    with ms.TestCA() as ca, ms.TestCA("another test CA") as other, \
            ms.SmtpSink() as sink:
        relay = f"smtp://127.0.0.1:{sink.port}"
        cert, key = ca.issue()

        # a wrong password, over imap:// with STARTTLS
        with ms.Dovecot(cert, key, ca=ca.cert_path) as dv:
            wrong = "Wrong-Pa55word-for-herald"
            env = imap_env(relay, dv, ca.cert_path, tls="imap",
                           password=wrong)
            try:
                dv.append(b"Subject: x\r\n\r\nx\r\n")
                rc, out, err = fetch(env, trace=True)
                check(rc != 0, f"a wrong password exited {rc}")
                check(f"LOGIN as {dv.user} refused" in err and
                      f"127.0.0.1:{dv.port}" in err, err)
                check(wrong not in out + err and dv.password not in out + err,
                      "a password printed")
                check("(LOGIN redacted)" in err, "no trace of LOGIN")
                fails = ms.wait_until(
                    lambda: [l for l in dv.log().splitlines()
                             if "auth failed" in l], 10,
                    "Dovecot to log the failed login")
                check(all(", TLS" in l for l in fails),
                      f"LOGIN without STARTTLS: {fails}")
                check(dv.count() == 1, "the message was touched")
            finally:
                env.close()

        # certificates herald must refuse, over imaps and over STARTTLS
        bad = {"another CA": other.issue(),
               "another address": ca.issue(ip="127.0.0.2")}
        want = {"another CA": "not trusted",
                "another address": "not for 127.0.0.1"}
        for what, (bcert, bkey) in bad.items():
            with ms.Dovecot(bcert, bkey) as dv:
                for tls in ("imaps", "imap"):
                    env = imap_env(relay, dv, ca.cert_path, tls=tls)
                    try:
                        rc, out, err = fetch(env, trace=True)
                        check(rc != 0, f"{what} ({tls}) exited {rc}")
                        check(want[what] in err, f"{what} ({tls}): {err}")
                        check("C: (LOGIN redacted)" not in err and
                              " LOGIN " not in err, f"LOGIN sent: {err}")
                        check(dv.password not in out + err, "password")
                    finally:
                        env.close()
                log = dv.log()
                check("user=<herald>" not in log and "auth failed" not in log
                      and "Login:" not in log,
                      f"{what}: Dovecot saw a login attempt:\n{log}")

        # the server killed in the middle of a pass; imap:// (STARTTLS)
        # (enough messages that the pass is surely still going when the
        # server dies after the sixth)
        n = 200
        with ms.Dovecot(cert, key, ca=ca.cert_path) as dv:
            env = imap_env(relay, dv, ca.cert_path, tls="imap")
            try:
                dv.append(*[f"From: MAILER-DAEMON@relay.example\r\n"
                            f"Subject: Undelivered Mail {i}\r\n"
                            f"Message-ID: <dsn{i}@relay.example>\r\n\r\n"
                            f"bounce {i}\r\n".encode() for i in range(n)])
                env_vars = dict(os.environ, HERALD_IMAP_TRACE="1")
                p = subprocess.Popen([A.herald, "bounces", "fetch", "--config",
                                      env.cfg], cwd=A.source, env=env_vars,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                moves, err = 0, b""
                for line in p.stderr:
                    err += line
                    if b" UID MOVE " in line and b"C: " in line:
                        moves += 1
                        if moves == 6:
                            at_kill = int(re.search(rb"UID MOVE (\d+)",
                                                    line).group(1))
                            dv.kill()
                            break
                out, rest = p.communicate(timeout=60)
                # herald goes on while the test reads its trace and kills
                # Dovecot: the MOVEs it sent from the sixth on may all
                # have reached the dying server
                in_flight = {int(u) for u in re.findall(
                    rb"C: [^\n]*UID MOVE (\d+)", err + rest)
                    if int(u) >= at_kill}
                err = (err + rest).decode()
                check(moves == 6, f"{moves} moves seen:\n{err[-2000:]}")
                check(p.returncode != 0, f"exited {p.returncode}")
                check("was lost" in err or "could not be read" in err or
                      "cannot connect" in err, err[-1500:])
                done = store_count(env, "SELECT count(*) FROM events")
                print(f"killed after {done} events")
                check(0 < done < n, f"{done} events before the kill")
                dv.start()
                # as heraldd would: a pass that fails for the moment is
                # tried again. A Dovecot killed in the middle of a MOVE
                # leaves its lock behind, and waits for it to go stale
                # (up to two minutes) before it moves that message; a
                # retried pass must record nothing twice
                deadline = time.monotonic() + 180
                timed_out = []  # UIDs whose MOVE a retried pass gave up
                while True:
                    rc, out2, err2 = fetch(env)
                    if rc != 75 or time.monotonic() > deadline:
                        break
                    print(f"after the restart, tried again: {err2.strip()}")
                    timed_out += [int(u) for u in re.findall(
                        r"UID MOVE of handled UID (\d+)", err2)]
                    if len(timed_out) == 1:
                        # what Dovecot says about it, for whoever reads
                        # a failure here
                        with open(dv.log_path, "rb") as f:
                            print("Dovecot's log so far, its end:\n" +
                                  f.read()[-3000:].decode("utf-8", "replace"))
                    time.sleep(5)
                check(rc == 0, f"after the restart: {rc} {out2} {err2}")
                events = store_count(env, "SELECT count(*) FROM events")
                check(events == n, f"{events} events for {n} messages")
                # Every message is in Handled, none left in INBOX. Extra
                # copies are Dovecot's own: the message being moved at
                # the kill may have been copied before Dovecot died, and
                # a MOVE herald gave up on (its timeout) while the new
                # Dovecot waited for the lock the dead one left is still
                # carried out by that Dovecot process once the lock goes
                # stale. So only those messages may be there twice or
                # more, at most once per MOVE sent for them; their events
                # are recorded once all the same (counted above).
                check(dv.count("INBOX") == 0, f"INBOX {dv.count('INBOX')}")
                ids = [re.search(rb"Message-ID: <dsn(\d+)@", m).group(1)
                       for _, m, _ in dv.messages("Handled")]
                copies = collections.Counter(int(i) for i in ids)
                check(sorted(copies) == list(range(n)),
                      f"Handled lacks {sorted(set(range(n)) - set(copies))}")
                # dsn{i} was appended i-th: UID i + 1
                may_repeat = {u - 1 for u in timed_out + sorted(in_flight)}
                extra = {i: c for i, c in copies.items() if c > 1}
                check(set(extra) <= may_repeat and
                      sum(c - 1 for c in extra.values()) <=
                      len(timed_out) + len(in_flight),
                      f"Handled holds extra copies {extra}; MOVEs given "
                      f"up: UIDs {sorted(timed_out)}; sent from the kill "
                      f"on: UIDs {sorted(in_flight)}")
                print(f"Handled: {len(ids)} messages for {n}; extra copies "
                      f"{extra or 'none'}")
                check(dv.password not in out.decode() + err + out2 + err2,
                      "the password printed")
            finally:
                env.close()

        # kept and flagged \Seen (no move_to); the place lost, as after a
        # crash between recording and saving it: read again, recorded once
        with ms.Dovecot(cert, key, ca=ca.cert_path) as dv:
            env = imap_env(relay, dv, ca.cert_path, folder="Keep",
                           move_to=None)
            try:
                c = dv.client()
                c.create("Keep")
                c.logout()
                dv.append(*[f"Subject: kept {i}\r\n\r\nx\r\n".encode()
                            for i in range(5)], folder="Keep")
                rc, out, err = fetch(env)
                check(rc == 0 and "handled 5 messages: 5 events" in out,
                      out + err)
                kept = dv.messages("Keep")
                check(len(kept) == 5 and all("\\Seen" in f
                                             for _, _, f in kept),
                      f"not kept and flagged: {kept}")
                env.store_rows("UPDATE mailbox_state SET last_uid = 0")
                rc, out, err = fetch(env)
                check(rc == 0 and "handled 5 messages: 0 events" in out,
                      out + err)
                check(store_count(env, "SELECT count(*) FROM events") == 5,
                      "a message read again was recorded again")
                rc, out, err = fetch(env)
                check(rc == 0 and "handled 0 messages" in out, out + err)
            finally:
                env.close()


def case_imap_modes():
    """The ways herald disposes of handled IMAP mail, each against a real
    Dovecot offering only what that way needs: without MOVE, UID COPY +
    \\Deleted + UID EXPUNGE (UIDPLUS), which leaves alone a message another
    client marked \\Deleted; without MOVE or UIDPLUS, COPY + \\Deleted +
    EXPUNGE; no move_to and delete: true, expunged; a folder re-created
    (new UIDVALIDITY, UIDs used again) read from the start; heraldd polling
    a server without IDLE; imap:// to a server without TLS refused unless
    allow_plain, before LOGIN; heraldd started while the server is down
    reads the mailbox once it is up."""

    def dsn(tag):
        return (f"From: MAILER-DAEMON@relay.example\r\n"
                f"Subject: {tag}\r\nMessage-ID: <{tag}@relay.example>\r\n"
                f"\r\nbounce {tag}\r\n").encode()

    def subjects(dv, folder="INBOX"):
        """(subject, flags) of folder's messages, by UID."""
        return [(re.search(rb"^Subject: (\S+)", m, re.M).group(1).decode(),
                 f) for _, m, f in dv.messages(folder)]

    def recorded(env):
        """How often each message (by Subject) has events in the store."""
        if not env.store_exists():  # heraldd has not made it yet
            return collections.Counter()
        raws = [r[0] for r in env.store_rows("SELECT raw FROM events")]
        return collections.Counter(
            re.search(rb"^Subject: (\S+)", r, re.M).group(1).decode()
            for r in raws)

    def commands(trace):
        """The IMAP commands herald sent (tags dropped), in order."""
        return re.findall(r"^imap \S+ C: \S+ (.*)$", trace, re.M)

    def set_imap(env, line):
        """Add line to bounces.imap (the last block of env's config)."""
        with open(env.cfg) as f:
            text = f.read()
        check(text.endswith("    timeout: 10s\n") or
              text.endswith("    move_to: Handled\n"),
              f"bounces.imap is not the end of the config:\n{text}")
        with open(env.cfg, "a") as f:
            f.write(f"    {line}\n")

    def start_traced(env):
        os.environ["HERALD_IMAP_TRACE"] = "1"
        try:
            return env.start()
        finally:
            os.environ.pop("HERALD_IMAP_TRACE", None)

    t_case = time.monotonic()
    with ms.TestCA() as ca, ms.SmtpSink() as sink:
        relay = f"smtp://127.0.0.1:{sink.port}"
        cert, key = ca.issue()

        # 1. no MOVE, UIDPLUS: UID COPY + \Deleted + UID EXPUNGE, which
        # takes only the handled message. kept-1 and kept-2 are handled
        # first in the keep-and-flag mode (the place moves past them);
        # then another client marks kept-1 \Deleted, and herald, now
        # moving, handles three new ones: kept-1 must survive
        with ms.Dovecot(cert, key, ca=ca.cert_path,
                        capability="IMAP4rev1 LITERAL+ UIDPLUS IDLE") as dv:
            env = imap_env(relay, dv, ca.cert_path, move_to=None)
            try:
                dv.append(dsn("kept-1"), dsn("kept-2"))
                rc, out, err = fetch(env)
                check(rc == 0 and "handled 2 messages: 2 events" in out,
                      out + err)
                c = dv.client()
                try:
                    c.select("INBOX")
                    typ, data = c.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
                    check(typ == "OK", f"STORE \\Deleted: {typ} {data}")
                finally:
                    c.logout()  # not CLOSE, which would expunge
                set_imap(env, "move_to: Handled")
                dv.append(dsn("uidplus-1"), dsn("uidplus-2"),
                          dsn("uidplus-3"))
                rc, out, err = fetch(env, trace=True)
                check(rc == 0 and "handled 3 messages: 3 events" in out,
                      out + err[-3000:])
                inbox = subjects(dv)
                check([s for s, _ in inbox] == ["kept-1", "kept-2"] and
                      "\\Deleted" in inbox[0][1],
                      f"INBOX after UID EXPUNGE: {inbox} (kept-1, marked "
                      f"\\Deleted by another client, must stay)")
                check([s for s, _ in subjects(dv, "Handled")] ==
                      ["uidplus-1", "uidplus-2", "uidplus-3"],
                      f"Handled: {subjects(dv, 'Handled')}")
                cmds = commands(err)
                for uid in (3, 4, 5):
                    for want in (f'UID COPY {uid} "?Handled"?',
                                 rf"UID STORE {uid} \+FLAGS\.SILENT "
                                 r"\(\\Seen \\Deleted\)",
                                 f"UID EXPUNGE {uid}"):
                        check(any(re.fullmatch(want, x) for x in cmds),
                              f"no {want!r} sent: {cmds}")
                check(not [x for x in cmds if "MOVE" in x or x == "EXPUNGE"],
                      f"MOVE or a plain EXPUNGE sent: {cmds}")
                rc, out, err = fetch(env)
                check(rc == 0 and "handled 0 messages" in out, out + err)
                got = recorded(env)
                check(got == collections.Counter(
                    ["kept-1", "kept-2", "uidplus-1", "uidplus-2",
                     "uidplus-3"]), f"events: {got}")
            finally:
                env.close()

        # 2. neither MOVE nor UIDPLUS: COPY + \Deleted + EXPUNGE
        with ms.Dovecot(cert, key, ca=ca.cert_path,
                        capability="IMAP4rev1 LITERAL+ IDLE") as dv:
            env = imap_env(relay, dv, ca.cert_path)
            try:
                tags = [f"plain-{i}" for i in range(1, 4)]
                dv.append(*[dsn(t) for t in tags])
                rc, out, err = fetch(env, trace=True)
                check(rc == 0 and "handled 3 messages: 3 events" in out,
                      out + err[-3000:])
                check(subjects(dv) == [], f"INBOX: {subjects(dv)}")
                check([s for s, _ in subjects(dv, "Handled")] == tags,
                      f"Handled: {subjects(dv, 'Handled')}")
                cmds = commands(err)
                for uid in (1, 2, 3):
                    for want in (f'UID COPY {uid} "?Handled"?',
                                 rf"UID STORE {uid} \+FLAGS\.SILENT "
                                 r"\(\\Seen \\Deleted\)"):
                        check(any(re.fullmatch(want, x) for x in cmds),
                              f"no {want!r} sent: {cmds}")
                check(cmds.count("EXPUNGE") == 3, f"EXPUNGEs: {cmds}")
                check(not [x for x in cmds
                           if "MOVE" in x or "UID EXPUNGE" in x],
                      f"MOVE or UID EXPUNGE sent: {cmds}")
                rc, out, err = fetch(env)
                check(rc == 0 and "handled 0 messages" in out, out + err)
                got = recorded(env)
                check(got == collections.Counter(tags), f"events: {got}")
            finally:
                env.close()

        # 3. no move_to, delete: true: expunged, in no folder
        with ms.Dovecot(cert, key, ca=ca.cert_path) as dv:
            env = imap_env(relay, dv, ca.cert_path, move_to=None)
            try:
                set_imap(env, "delete: true")
                tags = [f"delete-{i}" for i in range(1, 4)]
                dv.append(*[dsn(t) for t in tags])
                rc, out, err = fetch(env, trace=True)
                check(rc == 0 and "handled 3 messages: 3 events" in out,
                      out + err[-3000:])
                cmds = commands(err)
                check(not [x for x in cmds if "COPY" in x or "MOVE" in x],
                      f"COPY or MOVE sent: {cmds}")
                c = dv.client()
                try:
                    typ, data = c.list()
                finally:
                    c.logout()
                folders = [x.decode().rsplit(" ", 1)[1].strip('"')
                           for x in data]
                check(folders == ["INBOX"], f"folders: {folders}")
                check(subjects(dv) == [], f"INBOX: {subjects(dv)}")
                got = recorded(env)
                check(got == collections.Counter(tags), f"events: {got}")

                # 4. the folder deleted and re-created (new UIDVALIDITY):
                # its UIDs, all at or below the place saved, read again
                env2 = imap_env(relay, dv, ca.cert_path, folder="Renum")
                try:
                    c = dv.client()
                    try:
                        check(c.create("Renum")[0] == "OK", "CREATE Renum")
                    finally:
                        c.logout()
                    old = [f"old-{i}" for i in range(1, 4)]
                    dv.append(*[dsn(t) for t in old], folder="Renum")
                    rc, out, err = fetch(env2)
                    check(rc == 0 and "handled 3 messages: 3 events" in out,
                          out + err)
                    st = store_count(env2, "SELECT uidvalidity || ' ' || "
                                     "last_uid FROM mailbox_state")
                    uv1, last = map(int, st.split())
                    check(last == 3, f"place saved: {st}")
                    c = dv.client()
                    try:
                        check(c.delete("Renum")[0] == "OK", "DELETE Renum")
                        check(c.create("Renum")[0] == "OK", "CREATE Renum")
                        typ, data = c.status("Renum", "(UIDVALIDITY)")
                    finally:
                        c.logout()
                    uv2 = int(re.search(rb"UIDVALIDITY (\d+)",
                                        data[0]).group(1))
                    check(uv2 != uv1, f"UIDVALIDITY {uv1} kept")
                    new = [f"new-{i}" for i in range(1, 4)]
                    dv.append(*[dsn(t) for t in new], folder="Renum")
                    uids = [u for u, _, _ in dv.messages("Renum")]
                    check(uids == [1, 2, 3], f"UIDs after re-creating: "
                          f"{uids} (the case wants them at or below 3)")
                    rc, out, err = fetch(env2)
                    check(rc == 0 and "handled 3 messages: 3 events" in out,
                          f"after the new UIDVALIDITY: {out}{err}")
                    check(store_count(env2, "SELECT uidvalidity || ' ' || "
                                      "last_uid FROM mailbox_state") ==
                          f"{uv2} 3", "the place not moved to the new folder")
                    rc, out, err = fetch(env2)
                    check(rc == 0 and "handled 0 messages" in out, out + err)
                    got = recorded(env2)
                    check(got == collections.Counter(old + new),
                          f"events: {got}")
                    check(subjects(dv, "Renum") == [],
                          f"Renum: {subjects(dv, 'Renum')}")
                    check(sorted(s for s, _ in subjects(dv, "Handled")) ==
                          sorted(old + new),
                          f"Handled: {subjects(dv, 'Handled')}")
                finally:
                    env2.close()
            finally:
                env.close()

            # 7. heraldd started while the server is down: the failure
            # logged, heraldd still running, the mailbox read once the
            # server is back (after its backoff: bounces.poll 1s,
            # doubling)
            c = dv.client()
            try:
                check(c.create("Later")[0] == "OK", "CREATE Later")
            finally:
                c.logout()
            dv.kill()
            env = imap_env(relay, dv, ca.cert_path, folder="Later",
                           poll="1s")
            try:
                p = env.start()
                ms.wait_until(lambda: "failure 2, next try in 2 s"
                              in env.log_text(), 20,
                              "heraldd to fail twice on the stopped server")
                log = env.log_text()
                check("cannot connect to 127.0.0.1" in log and
                      dv.url("imaps", "Later") in log, log)
                check(p.poll() is None, f"heraldd exited: {log}")
                dv.start()
                dv.append(dsn("later-1"), folder="Later")
                ms.wait_until(lambda: recorded(env) == collections.Counter(
                    ["later-1"]), 30, "heraldd to read the mailbox once "
                    "Dovecot is up")
                # logged when the pass ends, after the event is in the
                # store (the pass still moves the message first)
                ms.wait_until(lambda: re.search(
                    r"mailbox: \S+ read again after \d+ failures",
                    env.log_text()), 10, "the read-again line")
                check(p.poll() is None, "heraldd exited")
            finally:
                env.close()

        # 5. no IDLE offered: heraldd reads mail that comes later by
        # polling (bounces.poll 1s), and never sends IDLE
        with ms.Dovecot(cert, key, ca=ca.cert_path,
                        capability="IMAP4rev1 LITERAL+ UIDPLUS MOVE") as dv:
            env = imap_env(relay, dv, ca.cert_path, poll="1s")
            try:
                start_traced(env)
                # the first pass over the (empty) mailbox ends by saving
                # the place: what comes next needs another pass
                ms.wait_until(lambda: " SELECT " in env.log_text() and
                              store_count(env, "SELECT count(*) FROM "
                                          "mailbox_state") == 1, 20,
                              "heraldd's first pass over the mailbox")
                dv.append(dsn("polled-1"))
                ms.wait_until(lambda: recorded(env) == collections.Counter(
                    ["polled-1"]), 20, "heraldd to read mail by polling")
                ms.wait_until(lambda: dv.count("Handled") == 1, 10,
                              "polled-1 moved to Handled")
                cmds = commands(env.log_text())
                check(len([x for x in cmds if x.startswith("SELECT")]) >= 2,
                      f"not two passes: {env.log_text()[-2000:]}")
                check(not [x for x in cmds if x == "IDLE"],
                      f"IDLE sent to a server without it: {cmds}")
            finally:
                env.close()

        # 6. imap:// to a server with no TLS at all: refused before LOGIN
        # unless allow_plain
        with ms.Dovecot(None, None, ssl="no") as dv:
            env = imap_env(relay, dv, ca.cert_path, tls="imap")
            try:
                dv.append(dsn("plain-text-1"))
                # the test's own session logged in full before herald
                # comes: what Dovecot logs after this is herald's
                ms.wait_until(lambda: dv.log().count("Logged out") ==
                              dv.log().count("Login:") == 1, 10,
                              "Dovecot to log the test's own session")
                seen = len(dv.log())
                rc, out, err = fetch(env, trace=True)
                url = dv.url("imap")
                check(rc != 0, f"no TLS, no allow_plain: exited {rc}")
                check(f"mailbox {url}: the server offers no STARTTLS" in err,
                      err)
                check(not [x for x in commands(err)
                           if x.startswith("LOGIN")] and
                      "(LOGIN redacted)" not in err, f"LOGIN sent: {err}")
                # herald's connection closed without an attempt to log in
                log = ms.wait_until(
                    lambda: (lambda t: t if "no auth attempts" in t
                             else None)(dv.log()[seen:]), 10,
                    "Dovecot to log herald's connection")
                check("Login:" not in log and "auth failed" not in log and
                      "user=<herald>" not in log,
                      f"Dovecot saw a login attempt:\n{log}")
                inbox = subjects(dv)
                check([s for s, _ in inbox] == ["plain-text-1"] and
                      not {"\\Seen", "\\Deleted"} & set(inbox[0][1]),
                      f"touched: INBOX {inbox}")
                check(recorded(env) == collections.Counter(), "events")
                set_imap(env, "allow_plain: true")
                rc, out, err = fetch(env, trace=True)
                check(rc == 0 and "handled 1 message" in out, out + err)
                check("C: (LOGIN redacted)" in err, "no LOGIN traced")
                check(dv.password not in out + err, "the password printed")
                check(recorded(env) == collections.Counter(
                    ["plain-text-1"]), f"events: {recorded(env)}")
                check([s for s, _ in subjects(dv, "Handled")] ==
                      ["plain-text-1"], f"Handled: {subjects(dv, 'Handled')}")
            finally:
                env.close()
    print(f"imap_modes: {time.monotonic() - t_case:.1f} s")


class ImapTap:
    """A plain-text IMAP relay between heraldd and a Dovecot without TLS
    that notes the commands heraldd sends (the command name only: never
    LOGIN's arguments) and, while heraldd waits in IDLE, drops every
    untagged line of the server ("* 1 EXISTS", Dovecot's "* OK Still
    here"): notifications lost, as when a firewall forgets a silent
    connection or the server ends the IDLE unannounced."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lock = threading.Lock()
        self.commands = []  # (monotonic time, command name)
        self.dropped = []  # (monotonic time, the line dropped)
        self.idling = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False),
                             daemon=True).start()

    def _pump(self, src, dst, from_client):
        f = src.makefile("rb")
        try:
            for line in f:
                with self.lock:
                    if from_client:
                        words = line.split()
                        if words[:1] == [b"DONE"]:
                            name = "DONE"
                            self.idling = False
                        else:
                            name = (b" ".join(words[1:3]).decode("ascii",
                                                                 "replace")
                                    if words[1:2] == [b"UID"] else
                                    words[1].decode("ascii", "replace")
                                    if len(words) > 1 else "?")
                            self.idling = name.upper() == "IDLE"
                        self.commands.append((time.monotonic(),
                                              name.upper()))
                    elif self.idling and line.startswith(b"* "):
                        self.dropped.append((time.monotonic(), line))
                        continue
                dst.sendall(line)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def names(self):
        with self.lock:
            return [n for _, n in self.commands]

    def close(self):
        self.sock.close()
        for s in self.conns:
            s.close()


def case_imap_idle_renew():
    """bounces.imap.idle_renew: heraldd waiting in IDLE ends it, reads the
    folder and begins a new IDLE that often, so mail whose notification
    was lost is still read. The server's EXISTS lines are dropped during
    every IDLE: only the renewal can find the bounce."""
    dsn = (b"From: MAILER-DAEMON@relay.example\r\nSubject: renew-1\r\n"
           b"Message-ID: <renew-1@relay.example>\r\n\r\nbounce\r\n")
    with ms.SmtpSink() as sink, ms.Dovecot(None, None, ssl="no") as dv:
        tap = ImapTap(dv.port)
        env = imap_env(f"smtp://127.0.0.1:{sink.port}", dv, "/dev/null",
                       tls="imap")
        try:
            with open(env.cfg) as f:
                text = f.read()
            text = text.replace(dv.url("imap"),
                                dv.url("imap").replace(f":{dv.port}/",
                                                       f":{tap.port}/"))
            check(text.endswith("    move_to: Handled\n"), text)
            with open(env.cfg, "w") as f:
                f.write(text + "    allow_plain: true\n"
                        "    idle_renew: 2s\n")
            p = env.start()
            ms.wait_until(lambda: "IDLE" in tap.names(), 20,
                          "heraldd's first IDLE")
            dv.append(dsn)
            lost = ms.wait_until(lambda: next(
                (t for t, x in tap.dropped if x.endswith(b" EXISTS\r\n")),
                None), 20, "the server's EXISTS during the IDLE")
            ms.wait_until(lambda: store_count(
                env, "SELECT count(*) FROM events") == 1, 30,
                "heraldd to read the bounce after renewing its IDLE")
            ms.wait_until(lambda: dv.count("Handled") == 1, 10,
                          "renew-1 moved to Handled")
            # another renewal after the read: the IDLE keeps being renewed
            n = tap.names().count("IDLE")
            ms.wait_until(lambda: tap.names().count("IDLE") > n, 20,
                          "the IDLE renewed again")
            with tap.lock:
                after = [n for t, n in tap.commands if t > lost]
            check(after[:1] == ["DONE"],
                  f"after the lost EXISTS heraldd sent {after} (DONE "
                  f"first: nothing else could have woken it)")
            check("UID FETCH" in after and "IDLE" in after[1:] and
                  after.index("UID FETCH") < after.index("IDLE", 1),
                  f"no pass between two IDLEs: {after}")
            check(p.poll() is None, "heraldd exited")
            log = env.log_text()
            check("mailbox: bounce" in log or "mailbox: unknown" in log,
                  f"the event not logged: {log[-2000:]}")
        finally:
            tap.close()
            env.close()


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}


def run_cases(g, add_args=None):
    """The main() of a case script (this one, test_secrets.py, ...): its
    case_<name> functions in g (the script's globals()) are the cases; the
    arguments are --herald, --heraldd, --source, what add_args adds, and
    the case to run. Sets A in the script and here (Env reads it), runs
    the case, prints FAIL: or ok:, and returns the exit status."""
    global A
    cases = {n[5:]: f for n, f in g.items() if n.startswith("case_")}
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--heraldd", required=True)
    ap.add_argument("--source", required=True)
    if add_args is not None:
        add_args(ap)
    ap.add_argument("case", choices=sorted(cases))
    a = ap.parse_args()
    if not hasattr(a, "valgrind"):
        a.valgrind = False
    A = g["A"] = a
    failures = (Failure, TimeoutError, g.get("Failure", Failure))
    try:
        cases[a.case]()
    except failures as e:
        print("FAIL:", e)
        return 1
    print("ok:", a.case)
    return 0


def main():
    return run_cases(globals(), lambda ap: ap.add_argument(
        "--valgrind", action="store_true",
        help="run herald and heraldd under valgrind; any error or definite "
        "leak fails the case"))


if __name__ == "__main__":
    sys.exit(main())
