#!/usr/bin/env python3
"""What admins see is true: herald's read commands, status, log and show
against a real store, heraldd and real servers on 127.0.0.1.

`test_admin.py --herald H --heraldd D --source S CASE` (ctest runs each as
admin/CASE):

  missing_store   every command that reads a store, given one that is not
                  there (by --store or by the config), exits 66 naming the
                  path and makes nothing; suppress add and import make one
                  and say where
  config_codes    status reads the config without its secrets (a relay
                  password file others may read is no matter to it), a
                  config with errors is 78, no such release 65, a bad
                  option 64
  status_adds_up  with deliveries in every state, status's columns add up
                  to the total piped, in json and csv, and on terminals
                  from 60 to 250 columns; pending is not deferred; a
                  finished release is done, with its figures
  log_events      a bounce, a complaint and an unsubscribe request read
                  from the bounce mailbox are rows of log and show, with
                  the suppressions they caused; log --state bounced finds
                  the bounced delivery, and --state refuses what it cannot
                  match
  rcpt_unknown    550 5.1.1 at RCPT fails the delivery and suppresses the
                  address: the next release skips it, and says so
  show_and_retry  show says a reply's code once; retry keeps the queued
                  time; no command prints a raw epoch number
  piped_replies   a long reply is cut only to fit a terminal; piped, or
                  with --wide, all of it is printed
"""
import csv
import fcntl
import io
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers as ms  # noqa: E402
import transcript  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import test_delivery as td  # noqa: E402

A = None
SAMPLE = td.SAMPLE
STATES = ["queued", "sending", "sent", "deferred", "failed", "bounced",
          "complained", "expired", "suppressed", "cancelled"]
# the table's headers of each state, full and short
HEADS = {"queued": ("QUEUED", "QUE"), "sending": ("SENDING", "SND"),
         "sent": ("SENT", "SENT"), "deferred": ("DEFERRED", "DEF"),
         "failed": ("FAILED", "FAIL"), "bounced": ("BOUNCED", "BNC"),
         "complained": ("COMPLAINED", "CMPL"), "expired": ("EXPIRED", "EXP"),
         "suppressed": ("SUPPRESSED", "SUPP"),
         "cancelled": ("CANCELLED", "CANC")}
EPOCH = re.compile(r"(?<![\w.:-])1[6-9]\d{8}(?![\w.:])")


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run(*args, cwd=None, env=None):
    """herald with exactly these arguments (no --config added)."""
    r = subprocess.run([A.herald, *args], cwd=cwd or A.source,
                       capture_output=True, timeout=60, env=env)
    transcript.record("herald " + " ".join(args), r.stdout + r.stderr)
    return r


