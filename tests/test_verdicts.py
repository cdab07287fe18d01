#!/usr/bin/env python3
"""Bounce verdicts an admin can trust: each says why, and each suppression
keeps its rule and evidence.

`test_verdicts.py --herald H --heraldd D --source S CASE` (ctest runs each
as verdicts/CASE):

  explain_hard    `herald bounces explain` on a DSN with Status 5.1.1 and
                  Postfix's "User unknown in local recipient table": hard,
                  rule status+text, what herald does, the evidence as the
                  line of the file it was read from; the json keys as
                  herald(1) lists them
  explain_policy  a 550 5.7.1 refusal by policy: neither, rule sender-side,
                  changes nothing
  explain_full    552 5.2.2 mailbox full: soft, counting toward the soft
                  limit of the config given; an mbox's messages each with
                  the line of the file; text from outside escaped; a file
                  that is not there exits 66 naming it
  fetch_hard      a hard bounce carrying herald's token, fetched from the
                  Maildir bounce mailbox, suppresses; suppress list and
                  bounces show its rule and the line it was read from
  admin_import    suppress add gives rule admin with the reason; import
                  gives rule import and FILE:LINE; an export from before
                  rules (three columns) still imports; an export imports
                  back with its rules; CSV cells cannot start a formula
  old_store       a store at schema version 6 (before rules) opens,
                  migrates to 7, keeps its entries without a rule, and
                  records rules from then on
  soft_limit      soft bounces with a token reaching bounces.soft_limit
                  suppress with rule soft-limit, naming the count, the
                  window and the events
  rcpt_unknown    550 5.1.1 "User unknown in local recipient table" at RCPT
                  during delivery suppresses with the verdict's rule and
                  the server's reply as evidence
  rcpt_policy     550 5.7.1 refused by policy at RCPT: nobody suppressed
  rcpt_full       552 5.2.2 mailbox full at RCPT: nobody suppressed, no
                  delivery bounced
"""
import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers as ms  # noqa: E402
import transcript  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import test_delivery as td  # noqa: E402

A = None
SECRET = b"herald-verdicts-secret-0123456789abcdef"
DOM = "bounces.coalition.example.org"
check = td.check
# the keys of `herald bounces explain --format json`, in order (herald(1))
EXPLAIN_KEYS = ["file", "message", "type", "recipient", "verdict", "effect",
                "reason", "rule", "why", "status", "reply", "command",
                "evidence", "evidence_line", "soft_limit", "soft_window",
                "acts"]
UNKNOWN_TEXT = ("Recipient address rejected: User unknown in local "
                "recipient table")
POLICY_TEXT = "Recipient address rejected: rejected by policy"


def dsn(to, rcpt, status, reply, n=1):
    """A Postfix DSN sent to `to` about rcpt: Status `status`, and the
    server's reply `reply` in the text and, on one line, in the
    Diagnostic-Code."""
    return (
        f"Return-Path: <>\nDelivered-To: {to}\n"
        f"From: MAILER-DAEMON@mx.elsewhere.test (Mail Delivery System)\n"
        f"To: {to}\nSubject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: <dsn{n}.verdicts@mx.elsewhere.test>\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type=delivery-status;\n"
        f" boundary=\"V{n}\"\n\n"
        f"--V{n}\nContent-Type: text/plain\n\n"
        f"This is the mail system at host mx.elsewhere.test.\n\n"
        f"<{rcpt}>: host mx.elsewhere.test[192.0.2.25] said: {reply}\n"
        f"    (in reply to RCPT TO command)\n\n"
        f"--V{n}\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mx.elsewhere.test\n\n"
        f"Final-Recipient: rfc822; {rcpt}\n"
        f"Original-Recipient: rfc822;{rcpt}\n"
        f"Action: failed\nStatus: {status}\n"
        f"Remote-MTA: dns; mx.elsewhere.test\n"
        f"Diagnostic-Code: smtp; {reply}\n\n"
        f"--V{n}\nContent-Type: text/rfc822-headers\n\n"
        f"From: press@coalition.example.org\nTo: {rcpt}\n"
        f"Subject: report\n\n--V{n}--\n")


