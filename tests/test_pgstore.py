#!/usr/bin/env python3
"""herald on a PostgreSQL store: a real PostgreSQL 15 server started by each
case in a temporary directory (tests/lib/pgserver.py), herald and heraldd
reaching it over TCP on 127.0.0.1 as the role herald, its password in a
0600 PGPASSFILE.

`test_pgstore.py --herald H --heraldd D --source S CASE` (ctest runs each as
pgstore/CASE):

  address    what an operator may get wrong: a password written into the
             store's address is refused without being echoed; a password
             file others may read is ignored (libpq) and herald says the
             database refused it; a wrong password, a database that does
             not exist, a server that is not there: each its own exit
             status and words, nothing made
  schema     an empty database: reading commands say there is no store
             (66), herald queue makes the schema; a database of someone
             else's tables is refused (78); a schema from a newer herald is
             refused by herald and heraldd (78); herald store migrate on an
             up-to-date store says so
  deliver    the sample release queued into PostgreSQL and delivered by
             heraldd through the Maildir transport: every journalist once,
             and status, log and show say the same as on a SQLite store
  copy       herald store copy: a SQLite store with a delivered release, a
             suppression and a bounce event copied to PostgreSQL and back to
             a new SQLite file; status, log, show, bounces and the
             suppression list are the same on all three; copying into a
             store that is not empty is refused and changes nothing
  two_nodes  two heraldd on one PostgreSQL store send a 400-journalist
             release through smtp-sink: every journalist exactly once,
             both nodes did part of it
  tls        a server that takes TCP clients only over TLS, with a
             certificate from a test CA for 127.0.0.1: sslmode=verify-full
             with that CA queues and reads; with another CA, or without
             TLS, herald is refused and says why, and nothing is made
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers as ms  # noqa: E402
import pgserver  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import test_delivery as td  # noqa: E402
import test_forgery as tf  # noqa: E402

A = None
SAMPLE = td.SAMPLE
Failure = td.Failure
check = td.check


class Server:
    """A PostgreSQL server of the case's own, removed afterwards."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="herald-pg-")
        self.srv = pgserver.PgServer(self.dir).start()
        return self.srv

    def __exit__(self, *exc):
        self.srv.stop(remove=True)


def pg_env(srv, relay="maildir:{dir}/outbox", **cfg):
    env = td.Env(relay, **cfg)
    env.use_pg(srv)
    with open(env.cfg) as f:
        text = f.read()
    with open(env.cfg, "w") as f:
        f.write(re.sub(r"^store: .*$", f"store: {env.store}", text,
                       count=1, flags=re.M))
    return env


def run(*args, env=None):
    r = subprocess.run([A.herald, *args], cwd=A.source, capture_output=True,
                       timeout=120, env=dict(os.environ, **(env or {})))
    return r