def on_terminal(cols, *args):
    """herald run with its standard output on a terminal cols wide (a
    pseudo-terminal the test makes); (exit status, what it printed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0,
                                                       0))
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    p = subprocess.Popen([A.herald, *args], cwd=A.source, stdout=slave,
                         stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not b:
            break
        out += b
    os.close(master)
    err = p.stderr.read()
    p.wait(timeout=60)
    text = out.decode("utf-8", "replace").replace("\r\n", "\n")
    transcript.record(f"herald {' '.join(args)} (terminal {cols})",
                      out + err)
    return p.returncode, text


def store_sql(env, sql, *params):
    return env.store_rows(sql, params)


def status_json(env, *extra):
    r = env.herald("status", "--format", "json", *extra)
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def table_counts(text):
    """The state columns of status's table, per release id: {id: {state:
    n}}, read by header (full or short); and the TOTAL column."""
    lines = [l for l in text.splitlines() if l.strip()]
    head = lines[0].split()
    out = {}
    for line in lines[1:]:
        if line.startswith("("):
            break  # the key of short headers
        cells = line.split()
        check(len(cells) == len(head),
              f"a row of {len(cells)} cells under {len(head)} headers "
              f"(a name with spaces?):\n{text}")
        row = dict(zip(head, cells))
        rid = int(row["ID"])
        got = {"total": int(row.get("TOTAL", row.get("TOT", "-1")))}
        for st, names in HEADS.items():
            hit = [n for n in names if n in row]
            check(hit, f"no column for {st} in {head}:\n{text}")
            got[st] = int(row[hit[0]])
        out[rid] = got
    return out


# ---- cases -----------------------------------------------------------------


def case_missing_store():
    """Read commands never make a store; suppress add and import do."""
    env, md = td.maildir_env("maildir:{dir}/outbox", "b.example.org",
                             b"admin-test-missing-store-secret-1234")
    try:
        missing = os.path.join(env.dir, "elsewhere", "herald.db")
        reads = [["status"], ["status", "1"], ["log"],
                 ["log", "--format", "json"], ["show", "1"],
                 ["show", "x@example.org"], ["bounces"],
                 ["bounces", "show", "1"], ["bounces", "fetch"],
                 ["suppress", "list"], ["suppress", "export"],
                 ["suppress", "remove", "x@example.org"], ["cancel", "1"],
                 ["pause", "1"], ["resume", "1"],
                 ["retry", "1", "--failed"]]
        for how, path in (("config", env.store), ("--store", missing)):
            for args in reads:
                extra = ["--store", path] if how == "--store" else []
                r = env.herald(*args, *extra, check_rc=False)
                err = r.stderr.decode()
                check(r.returncode == 66 and path in err and
                      "there is no store here" in err,
                      f"herald {' '.join(args)} with no store at {path} "
                      f"({how}): exit {r.returncode}: {err}")
                check(not os.path.exists(path) and
                      not os.path.exists(path + "-wal"),
                      f"herald {' '.join(args)} made a store at {path}")
        check(os.listdir(os.path.join(md, "new")) == [],
              "bounces fetch touched the mailbox")
        # suppress add and import may start the store, and say where
        r = env.herald("suppress", "add", "gone@example.org")
        err = r.stderr.decode()
        check(f"made a new store: {env.store}" in err, err)
        check(os.path.exists(env.store), "suppress add made no store")
        r = env.herald("suppress", "add", "gone2@example.org")
        check(b"made a new store" not in r.stderr, r.stderr.decode())
        lst = os.path.join(env.dir, "old-list.txt")
        with open(lst, "w") as f:
            f.write("old@example.org\n")
        other = os.path.join(env.dir, "imported.db")
        r = env.herald("suppress", "import", lst, "--store", other)
        check(f"made a new store: {other}" in r.stderr.decode() and
              os.path.exists(other), r.stderr.decode())
        # a store that is there is read as before
        r = env.herald("status")
        check(r.returncode == 0 and b"ID" in r.stdout, r.stdout.decode())
    finally:
        env.close()
        shutil.rmtree(md, ignore_errors=True)


def case_config_codes():
    """status needs no secret; exit codes as herald(1) says."""
    env = td.Env("maildir:{dir}/outbox",
                 relay_extra="  user: press\n  password_file: relay.pass\n")
    try:
        pw = os.path.join(env.dir, "relay.pass")
        with open(pw, "w") as f:
            f.write("not-a-real-password-9f3e\n")
        os.chmod(pw, 0o600)
        env.queue()
        os.chmod(pw, 0o644)  # others may read it: heraldd refuses it
        for args in (["status"], ["status", "1"], ["log"], ["show", "1"],
                     ["bounces"], ["suppress", "list"]):
            r = env.herald(*args, check_rc=False)
            check(r.returncode == 0,
                  f"herald {' '.join(args)} with a 0644 password file: "
                  f"exit {r.returncode}: {r.stderr.decode()}")
        p = env.start("--drain")
        check(p.wait(timeout=60) != 0, "heraldd took a 0644 password file")
        os.chmod(pw, 0o600)
        # no such release, delivery, event: 65
        for args in (["status", "nope"], ["show", "9999"],
                     ["log", "--release", "nope"],
                     ["bounces", "show", "77"], ["cancel", "nope"]):
            r = env.herald(*args, check_rc=False)
            check(r.returncode == 65, f"herald {' '.join(args)}: exit "
                  f"{r.returncode}: {r.stderr.decode()}")
        # wrong command line: 64
        for args in (["status", "--format", "xml"],
                     ["log", "--state", "queued"],
                     ["log", "--format", "yaml"], ["status", "--bogus"]):
            r = env.herald(*args, check_rc=False)
            check(r.returncode == 64, f"herald {' '.join(args)}: exit "
                  f"{r.returncode}: {r.stderr.decode()}")
        # a config with errors: 78, not 75
        bad = os.path.join(env.dir, "bad.yaml")
        with open(bad, "w") as f:
            f.write(f"store: {env.store}\nrelya: {{}}\n")
        for args in (["status"], ["log"], ["show", "1"], ["bounces"],
                     ["suppress", "list"], ["pause", "1"]):
            r = run(*args, "--config", bad)
            check(r.returncode == 78 and b"bad.yaml" in r.stderr,
                  f"herald {' '.join(args)} with a bad config: exit "
                  f"{r.returncode}: {r.stderr.decode()}")
        # a store path that is no store: 78
        r = env.herald("status", "--store", env.cfg, check_rc=False)
        check(r.returncode == 78, f"status of a YAML file as the store: "
              f"exit {r.returncode}: {r.stderr.decode()}")
    finally:
        env.close()


def case_status_adds_up():
    """Every state counted, in every form, adding up to the total."""
    env = td.Env("maildir:{dir}/outbox")
    try:
        env.queue()
        env.drain()
        rel = status_json(env)
        check(len(rel) == 1 and rel[0]["state"] == "done" and
              rel[0]["sent"] == SAMPLE and rel[0]["total"] == SAMPLE,
              f"a finished release: {rel}")
        r0 = rel[0]
        check(r0["sent_percent"] == 100.0 and r0["rate"] is None and
              r0["bounce_percent"] == 0.0 and r0["complaints"] == 0 and
              r0["unsubscribes"] == 0 and
              re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                           r0["first_attempt"]) and
              r0["last_attempt"] >= r0["first_attempt"],
              f"figures: {r0}")
        # a second release with deliveries in every state
        second = td.other_release(env, "all-states")
        env.herald("queue", second, "--to", "lists/journalists.yaml")
        want = {"queued": 5, "sending": 4, "sent": 10, "deferred": 6,
                "failed": 3, "bounced": 4, "complained": 2, "expired": 3,
                "suppressed": 5, "cancelled": 5}
        check(sum(want.values()) == SAMPLE, "the test's counts")
        ids = [i for (i,) in store_sql(
            env, "SELECT id FROM deliveries WHERE release_id = 2 "
            "ORDER BY id")]
        at = 0
        for state, n in want.items():
            for i in ids[at:at + n]:
                store_sql(env, "UPDATE deliveries SET state = ? "
                          "WHERE id = ?", state, i)
            at += n
        rel = {r["id"]: r for r in status_json(env)}
        for r in rel.values():
            check(set(STATES) <= set(r) and
                  sum(r[s] for s in STATES) == r["total"],
                  f"json does not add up: {r}")
        check({s: rel[2][s] for s in STATES} == want,
              f"json counts: {rel[2]}")
        check(rel[2]["state"] == "active", f"state: {rel[2]['state']}")
        text = env.herald("status", "--format", "csv").stdout.decode()
        rows = list(csv.DictReader(io.StringIO(text)))
        check(len(rows) == 2, f"csv rows: {text}")
        for row in rows:
            check(sum(int(row[s]) for s in STATES) == int(row["total"]),
                  f"csv does not add up: {row}")
            check(set(row) == set(rel[int(row["id"])]),
                  f"csv and json columns differ: {sorted(row)}")
        # the table: piped (all of it), and on terminals of every width;
        # a row starts with its release's number, as scripts read it
        piped = env.herald("status").stdout.decode()
        check(re.search(rf"^1\s+report-launch\s+done\s+\S+\s+{SAMPLE}\s+"
                        rf"{SAMPLE}\s", piped, re.M),
              f"the first release's row:\n{piped}")
        tables = [("piped", piped)]
        for cols in (60, 80, 100, 120, 160, 250):
            rc, out = on_terminal(cols, "status", "--config", env.cfg)
            check(rc == 0, f"status on {cols} columns: exit {rc}")
            tables.append((f"{cols} columns", out))
        rc, out = on_terminal(80, "status", "--wide", "--config", env.cfg)
        tables.append(("80 columns, --wide", out))
        check("FIRST_ATTEMPT" in out and "LAST_ATTEMPT" in out,
              f"--wide left columns out:\n{out}")
        for how, text in tables:
            got = table_counts(text)
            for rid, counts in got.items():
                check(sum(counts[s] for s in STATES) == counts["total"],
                      f"{how}: release {rid} does not add up:\n{text}")
                check({s: counts[s] for s in STATES} ==
                      {s: rel[rid][s] for s in STATES},
                      f"{how}: release {rid}'s table differs from json:"
                      f"\n{text}")
        for how, text in tables[1:]:
            cols = int(how.split()[0])
            if "--wide" in how or cols < 100:
                continue
            check(all(len(l) <= cols for l in text.splitlines()),
                  f"{how}: a line is wider than the terminal:\n{text}")
        # the watch line: what is left is not called pending
        r = env.herald("status", "1", "--watch")
        line = r.stdout.decode()
        check("left=0 queued=0 sending=0 deferred=0" in line and
              "pending" not in line, f"status --watch: {line}")
    finally:
        env.close()


DSN = """From: MAILER-DAEMON@mx.herald.test
To: <{to}>
Delivered-To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{n}@mx.herald.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="B{n}"