def herald(*args, cwd=None):
    """herald with exactly these arguments (no --config added)."""
    env = dict(os.environ, COLUMNS="250")
    env.pop("HERALD_CONFIG", None)
    r = subprocess.run([A.herald, *args], cwd=cwd or tempfile.gettempdir(),
                       capture_output=True, timeout=60, env=env)
    transcript.record("herald " + " ".join(args), r.stdout + r.stderr)
    return r


def explain(*args):
    """`herald bounces explain ARGS --format json` as a list of objects;
    fails unless it exits 0."""
    r = herald("bounces", "explain", "--format", "json", *args)
    check(r.returncode == 0, f"explain {args}: exit {r.returncode}: "
          f"{r.stderr.decode()}")
    out = [json.loads(line) for line in r.stdout.decode().splitlines()]
    for o in out:
        check(list(o) == EXPLAIN_KEYS, f"explain's keys: {list(o)}")
    return out


def file_lines(path):
    """The lines of a file as herald counts them (LF, CRLF or CR)."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace").splitlines()


def check_evidence(o, path, want):
    """o's evidence is the line evidence_line of path, a Status or
    Diagnostic-Code field holding want."""
    ev, n = o["evidence"], o["evidence_line"]
    check(ev is not None and n is not None,
          f"no evidence: {o} (the bounce reader gives none)")
    lines = file_lines(path)
    check(1 <= n <= len(lines) and lines[n - 1] == ev,
          f"evidence_line {n} of {path} is "
          f"{lines[n - 1] if 1 <= n <= len(lines) else None!r}, "
          f"not {ev!r}")
    check(re.match(r"(Status|Diagnostic-Code):", ev) and want in ev,
          f"evidence {ev!r} is not a Status or Diagnostic-Code line "
          f"with {want!r}")


def write(path, text, crlf=False):
    with open(path, "wb") as f:
        f.write((text.replace("\n", "\r\n") if crlf else text).encode())
    return path


# ---- explain ----------------------------------------------------------------


def case_explain_hard():
    with tempfile.TemporaryDirectory(prefix="herald-verdicts-") as d:
        rcpt = "j.doe@example.net"
        reply = f"550 5.1.1 <{rcpt}>: {UNKNOWN_TEXT}"
        path = write(os.path.join(d, "unknown.eml"),
                     dsn("bounces@" + DOM, rcpt, "5.1.1", reply))
        (o,) = explain(path)
        check(o["type"] == "bounce" and o["recipient"] == rcpt and
              o["verdict"] == "hard" and o["rule"] == "status+text" and
              o["reason"] == "userunknown" and o["status"] == "5.1.1" and
              o["reply"] == 550 and o["command"] == "RCPT" and
              o["message"] is None, f"explain: {o}")
        check(o["effect"] == "suppressed at once when it carries herald's "
              "token", f"effect: {o['effect']}")
        check(o["why"] and "token" in o["acts"] and
              "herald bounces --unmatched" in o["acts"], f"why/acts: {o}")
        check_evidence(o, path, "5.1.1")
        # the table says the same in words, with the line
        r = herald("bounces", "explain", path)
        text = r.stdout.decode()
        check(r.returncode == 0, f"exit {r.returncode}: {r.stderr}")
        for want in ("verdict:   hard", "rule:      status+text: ",
                     o["why"], "what acts: only",
                     f"evidence:  line {o['evidence_line']}: "
                     f"{o['evidence']}",
                     "herald:    suppressed at once when it carries "
                     "herald's token", "status:    5.1.1", "reply:     550",
                     "command:   RCPT", "reason:    userunknown"):
            check(want in text, f"{want!r} not in:\n{text}")
        # the same file with CRLF line ends: the same line
        crlf = write(os.path.join(d, "unknown-crlf.eml"),
                     dsn("bounces@" + DOM, rcpt, "5.1.1", reply), crlf=True)
        (o2,) = explain(crlf)
        check(o2["evidence_line"] == o["evidence_line"],
              f"CRLF: line {o2['evidence_line']}, LF: {o['evidence_line']}")


def case_explain_policy():
    with tempfile.TemporaryDirectory(prefix="herald-verdicts-") as d:
        rcpt = "p.jones@example.net"
        path = write(os.path.join(d, "policy.eml"),
                     dsn("bounces@" + DOM, rcpt, "5.7.1",
                         f"550 5.7.1 <{rcpt}>: {POLICY_TEXT}"))
        (o,) = explain(path)
        check(o["verdict"] == "neither" and o["rule"] == "sender-side" and
              o["effect"] == "changes nothing" and o["status"] == "5.7.1"
              and o["reply"] == 550, f"explain: {o}")
        check_evidence(o, path, "5.7.1")
        text = herald("bounces", "explain", path).stdout.decode()
        check("verdict:   neither: it says nothing about the address" in text
              and "herald:    changes nothing" in text, text)


def case_explain_full():
    with tempfile.TemporaryDirectory(prefix="herald-verdicts-") as d:
        rcpt = "f.full@example.net"
        msg = dsn("bounces@" + DOM, rcpt, "5.2.2",
                  f"552 5.2.2 <{rcpt}>: Mailbox full")
        path = write(os.path.join(d, "full.eml"), msg)
        # the defaults, with no configuration at all
        (o,) = explain(path)
        check(o["verdict"] == "soft" and o["reason"] == "mailboxfull" and
              o["effect"] == "counts toward the soft limit (3 within 30 "
              "days)" and o["soft_limit"] == 3 and
              o["soft_window"] == 30 * 86400, f"explain: {o}")
        check_evidence(o, path, "5.2.2")
        # the soft limit of the configuration given
        cfg = write(os.path.join(d, "herald.yaml"),
                    f"store: {d}/herald.db\nbounces:\n  domain: {DOM}\n"
                    f"  secret_file: bounce.secret\n  soft_limit: 2\n"
                    f"  soft_window: 10d\n")
        (o,) = explain(path, "--config", cfg)
        check(o["effect"] == "counts toward the soft limit (2 within 10 "
              "days)" and o["soft_limit"] == 2, f"with {cfg}: {o}")
        text = herald("bounces", "explain", path, "--config",
                      cfg).stdout.decode()
        check("herald:    counts toward the soft limit (2 within 10 days)"
              in text, text)
        # an mbox: each message, its line in the file; a diagnostic with
        # an escape sequence is shown, not obeyed
        bad = dsn("bounces@" + DOM, "e.esc@example.net", "5.1.1",
                  "550 5.1.1 <e.esc@example.net>: \x1b[2J" + UNKNOWN_TEXT,
                  n=2)
        mbox = write(os.path.join(d, "two.mbox"),
                     "From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n" + msg +
                     "\nFrom MAILER-DAEMON Mon Jan  1 00:00:01 2024\n" + bad)
        out = explain(mbox)
        check([o["message"] for o in out] == [1, 2] and
              [o["recipient"] for o in out] ==
              [rcpt, "e.esc@example.net"], f"mbox: {out}")
        check_evidence(out[0], mbox, "5.2.2")
        # (the reader may keep the control character or drop it)
        lines = file_lines(mbox)
        n = out[1]["evidence_line"]
        check(n > len(msg.splitlines()) and
              lines[n - 1].startswith("Diagnostic-Code: smtp; 550 5.1.1"),
              f"the second message's line is not the file's: {out[1]}")
        r = herald("bounces", "explain", mbox)
        check(b"\x1b" not in r.stdout and b"[2J" in r.stdout,
              f"the escape reached the terminal: {r.stdout!r}")
        check(b"two.mbox, message 2: bounce" in r.stdout, r.stdout.decode())
        # a file that is not there: 66, named; the others still explained
        gone = os.path.join(d, "gone.eml")
        r = herald("bounces", "explain", gone, path)
        check(r.returncode == 66 and gone.encode() in r.stderr and
              b"f.full@example.net" in r.stdout,
              f"missing file: exit {r.returncode}: {r.stderr!r}")
        r = herald("bounces", "parse", gone)
        check(r.returncode == 66, f"parse of a missing file: exit "
              f"{r.returncode}")


# ---- the bounce mailbox -----------------------------------------------------


def bounce_env(relay, extra=""):
    """An Env with a Maildir bounce mailbox (returned too) and signed return
    paths; extra: more lines of its bounces section."""
    md = tempfile.mkdtemp(prefix="herald-mbox-")
    for sub in ("new", "cur", "tmp"):
        os.mkdir(os.path.join(md, sub))
    env = td.Env(relay, relay_extra=f"bounces:\n  domain: {DOM}\n"
                 f"  secret_file: bounce.secret\n  mailbox: maildir:{md}\n"
                 f"{extra}")
    env.write_private("bounce.secret", SECRET + b"\n")
    return env, md


def delivered(fn, extra=""):
    """fn(env, md, senders) after the sample release went to smtp-sink with
    signed return paths; senders: {journalist: return path}."""
    with ms.SmtpSink() as sink:
        env, md = bounce_env(f"smtp://127.0.0.1:{sink.port}", extra)
        try:
            env.queue()
            env.drain()
            got = sink.wait_for(td.SAMPLE, timeout=30)
            senders = {m.recipients[0]: m.sender for m in got}
            check(all(s.startswith("bounces+") for s in senders.values()),
                  "no signed return paths")
            fn(env, md, senders)
        finally:
            env.close()
            shutil.rmtree(md, ignore_errors=True)


def put(md, name, text):
    path = os.path.join(md, "new", name)
    write(path, text, crlf=True)
    return path


def case_fetch_hard():
    def run(env, md, senders):
        j = sorted(senders)[0]
        text = dsn(senders[j], j, "5.1.1", f"550 5.1.1 <{j}>: {UNKNOWN_TEXT}")
        path = put(md, "1.M1.hard", text)
        lines = file_lines(path)
        r = env.herald("bounces", "fetch")
        check(b"handled 1 message" in r.stdout and b"1 suppressed" in
              r.stdout, r.stdout.decode())
        ev = [e for e in td.events(env) if e["recipient"] == j]
        check(len(ev) == 1 and ev[0]["rule"] == "status+text" and
              ev[0]["matched_by"] == "verp", f"events: {ev}")
        m = re.fullmatch(r"line (\d+): (.*)", ev[0]["evidence"] or "")
        check(m and lines[int(m.group(1)) - 1] == m.group(2) and
              "5.1.1" in m.group(2), f"event evidence {ev[0]['evidence']!r}")
        sup = td.suppression_list(env)
        check(list(sup) == [j], f"suppressed: {sorted(sup)}")
        s = sup[j]
        check(s["rule"] == "status+text" and
              s["evidence"] == f"event {ev[0]['event']}, "
              f"{ev[0]['evidence']}" and
              s["reason"] == "bounce: userunknown", f"suppression: {s}")
        # the table and the CSV say it too; the CSV's columns are the
        # json's keys
        table = env.herald("suppress", "list").stdout.decode()
        check(re.search(rf"{re.escape(j)}\s+status\+text\s+bounce: "
                        rf"userunknown\s+event {ev[0]['event']}, line ",
                        table), table)
        text = env.herald("bounces", "--format", "csv").stdout.decode()
        rows = list(csv.DictReader(io.StringIO(text)))
        check(list(rows[0]) == list(ev[0]) and
              [r["rule"] for r in rows if r["recipient"] == j] ==
              ["status+text"], f"csv: {rows[:1]}")
        # what the admin asks explain about the file kept with the event
        raw = os.path.join(env.dir, "event.eml")
        with open(raw, "wb") as f:
            f.write(env.herald("bounces", "show",
                               str(ev[0]["event"])).stdout)
        (o,) = explain(raw)
        check(o["rule"] == "status+text" and
              f"line {o['evidence_line']}: {o['evidence']}" ==
              ev[0]["evidence"], f"explain {o} against {ev[0]}")
    delivered(run)


def case_soft_limit():
    def run(env, md, senders):
        j = sorted(senders)[1]
        for n in (1, 2):
            put(md, f"{n}.M{n}.full",
                dsn(senders[j], j, "5.2.2", f"552 5.2.2 <{j}>: Mailbox full",
                    n=n))
        r = env.herald("bounces", "fetch")
        check(b"handled 2 messages" in r.stdout and b"1 suppressed" in
              r.stdout, r.stdout.decode())
        ev = [e for e in td.events(env) if e["recipient"] == j]
        check(len(ev) == 2 and all(e["hard"] is False and
                                   e["rule"] == "recipient-side"
                                   for e in ev), f"events: {ev}")
        s = td.suppression_list(env)[j]
        check(s["rule"] == "soft-limit" and s["evidence"] ==
              f"2 soft bounces within 10 days: events {ev[0]['event']}, "
              f"{ev[1]['event']}", f"suppression: {s}")
        # explain, with this config, says the same limit
        (o,) = explain(os.path.join(md, "cur", os.listdir(
            os.path.join(md, "cur"))[0]), "--config", env.cfg)
        check(o["effect"] == "counts toward the soft limit (2 within 10 "
              "days)", f"explain: {o}")
    delivered(run, extra="  soft_limit: 2\n  soft_window: 10d\n")


# ---- what admins add --------------------------------------------------------


def case_admin_import():
    env = td.Env("maildir:{dir}/outbox")
    try:
        env.herald("suppress", "add", "a.phone@example.org", "--reason",
                   "asked by phone")
        env.herald("suppress", "add", "f.formula@example.org", "--reason",
                   "=HYPERLINK(\"http://x.test\")")
        plain = write(os.path.join(env.dir, "plain.txt"),
                      "# from the old system\n\nb.plain@example.org\n")
        old = write(os.path.join(env.dir, "old.csv"),
                    'email,reason,time\r\n"c.old@example.org","left",'
                    '2019-05-01T00:00:00Z\r\n')
        env.herald("suppress", "import", plain)
        env.herald("suppress", "import", old)
        sup = td.suppression_list(env)
        want = {"a.phone@example.org": ("admin", "asked by phone"),
                "f.formula@example.org":
                    ("admin", "=HYPERLINK(\"http://x.test\")"),
                "b.plain@example.org": ("import", f"{plain}:3"),
                "c.old@example.org": ("import", f"{old}:2")}
        got = {k: (v["rule"], v["evidence"]) for k, v in sup.items()}
        check(got == want, f"suppressions: {got}")
        check(sup["c.old@example.org"]["reason"] == "left" and
              sup["c.old@example.org"]["time"] == "2019-05-01T00:00:00Z",
              f"old export: {sup['c.old@example.org']}")
        # an export has the columns, guarded against formulas, and
        # imports back elsewhere with its rules and evidence
        exp = env.herald("suppress", "export").stdout.decode()
        cells = list(csv.reader(io.StringIO(exp)))
        check(cells[0] == ["email", "reason", "time", "rule", "evidence"],
              f"header {cells[0]}")
        for row in cells[1:]:
            check(all(c == "" or c[0] not in "=+-@" for c in row),
                  f"a cell starts a formula: {row}")
        path = write(os.path.join(env.dir, "export.csv"), exp)
        other = os.path.join(env.dir, "other.db")
        env.herald("suppress", "import", path, "--store", other)
        back = env.herald("suppress", "list", "--format", "json", "--store",
                          other).stdout.decode().splitlines()
        back = {json.loads(l)["email"]: (json.loads(l)["rule"],
                                         json.loads(l)["evidence"])
                for l in back}
        check(back == want, f"imported back: {back}")
        check(env.herald("suppress", "export", "--store",
                         other).stdout.decode() == exp, "round trip")
        # a rule that is no rule's name is refused with its place
        bad = write(os.path.join(env.dir, "bad.csv"),
                    'email,reason,time,rule,evidence\r\n'
                    '"d@example.org","x",,"not a rule!","y"\r\n')
        r = env.herald("suppress", "import", bad, check_rc=False)
        check(r.returncode == 65 and f"{bad}:2:".encode() in r.stderr,
              f"bad rule: exit {r.returncode}: {r.stderr!r}")
    finally:
        env.close()


def case_old_store():
    env = td.Env("maildir:{dir}/outbox")
    try:
        env.queue()
        env.herald("suppress", "add", "old.entry@example.org", "--reason",
                   "kept")
        db = sqlite3.connect(env.store)
        check(db.execute("PRAGMA user_version").fetchone()[0] == 7,
              "this herald's schema is not 7")
        # the store as migration 6 left it: no rule, no evidence
        db.executescript("ALTER TABLE events DROP COLUMN rule;"
                         "ALTER TABLE events DROP COLUMN evidence;"
                         "ALTER TABLE suppressions DROP COLUMN rule;"
                         "ALTER TABLE suppressions DROP COLUMN evidence;"
                         "PRAGMA user_version = 6;")
        db.close()
        sup = td.suppression_list(env)
        check(sup["old.entry@example.org"]["rule"] is None and
              sup["old.entry@example.org"]["evidence"] is None and
              sup["old.entry@example.org"]["reason"] == "kept",
              f"after the migration: {sup}")
        db = sqlite3.connect(env.store)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        cols = {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
                for t in ("events", "suppressions")}
        db.close()
        check(version == 7 and all({"rule", "evidence"} <= set(c)
                                   for c in cols.values()),
              f"version {version}, columns {cols}")
        table = env.herald("suppress", "list").stdout.decode()
        check(re.search(r"old\.entry@example\.org\s+-\s+kept\s+-", table),
              table)
        env.herald("suppress", "add", "new.entry@example.org")
        check(td.suppression_list(env)["new.entry@example.org"]["rule"] ==
              "admin", "no rule after the migration")
        env.drain()
        check(env.herald("status").returncode == 0, "status")
    finally:
        env.close()


# ---- refusals at RCPT during delivery ---------------------------------------


def refused(reply, fn):
    """The sample release to an smtp-sink that answers reply to every RCPT
    TO; fn(env, rc) after one heraldd --drain (rc its exit status)."""
    with ms.SmtpSink(hard_reject=["RCPT"], hard_reply=reply) as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            env.queue()
            p = env.start("--drain")
            rc = p.wait(timeout=120)
            fn(env, rc)
            check(sink.count() == 0, "a message went out")
        finally:
            env.close()


def case_rcpt_unknown():
    reply = f"550 5.1.1 <x>: {UNKNOWN_TEXT}"

    def run(env, rc):
        check(rc == 0, f"heraldd --drain exited {rc}: {env.log_text()}")
        sup = td.suppression_list(env)
        check(len(sup) == td.SAMPLE, f"{len(sup)} suppressed")
        bad = [(k, v) for k, v in sup.items()
               if v["rule"] != "status+text" or v["evidence"] != reply]
        check(not bad, f"rule and evidence: {bad[:2]}")
        table = env.herald("suppress", "list").stdout.decode()
        check(table.count(reply) == td.SAMPLE, table[:600])
    refused(reply, run)


def not_suppressed(env, rc):
    check(rc in (0, 75), f"heraldd --drain exited {rc}: {env.log_text()}")
    check(td.suppression_list(env) == {},
          f"suppressed: {sorted(td.suppression_list(env))[:3]}")
    st = json.loads(env.herald("status", "--format",
                               "json").stdout.decode().splitlines()[0])
    check(st["bounced"] == 0 and st["suppressed"] == 0 and
          st["failed"] + st["deferred"] + st["queued"] == td.SAMPLE,
          f"status: {st}")
    return st


def case_rcpt_policy():
    def run(env, rc):
        st = not_suppressed(env, rc)
        check(st["failed"] == td.SAMPLE, f"status: {st}")
    refused("550 5.7.1 <x>: Recipient address rejected: Access denied by "
            "policy", run)


def case_rcpt_full():
    refused("552 5.2.2 <x>: Mailbox full", not_suppressed)


if __name__ == "__main__":
    sys.exit(td.run_cases(globals()))
