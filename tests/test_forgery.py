#!/usr/bin/env python3
"""Forged mail in the bounce mailbox changes nothing.

Anyone can send mail to the bounce mailbox. Each case delivers the sample
release to smtp-sink with signed return paths, puts hand-made messages in
the bounce Maildir and runs `herald bounces fetch`: a bounce, complaint or
unsubscribe request acts only when it carries a valid token of herald's
naming the address it reports (the return path, the unsubscribe address,
or the returned original's Return-Path or List-Unsubscribe); anything
else is kept for review and suppresses nobody. Run as test_delivery.py's
cases are (`test_forgery.py --herald H --heraldd D --source S CASE`).
"""
import csv
import email
import email.policy
import hashlib
import io
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import mailservers as ms  # noqa: E402
import test_delivery as td  # noqa: E402

A = None
SECRET = b"herald-test-secret-0123456789abcdef"
DOM = "bounces.coalition.example.org"
check = td.check


class Sent:
    """The sample release delivered to smtp-sink, per journalist: the
    envelope sender (the signed return path), the Message-ID, the
    List-Unsubscribe mailto address and the Subject."""

    def __init__(self, sink_msgs):
        self.by = {}
        for m in sink_msgs:
            msg = email.message_from_bytes(m.data,
                                           policy=email.policy.default)
            lu = str(msg["List-Unsubscribe"])
            self.by[m.recipients[0]] = {
                "sender": m.sender,
                "mid": str(msg["Message-ID"]).strip(),
                "unsub": re.search(r"<mailto:([^?>]+)", lu).group(1),
                "subject": str(msg["Subject"]),
                "from": str(msg["From"]),
            }
        self.j = sorted(self.by)


def delivered(fn):
    """Run fn(env, md, sent) after a real delivery of the sample release to
    smtp-sink, with a Maildir bounce mailbox and signed return paths."""
    with ms.SmtpSink() as sink:
        env, md = td.maildir_env(f"smtp://127.0.0.1:{sink.port}", DOM,
                                 SECRET)
        try:
            env.queue()
            env.drain()
            sent = Sent(sink.wait_for(td.SAMPLE, timeout=30))
            check(len(sent.j) == td.SAMPLE, f"{len(sent.j)} delivered")
            check(all(v["sender"].startswith("bounces+")
                      for v in sent.by.values()), "no signed return paths")
            fn(env, md, sent)
        finally:
            env.close()
            shutil.rmtree(md, ignore_errors=True)


def put(md, name, text):
    with open(os.path.join(md, "new", name), "wb") as f:
        f.write(text.replace("\n", "\r\n").encode())


def dsn(to, victim, mid=None, delivered_to=None):
    """A Postfix-style DSN to `to` reporting victim unknown; the returned
    headers carry Message-ID mid when given."""
    head = f"Delivered-To: {delivered_to}\n" if delivered_to else ""
    orig = (f"From: press@coalition.example.org\nTo: {victim}\n"
            f"Subject: report\n")
    if mid:
        orig += f"Message-ID: {mid}\n"
    return (
        f"{head}Return-Path: <>\n"
        f"From: MAILER-DAEMON@mx.elsewhere.test (Mail Delivery System)\n"
        f"To: {to}\nSubject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: <dsn.{abs(hash(victim))}@mx.elsewhere.test>\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type=delivery-status;\n"
        f" boundary=\"B1\"\n\n"
        f"--B1\nContent-Type: text/plain\n\n"
        f"This is the mail system at host mx.elsewhere.test.\n\n"
        f"<{victim}>: host mx.elsewhere.test said: 550 5.1.1 <{victim}>:\n"
        f"    Recipient address rejected: User unknown in virtual mailbox"
        f" table\n\n"
        f"--B1\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mx.elsewhere.test\n\n"
        f"Final-Recipient: rfc822; {victim}\n"
        f"Original-Recipient: rfc822;{victim}\n"
        f"Action: failed\nStatus: 5.1.1\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{victim}>: Recipient address\n"
        f"    rejected: User unknown in virtual mailbox table\n\n"
        f"--B1\nContent-Type: text/rfc822-headers\n\n{orig}\n--B1--\n")