--B{n}
Content-Type: text/plain

This is the mail system at host mx.herald.test.

--B{n}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.herald.test

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected:
 User unknown in virtual mailbox table

--B{n}
Content-Type: text/rfc822-headers

Message-ID: {mid}
To: <{rcpt}>

--B{n}--
"""

ARF = """From: abuse-reports@isp.herald.test
To: <{to}>
Delivered-To: {to}
Subject: complaint about message from 127.0.0.1
Message-ID: <arf-{n}@isp.herald.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
 boundary="C{n}"

--C{n}
Content-Type: text/plain

This is an email abuse report.

--C{n}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: herald-test/1.0
Version: 1
Original-Rcpt-To: <{rcpt}>

--C{n}
Content-Type: message/rfc822

Message-ID: {mid}
To: <{rcpt}>
Subject: the report

The coalition welcomes
--C{n}--
"""


def case_log_events():
    """Bounce, complaint and unsubscribe in log and show."""
    secret = b"herald-admin-test-secret-0123456789"
    dom = "bounces.coalition.example.org"
    with ms.SmtpSink() as sink:
        env, md = td.maildir_env(f"smtp://127.0.0.1:{sink.port}", dom,
                                 secret)
        try:
            env.queue()
            env.drain()
            got = sorted(sink.wait_for(SAMPLE, timeout=30),
                         key=lambda m: m.recipients[0])
            j = [m.recipients[0] for m in got]
            mids = td.message_ids(got)

            def put(name, text):
                with open(os.path.join(md, "new", name), "wb") as f:
                    f.write(text.replace("\n", "\r\n").encode())

            put("1.M1.dsn", DSN.format(to=got[0].sender, rcpt=j[0],
                                       mid=mids[0], n=1))
            put("2.M2.arf", ARF.format(to=got[1].sender, rcpt=j[1],
                                       mid=mids[1], n=2))
            unsub = re.search(rb"List-Unsubscribe:.*?<mailto:([^?>]+)",
                              got[2].data, re.S).group(1).decode()
            put("3.M3.unsub",
                f"From: <{j[2]}>\nTo: <{unsub}>\nDelivered-To: {unsub}\n"
                f"Subject: unsubscribe\nMessage-ID: <u3@client.test>\n\n"
                f"unsubscribe\n")
            r = env.herald("bounces", "fetch")
            check(b"handled 3 messages" in r.stdout, r.stdout.decode())

            want = {j[0]: "bounced", j[1]: "complained",
                    j[2]: "unsubscribed"}
            for who, result in want.items():
                rows = env.attempts("--recipient", who)
                check([x["result"] for x in rows] ==
                      ["sent", result, "suppressed"],
                      f"log --recipient {who}: {rows}")
                ev = rows[1]
                check(ev["event"] and ev["attempt"] is None and
                      ev["relay"] is None and ev["code"] is None,
                      f"an event row: {ev}")
                check("suppression list" in rows[2]["reply"],
                      f"a suppression row: {rows[2]}")
                show = env.herald("show", who).stdout.decode()
                hist = show.split("history:", 1)[1]
                check(re.search(rf"\b{result}\b", hist) and
                      re.search(r"\bsuppressed\b", hist),
                      f"show {who}: {show}")
            bounce = env.attempts("--recipient", j[0])[1]
            check(bounce["status"] == "5.1.1" and bounce["hard"] is True
                  and bounce["reason"] == "userunknown" and
                  "User unknown" in bounce["reply"], f"bounce row {bounce}")
            show = env.herald("show", j[0]).stdout.decode()
            check("state:      bounced" in show and
                  "hard bounce: userunknown" in show, show)
            # --state finds them, and only them
            for result, who in (("bounced", j[0]), ("complained", j[1]),
                                ("unsubscribed", j[2])):
                rows = env.attempts("--state", result)
                check([x["recipient"] for x in rows] == [who],
                      f"log --state {result}: {rows}")
            rows = env.attempts("--state", "suppressed")
            check(sorted(x["recipient"] for x in rows) == sorted(j[:3]),
                  f"log --state suppressed: {rows}")
            check(len(env.attempts("--state", "sent")) == SAMPLE,
                  "log --state sent")
            table = env.herald("log", "--state", "bounced").stdout.decode()
            check("bounced" in table and j[0] in table, table)
            # states log cannot match are refused, naming those it can
            for bad in ("queued", "sending", "cancelled", "pending"):
                r = env.herald("log", "--state", bad, check_rc=False)
                err = r.stderr.decode()
                check(r.returncode == 64 and
                      "sent, deferred, failed, expired, bounced, "
                      "complained, unsubscribed, suppressed" in err,
                      f"log --state {bad}: exit {r.returncode}: {err}")
            # the csv has the same rows
            text = env.herald("log", "--format", "csv").stdout.decode()
            rows = list(csv.DictReader(io.StringIO(text)))
            check(len(rows) == SAMPLE + 6 and
                  sum(x["result"] == "bounced" for x in rows) == 1,
                  f"csv: {len(rows)} rows")
            # a later release: the three are suppressed, each with a row
            rel = td.other_release(env, "second-release")
            r = env.herald("queue", rel, "--to", "lists/journalists.yaml")
            check(b"3 suppressed addresses skipped" in r.stdout,
                  r.stdout.decode())
            rows = env.attempts("--release", "second-release")
            check(sorted(x["recipient"] for x in rows) == sorted(j[:3]) and
                  all(x["result"] == "suppressed" and
                      "not sent" in x["reply"] for x in rows),
                  f"second release's log: {rows}")
            st = status_json(env)
            check(st[1]["bounced"] == 1 and st[1]["complained"] == 1 and
                  st[1]["complaints"] == 1 and st[1]["unsubscribes"] == 1
                  and st[1]["state"] == "done", f"status: {st[1]}")
            check(st[0]["state"] == "active" and st[0]["suppressed"] == 3,
                  f"status: {st[0]}")
        finally:
            env.close()
            shutil.rmtree(md, ignore_errors=True)


def case_rcpt_unknown():
    """550 5.1.1 at RCPT: failed, and suppressed as a hard bounce is."""
    reply = ("550 5.1.1 <x>: Recipient address rejected: User unknown in "
             "virtual mailbox table")
    with ms.SmtpSink(hard_reject=["RCPT"], hard_reply=reply) as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            env.queue()
            env.drain()
            rows = env.attempts("--state", "failed")
            check(len(rows) == SAMPLE and
                  all(x["code"] == 550 and x["status"] == "5.1.1"
                      for x in rows), f"failed rows: {rows[:2]}")
            sup = td.suppression_list(env)
            check(len(sup) == SAMPLE and
                  all(v["reason"] == "refused: userunknown (550 5.1.1)"
                      for v in sup.values()), f"suppressions: {sup}")
            who = rows[0]["recipient"]
            log = [x["result"] for x in env.attempts("--recipient", who)]
            check(log == ["failed", "suppressed"], f"log of {who}: {log}")
            # the next release skips every one of them, and says so
            rel = td.other_release(env, "next-release")
            r = env.herald("queue", rel, "--to", "lists/journalists.yaml")
            check(f"{SAMPLE} suppressed addresses skipped".encode() in
                  r.stdout, r.stdout.decode())
            st = status_json(env)
            check(st[0]["suppressed"] == SAMPLE and st[0]["state"] == "done"
                  and st[1]["failed"] == SAMPLE and
                  st[1]["bounce_percent"] == 100.0, f"status: {st}")
            check(sink.count() == 0, "a message went out")
        finally:
            env.close()
    # a refusal that is not about the address suppresses nothing
    with ms.SmtpSink(hard_reject=["RCPT"],
                     hard_reply="554 5.7.1 <x>: Relay access denied") as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            env.queue()
            env.drain()
            check(len(env.attempts("--state", "failed")) == SAMPLE,
                  "not failed")
            check(td.suppression_list(env) == {},
                  "relay access denied suppressed addresses")
        finally:
            env.close()


def case_show_and_retry():
    """show says each reply once; retry keeps the queued time; no raw
    epoch numbers anywhere."""
    with ms.SmtpSink(hard_reject=["RCPT"],
                     hard_reply="550 5.2.2 <x>: mailbox full") as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            env.queue()
            env.drain()
            show = env.herald("show", "1").stdout.decode()
            last = re.search(r"^last reply: (.*)$", show, re.M)
            check(last and last.group(1).count("550") == 1 and
                  last.group(1).count("5.2.2") == 1,
                  f"show repeats the reply's code: {show}")
            # queued long ago: the retry must not make it look new
            old = 1700000000
            store_sql(env, "UPDATE deliveries SET queued_at = ?", old)
            env.herald("retry", "1", "--failed")
            show = env.herald("show", "1").stdout.decode()
            check("queued:     2023-11-14T22:13:20Z" in show and
                  re.search(r"^retried:    \d{4}-", show, re.M),
                  f"show after retry: {show}")
            (q, r) = store_sql(env, "SELECT queued_at, retried_at FROM "
                               "deliveries WHERE id = 1")[0]
            check(q == old and r > old, f"queued_at {q}, retried_at {r}")
            check(status_json(env)[0]["state"] == "active",
                  "a retried release is not active")
            outs = []
            for args in (["status"], ["status", "--format", "json"],
                         ["status", "--format", "csv"], ["log"],
                         ["log", "--format", "json"],
                         ["log", "--format", "csv"], ["show", "1"],
                         ["bounces"], ["suppress", "list"],
                         ["suppress", "export"]):
                outs.append(env.herald(*args).stdout.decode())
            for text in outs:
                hit = EPOCH.search(text)
                check(hit is None, f"a raw epoch number {hit and hit.group()}"
                      f" in:\n{text[:600]}")
        finally:
            env.close()


def case_piped_replies():
    """Replies are cut only to fit a terminal."""
    tail = "THE-END-OF-THE-REPLY"
    reply = ("550 5.7.1 <x>: Message rejected: " + "policy words " * 20 +
             tail)
    with ms.SmtpSink(hard_reject=["RCPT"], hard_reply=reply) as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            env.queue()
            env.drain()
            for args in (["log"], ["show", "1"]):
                # the table's rows (show's last reply is all there)
                def rows(text):
                    return text.split("REPLY\n", 1)[1]
                text = env.herald(*args).stdout.decode()
                check(tail in rows(text), f"herald {' '.join(args)} piped "
                      f"cut the reply:\n{text[:800]}")
                rc, out = on_terminal(100, *args, "--config", env.cfg)
                check(rc == 0 and tail not in rows(out) and
                      "..." in rows(out),
                      f"herald {' '.join(args)} on 100 columns:\n{out}")
                rc, out = on_terminal(100, *args, "--wide", "--config",
                                      env.cfg)
                check(rc == 0 and tail in rows(out),
                      f"herald {' '.join(args)} --wide cut:\n{out[:800]}")
            # a long address is not cut when piped either
            text = env.herald("log").stdout.decode()
            who = sorted({x["recipient"] for x in env.attempts()}, key=len)
            check(len(who[-1]) > 30, f"no address longer than 30: {who}")
            check(all(w in text for w in who),
                  f"an address was cut:\n{text[:1500]}")
        finally:
            env.close()


if __name__ == "__main__":
    sys.exit(td.run_cases(globals()))