def case_address():
    with Server() as srv:
        env = pg_env(srv)
        try:
            secret = srv.password
            # a password in the address: refused, not echoed
            url = f"postgresql://herald:{secret}@127.0.0.1:{srv.port}/x"
            r = run("status", "--store", url)
            out = (r.stdout + r.stderr).decode()
            check(r.returncode == 78 and "holds a password" in out and
                  secret not in out, f"password in URL: {r.returncode} {out}")
            # the right address with the password file: an empty database
            # (no store yet), then queue makes one
            r = run("status", "--store", env.store, env=env.run_env)
            check(r.returncode == 66 and
                  b"no herald store in this database" in r.stderr,
                  f"status on an empty database: {r.returncode} {r.stderr}")
            # a password file others may read: libpq ignores it
            loose = os.path.join(env.dir, "pgpass-loose")
            shutil.copy(env.run_env["PGPASSFILE"], loose)
            os.chmod(loose, 0o644)
            r = run("status", "--store", env.store,
                    env={"PGPASSFILE": loose})
            check(r.returncode == 77 and
                  b"the database refused herald" in r.stderr and
                  secret.encode() not in r.stderr + r.stdout,
                  f"loose password file: {r.returncode} {r.stderr}")
            # a wrong password
            wrong = os.path.join(env.dir, "pgpass-wrong")
            fd = os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, f"127.0.0.1:{srv.port}:*:herald:nope\n".encode())
            os.close(fd)
            r = run("status", "--store", env.store,
                    env={"PGPASSFILE": wrong})
            check(r.returncode == 77 and b"password" in r.stderr,
                  f"wrong password: {r.returncode} {r.stderr}")
            # a database that does not exist: reading 66, queue 73
            nodb = f"postgresql://herald@127.0.0.1:{srv.port}/nosuchdb"
            r = run("status", "--store", nodb, env=env.run_env)
            check(r.returncode == 66 and b"no such database" in r.stderr,
                  f"no database: {r.returncode} {r.stderr}")
            r = run("queue", "templates/report-launch", "--to",
                    "lists/journalists.yaml", "--store", nodb,
                    env=env.run_env)
            check(r.returncode == 73 and b"no such database" in r.stderr,
                  f"queue into no database: {r.returncode} {r.stderr}")
            # no server there: a failure that may pass (75)
            port = pgserver._free_port()
            r = run("status", "--store",
                    f"postgresql://herald@127.0.0.1:{port}/x",
                    env=env.run_env)
            check(r.returncode == 75 and
                  b"cannot reach the store's database server" in r.stderr,
                  f"no server: {r.returncode} {r.stderr}")
            # key=value words work as well as a URL
            words = (f"host=127.0.0.1 port={srv.port} dbname={env.pg_db} "
                     "user=herald")
            env.queue()
            r = run("status", "--store", words, env=env.run_env)
            check(r.returncode == 0 and b"report-launch" in r.stdout,
                  f"key=value store: {r.returncode} {r.stderr}")
        finally:
            env.close()


def case_schema():
    with Server() as srv:
        env = pg_env(srv)
        try:
            r = env.herald("log", check_rc=False)
            check(r.returncode == 66, f"log on empty: {r.returncode}")
            check(srv.sql(env.pg_db, "SELECT count(*) FROM pg_tables WHERE "
                          "schemaname = 'public'").strip() == "0",
                  "a reading command made tables")
            env.queue()
            check(env.store_sql("SELECT version FROM herald_schema") == 2,
                  "schema version")
            r = env.herald("store", "migrate")
            check(b"up to date" in r.stdout, f"migrate: {r.stdout}")
            # a store of the herald before version 2 (no shared rate
            # buckets): refused until herald store migrate, then used
            env.store_rows("DROP TABLE rate_buckets")
            env.store_rows("UPDATE herald_schema SET version = 1")
            for args in (("status",), ("queue", "templates/report-launch",
                                       "--to", "lists/journalists.yaml",
                                       "--only-new")):
                r = env.herald(*args, check_rc=False)
                check(r.returncode in (73, 78) and
                      b'run "herald store migrate" once' in r.stderr,
                      f"{args[0]} on an older schema: {r.returncode} "
                      f"{r.stderr}")
            p = env.start("--drain")
            rc = p.wait(timeout=60)
            check(rc == 73 and 'run "herald store migrate" once' in
                  env.log_text(), f"heraldd on an older schema: {rc} "
                  f"{env.log_text()}")
            r = env.herald("store", "migrate")
            check(b"up to date" in r.stdout and
                  env.store_sql("SELECT version FROM herald_schema") == 2 and
                  env.store_sql("SELECT count(*) FROM rate_buckets") == 0,
                  f"migrate from version 1: {r.stdout} {r.stderr}")
            env.drain()
            check(len(os.listdir(os.path.join(env.dir, "outbox", "new")))
                  == SAMPLE, "not delivered after the migration")
            # someone else's tables
            other = srv.create_db("other_app")
            srv.sql(other, "CREATE TABLE customers (id int)")
            r = run("status", "--store",
                    srv.url(other), env=env.run_env)
            check(r.returncode == 78 and b"not a herald store" in r.stderr,
                  f"foreign tables: {r.returncode} {r.stderr}")
            # a newer herald's schema: refused by herald and heraldd
            srv.sql(env.pg_db, "UPDATE herald_schema SET version = 99")
            r = env.herald("status", check_rc=False)
            check(r.returncode == 78 and b"newer herald" in r.stderr,
                  f"newer schema: {r.returncode} {r.stderr}")
            p = env.start("--drain")
            rc = p.wait(timeout=60)
            check(rc == 73 and "newer herald" in env.log_text(),
                  f"heraldd on a newer schema: {rc} {env.log_text()}")
        finally:
            env.close()