def arf(victim, return_path=None, unsub=None, mid=None):
    """An ARF complaint from a feedback loop (sent to an address of the
    coalition's, not to herald's return path) about a message to victim."""
    orig = ""
    if return_path:
        orig += f"Return-Path: <{return_path}>\n"
    orig += (f"From: press@coalition.example.org\nTo: {victim}\n"
             f"Subject: report\n")
    if mid:
        orig += f"Message-ID: {mid}\n"
    if unsub:
        orig += f"List-Unsubscribe: <mailto:{unsub}?subject=unsubscribe>\n"
    return (
        f"From: fbl@isp.example.net\nTo: fbl@coalition.example.org\n"
        f"Subject: complaint about message\n"
        f"Message-ID: <arf.{abs(hash(victim))}@isp.example.net>\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type=feedback-report;\n"
        f" boundary=\"A1\"\n\n"
        f"--A1\nContent-Type: text/plain\n\n"
        f"This is an email abuse report.\n\n"
        f"--A1\nContent-Type: message/feedback-report\n\n"
        f"Feedback-Type: abuse\nUser-Agent: isp-fbl/1.0\nVersion: 1\n"
        f"Original-Rcpt-To: {victim}\n\n"
        f"--A1\nContent-Type: message/rfc822\n\n{orig}\n"
        f"The coalition welcomes the report.\n\n--A1--\n")


def fetched(env, n):
    r = env.herald("bounces", "fetch")
    out = r.stdout.decode()
    check(f"handled {n} message" in out, f"bounces fetch: {out}")
    return out


def nobody_suppressed(env, before):
    check(td.suppression_list(env) == {},
          f"suppressed: {sorted(td.suppression_list(env))}")
    check(env.status_line() == before,
          f"deliveries changed: {env.status_line()}")


def held(env, victim):
    """The events about victim listed by --unmatched, each saying why."""
    un = [e for e in td.events(env, "--unmatched")
          if e["recipient"] == victim]
    check(un, f"nothing about {victim} listed by --unmatched: "
          f"{td.events(env, '--unmatched')}")
    check(all(e.get("held") for e in un),
          f"--unmatched does not say why: {un}")
    # the CSV has the JSON's columns, the reason included
    text = env.herald("bounces", "--unmatched", "--format",
                      "csv").stdout.decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    keys = list(td.events(env, "--unmatched")[0])
    check(rows and list(rows[0]) == keys,
          f"csv columns {list(rows[0]) if rows else None}, json keys {keys}")
    check(all(r["held"] for r in rows if r["recipient"] == victim),
          f"the csv does not say why: {rows}")
    return un


# ---- cases ------------------------------------------------------------------


def case_bare_dsn():
    """(a) A forged DSN to the bare bounce address (no token) reporting a
    journalist's address suppresses nobody and is kept for review."""
    def run(env, md, sent):
        victim = sent.j[0]
        before = env.status_line()
        put(md, "1.M1.bare", dsn(f"bounces@{DOM}", victim,
                                 delivered_to=f"bounces@{DOM}"))
        fetched(env, 1)
        nobody_suppressed(env, before)
        held(env, victim)
    delivered(run)


def case_reply_waits():
    """(b) A From-forged "unsubscribe" reply suppresses nobody; it waits for
    an admin, is listed with why, and `herald suppress confirm EVENT`
    suppresses the address then."""
    def run(env, md, sent):
        victim = sent.j[1]
        before = env.status_line()
        put(md, "1.M1.reply",
            f"From: Someone <{victim}>\nTo: press@coalition.example.org\n"
            f"Subject: Re: {sent.by[victim]['subject']}\n"
            f"In-Reply-To: {sent.by[victim]['mid']}\n"
            f"Message-ID: <u1@client.test>\n\nunsubscribe\n")
        fetched(env, 1)
        nobody_suppressed(env, before)
        ev = held(env, victim)
        check(ev[0]["type"] == "unsubscribe", f"{ev}")
        r = env.herald("suppress", "confirm", str(ev[0]["event"]))
        sup = td.suppression_list(env)
        check(set(sup) == {victim}, f"after confirm: {sorted(sup)}; "
              f"{r.stdout.decode()}")
        check(not [e for e in td.events(env, "--unmatched")
                   if e["event"] == ev[0]["event"]],
              "a confirmed event still waits")
        # twice: nothing more to do, and says so
        r = env.herald("suppress", "confirm", str(ev[0]["event"]),
                       check_rc=False)
        check(r.returncode != 0, "confirmed twice")
    delivered(run)