def comparable_log(env):
    """herald log as json, without what differs between two runs (times,
    durations, queue ids)."""
    rows = env.attempts()
    for r in rows:
        for k in ("time", "duration_ms", "queue_id", "at", "relay"):
            r.pop(k, None)
    return sorted(rows, key=lambda r: r["recipient"])


def case_deliver():
    with Server() as srv:
        env = pg_env(srv)
        lite = td.Env("maildir:{dir}/outbox")
        try:
            for e in (env, lite):
                r = e.queue()
                check(b"queued release 1 (report-launch): 47 recipients"
                      in r.stdout, f"queue: {r.stdout}")
                e.drain()
                files = os.listdir(os.path.join(e.dir, "outbox", "new"))
                check(len(files) == SAMPLE, f"{len(files)} messages")
            status = [json.loads(e.herald("status", "--format", "json")
                                 .stdout) for e in (env, lite)]
            for s in status:
                for r in s if isinstance(s, list) else [s]:
                    for k in list(r):
                        if k.endswith("_at") or k.endswith("attempt") or \
                           k in ("rate", "rate_per_s", "source", "store"):
                            r.pop(k)
            check(status[0] == status[1],
                  f"status differs: {status[0]} / {status[1]}")
            logs = [comparable_log(e) for e in (env, lite)]
            check(len(logs[0]) == SAMPLE and logs[0] == logs[1],
                  "log differs between PostgreSQL and SQLite")
            who = "shuvalova@example.org"
            shows = [e.herald("show", who).stdout.decode() for e in
                     (env, lite)]
            for s in shows:
                check("state:      sent" in s, f"show: {s}")
        finally:
            env.close()
            lite.close()


def case_copy():
    with Server() as srv:
        tf.delivered(lambda lite, md, sent: copy_delivered(srv, lite, md,
                                                          sent))


def copy_delivered(srv, lite, md, sent):
    """The copy case on a SQLite store whose release went out through
    smtp-sink, with a hard bounce and a complaint read from its bounce
    mailbox."""
    j = sent.j
    tf.put(md, "1.M1.dsn", tf.dsn(sent.by[j[0]]["sender"], j[0],
                                  delivered_to=sent.by[j[0]]["sender"]))
    tf.put(md, "2.M2.arf", tf.arf(j[1], return_path=sent.by[j[1]]["sender"]))
    tf.fetched(lite, 2)
    pg = pg_env(srv)
    try:
        copy_checks(lite, pg, j)
    finally:
        pg.close()


def copy_checks(lite, pg, j):
    back = os.path.join(lite.dir, "back.db")
    lite.herald("suppress", "add", "gone@example.org", "--reason",
                "left the paper")
    before = {c: lite.herald(*c).stdout for c in
              (("status", "--format", "json"),
               ("log", "--format", "json"),
               ("suppress", "export", "--format", "json"),
               ("bounces", "--format", "json"),
               ("bounces", "show", "1"),
               ("show", j[0]),
               ("show", "shuvalova@example.org"))}
    check(b'"hard":true' in before[("bounces", "--format", "json")]
          .replace(b" ", b""), "no hard bounce to copy")
    r = run("store", "copy", lite.store, pg.store, env=pg.run_env)
    check(r.returncode == 0 and re.search(rb"deliveries +47", r.stdout)
          and re.search(rb"attempts +47", r.stdout)
          and re.search(rb"events +2", r.stdout),
          f"copy to PostgreSQL: {r.returncode} {r.stdout} {r.stderr}")
    r = run("store", "copy", pg.store, back, env=pg.run_env)
    check(r.returncode == 0, f"copy back: {r.returncode} {r.stderr}")
    for store in (pg.store, back):
        for c, want in before.items():
            got = run(*c, "--store", store, env=pg.run_env)
            out = got.stdout
            if c[0] in ("status", "show"):
                # the store's own address is no part of the figures
                out = out.replace(store.encode(), lite.store.encode())
            check(got.returncode == 0 and out == want,
                  f"{' '.join(c)} on {store} differs:\n"
                  f"{out[:600]}\n--- from ---\n{want[:600]}")
    # a release queued after the copy gets the next number
    rel = td.other_release(lite, "after-copy")
    r = run("queue", rel, "--to", "lists/journalists.yaml", "--store",
            pg.store, env=pg.run_env)
    check(r.returncode == 0 and b"queued release 2 (after-copy)" in r.stdout,
          f"queue after copy: {r.returncode} {r.stdout} {r.stderr}")
    # into a store that is not empty: refused, nothing changes
    n = pg.store_sql("SELECT count(*) FROM deliveries")
    r = run("store", "copy", lite.store, pg.store, env=pg.run_env)
    check(r.returncode == 73 and b"not empty" in r.stderr,
          f"copy into a full store: {r.returncode} {r.stderr}")
    check(pg.store_sql("SELECT count(*) FROM deliveries") == n,
          "the refused copy changed the target")
    r = run("store", "copy", os.path.join(lite.dir, "none.db"),
            os.path.join(lite.dir, "x.db"))
    check(r.returncode == 66, f"copy from nothing: {r.returncode}")


def case_tls():
    with ms.TestCA() as ca, ms.TestCA("another CA") as other:
        cert, key = ca.issue()
        d = tempfile.mkdtemp(prefix="herald-pg-")
        srv = pgserver.PgServer(d, tls=(cert, key)).start()
        env = td.Env("maildir:{dir}/outbox")
        try:
            env.use_pg(srv)
            base = srv.url(env.pg_db)
            good = f"{base}?sslmode=verify-full&sslrootcert={ca.cert_path}"
            r = run("queue", "templates/report-launch", "--to",
                    "lists/journalists.yaml", "--store", good,
                    env=env.run_env)
            check(r.returncode == 0 and b"queued release 1" in r.stdout,
                  f"queue over verified TLS: {r.returncode} {r.stderr}")
            r = run("status", "--store", good, env=env.run_env)
            check(r.returncode == 0 and b"report-launch" in r.stdout,
                  f"status over TLS: {r.returncode} {r.stderr}")
            wrong = (f"{base}?sslmode=verify-full&sslrootcert="
                     f"{other.cert_path}")
            r = run("status", "--store", wrong, env=env.run_env)
            check(r.returncode == 75 and b"certificate" in r.stderr and
                  srv.password.encode() not in r.stderr,
                  f"another CA: {r.returncode} {r.stderr}")
            r = run("status", "--store", f"{base}?sslmode=disable",
                    env=env.run_env)
            check(r.returncode != 0 and b"pg_hba.conf" in r.stderr,
                  f"without TLS: {r.returncode} {r.stderr}")
        finally:
            env.close()
            srv.stop(remove=True)


def big_list(path, n):
    with open(path, "w") as f:
        f.write("journalists:\n")
        for i in range(n):
            f.write(f"  - {{name: Reporter {i}, email: r{i}@news{i % 7}"
                    f".example, language: en}}\n")


def case_two_nodes():
    n = 400
    with Server() as srv, ms.SmtpSink() as sink:
        env = pg_env(srv, f"smtp://127.0.0.1:{sink.port}",
                     daemon="{lease: 30s, grace: 5s, batch: 8}")
        try:
            lst = os.path.join(env.dir, "big.yaml")
            big_list(lst, n)
            env.herald("queue", "templates/report-launch", "--to", lst)
            nodes = [env.start("--drain") for _ in range(2)]
            for p in nodes:
                rc = p.wait(timeout=300)
                check(rc == 0, f"heraldd exited {rc}: {env.log_text()}")
            msgs = sink.messages()
            ids = td.message_ids(msgs)
            check(len(ids) == n and len(set(ids)) == n,
                  f"{len(ids)} messages, {len(set(ids))} distinct of {n}")
            per = [sum(1 for line in open(log)
                       if " result=sent " in line)
                   for log in env.logs]
            check(all(k > 0 for k in per) and sum(per) == n,
                  f"sent per node: {per}")
        finally:
            env.close()


def main():
    return td.run_cases(globals())


if __name__ == "__main__":
    sys.exit(main())