def case_arf_no_token():
    """(c) A forged ARF complaint without a token suppresses nobody."""
    def run(env, md, sent):
        victim = sent.j[2]
        before = env.status_line()
        put(md, "1.M1.arf", arf(victim))
        fetched(env, 1)
        nobody_suppressed(env, before)
        held(env, victim)
    delivered(run)


def case_computed_message_id():
    """(d) A forged DSN quoting the Message-ID as herald computed it before
    it was keyed (a hash of the release name and the address, which every
    recipient can compute) suppresses nobody."""
    def run(env, md, sent):
        victim = sent.j[3]
        dom = sent.by[victim]["mid"].strip("<>").split("@", 1)[1]
        h = hashlib.sha256(f"report-launch\n{victim}".encode()).hexdigest()
        mid = f"<{h[:32]}@{dom}>"
        before = env.status_line()
        put(md, "1.M1.computed", dsn(f"bounces@{DOM}", victim, mid=mid))
        fetched(env, 1)
        nobody_suppressed(env, before)
        held(env, victim)
    delivered(run)


def case_message_id_keyed():
    """The Message-ID cannot be computed from the release name and the
    address: it is keyed under the bounce secret."""
    def run(env, md, sent):
        victim = sent.j[3]
        got = sent.by[victim]["mid"]
        dom = got.strip("<>").split("@", 1)[1]
        h = hashlib.sha256(f"report-launch\n{victim}".encode()).hexdigest()
        check(got != f"<{h[:32]}@{dom}>", f"Message-ID {got} computed")
    delivered(run)


def case_genuine():
    """(e) What carries a valid token still acts: a DSN to the signed return
    path, an ARF complaint whose returned original carries the signed
    Return-Path or the List-Unsubscribe token, mail to the unsubscribe
    address; a token of one journalist reporting another acts on nobody."""
    def run(env, md, sent):
        j = sent.j
        put(md, "1.M1.dsn", dsn(sent.by[j[0]]["sender"], j[0],
                                delivered_to=sent.by[j[0]]["sender"]))
        put(md, "2.M2.arfrp", arf(j[1], return_path=sent.by[j[1]]["sender"]))
        put(md, "3.M3.arflu", arf(j[2], unsub=sent.by[j[2]]["unsub"]))
        put(md, "4.M4.unsub",
            f"From: <{j[3]}>\nTo: <{sent.by[j[3]]['unsub']}>\n"
            f"Delivered-To: {sent.by[j[3]]['unsub']}\n"
            f"Subject: unsubscribe\nMessage-ID: <u4@client.test>\n\n"
            f"This message was sent to unsubscribe.\n")
        # journalist 4's token in a complaint about journalist 5
        put(md, "5.M5.swap", arf(j[5], return_path=sent.by[j[4]]["sender"]))
        # a DSN to the bare address quoting journalist 6's keyed
        # Message-ID (only herald and journalist 6 know it)
        put(md, "6.M6.keyed", dsn(f"bounces@{DOM}", j[6],
                                  mid=sent.by[j[6]]["mid"]))
        # journalist 7's keyed Message-ID in a DSN about journalist 8
        put(md, "7.M7.keyswap", dsn(f"bounces@{DOM}", j[8],
                                    mid=sent.by[j[7]]["mid"]))
        fetched(env, 7)
        sup = td.suppression_list(env)
        check(set(sup) == {j[0], j[1], j[2], j[3], j[6]},
              f"suppressed {sorted(sup)}, want {j[:4] + [j[6]]}")
        ev = {e["recipient"]: e for e in td.events(env)}
        check(ev[j[0]]["type"] == "bounce" and ev[j[0]]["hard"] is True,
              f"{ev.get(j[0])}")
        check(ev[j[1]]["type"] == "complaint" and
              ev[j[2]]["type"] == "complaint",
              f"{ev.get(j[1])} {ev.get(j[2])}")
        check(ev[j[3]]["type"] == "unsubscribe", f"{ev.get(j[3])}")
        check(ev[j[6]]["matched_by"] == "keyed-id" and
              ev[j[0]]["matched_by"] == "verp", f"{ev.get(j[6])}")
        un = {e["recipient"] for e in td.events(env, "--unmatched")}
        check({j[5], j[8]} <= un, f"the swaps are not held: {un}")
    delivered(run)


def main():
    return td.run_cases(globals())


if __name__ == "__main__":
    sys.exit(main())
