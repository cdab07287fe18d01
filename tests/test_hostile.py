#!/usr/bin/env python3
"""Hostile input: what herald does with files and messages built to hurt.

`test_hostile.py --herald H --source S CASE` runs one case (ctest runs each
as hostile/CASE, labelled reliability):

  yaml_bombs      billion laughs and 10,000-deep nesting in every YAML file
                  herald reads fail at once, small, naming file:line:column
  header_fields   CR, LF or NUL in every data field that reaches a header
                  is refused by `herald check`, naming file:line:column
  template_values a value holding {{ ... }} is text, never a template
  addresses       quoted local parts, IDN domains, 300-character addresses
                  are handled or refused with a clear reason
  duplicates      a list of 10,000 entries repeating three addresses queues
                  each address once
  big_bounce      a 100 MB message is refused by size, unread, by
                  `herald bounces parse` and by `herald bounces fetch`

Memory is asserted (each run's peak RSS from wait4), time only printed:
these machines are shared.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import transcript  # noqa: E402

A = None
MIB = 1024 * 1024
# What a refused input may cost: herald's own start-up is ~12 MiB.
SMALL_RSS = 64 * MIB


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run(*args, cwd=None):
    """Run herald; returns (rc, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    r = subprocess.run([A.herald, *args], cwd=cwd or A.source,
                       capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=120)
    transcript.record("herald " + " ".join(args), r.stdout + r.stderr)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def run_measured(*args, cwd=None):
    """Like run, with the child's peak RSS from wait4. A forked child's
    peak counts the test's own memory at the fork (Linux keeps the
    highest mark across exec), so this process stays small: the figure is
    max(this test, herald)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([A.herald, *args], cwd=cwd or A.source,
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read(), err.read()
        transcript.record("herald " + " ".join(args), o + e)
        return (p.returncode, o.decode("utf-8", "replace"),
                e.decode("utf-8", "replace"), ru.ru_maxrss * 1024,
                time.monotonic() - t0)


class Scratch:
    """A copy of the sample release, lists and a config to spoil."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="herald-hostile-")
        shutil.copytree(os.path.join(A.source, "templates"),
                        os.path.join(self.dir, "templates"))
        shutil.copytree(os.path.join(A.source, "lists"),
                        os.path.join(self.dir, "lists"))
        self.store = os.path.join(self.dir, "herald.db")
        self.cfg = os.path.join(self.dir, "herald.yaml")
        self.write_config({})

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def write_config(self, extra):
        cfg = {"store": self.store,
               "relay": {"url": "smtp://127.0.0.1:9"}}
        for k, v in extra.items():
            cfg.setdefault(k, {}).update(v) if isinstance(v, dict) \
                else cfg.__setitem__(k, v)
        with open(self.cfg, "w") as f:
            yaml.safe_dump(cfg, f, allow_unicode=True)

    def load(self, rel):
        with open(self.path(rel)) as f:
            return yaml.safe_load(f)

    def dump(self, rel, doc):
        with open(self.path(rel), "w") as f:
            yaml.safe_dump(doc, f, allow_unicode=True, sort_keys=False,
                           width=1000)

    def herald(self, *args, measured=False):
        full = [*args, "--config", self.cfg]
        return (run_measured if measured else run)(*full, cwd=self.dir)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def names_place(err, rel):
    """Does stderr name the file with line and column?"""
    return re.search(rf"(^|/){re.escape(rel)}:\d+:\d+: error: ", err, re.M)


# ---- cases -----------------------------------------------------------------


def laughs():
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for n in "bcdefghi":
        text += f"{n}: &{n} [" + ",".join(["*" + prev] * 9) + "]\n"
        prev = n
    return text


def case_yaml_bombs():
    """Every YAML file herald reads, replaced by a bomb, fails fast and
    small with file:line:column."""
    bombs = {
        "laughs": laughs(),
        "deep-flow": "x: " + "[" * 10000 + "]" * 10000 + "\n",
        "deep-block": "x:\n  " + "- " * 10000 + "end\n",
        "deep-map": "x: " + "{k: " * 10000 + "v" + "}" * 10000 + "\n",
    }
    files = ["lists/journalists.yaml", "lists/coalition.yaml",
             "templates/report-launch/release.yaml", "herald.yaml"]
    s = Scratch()
    try:
        for rel in files:
            keep = open(s.path(rel)).read()
            for name, text in bombs.items():
                with open(s.path(rel), "w") as f:
                    f.write(text)
                rc, out, err, rss, secs = s.herald(
                    "check", "templates/report-launch", "--to",
                    "lists/journalists.yaml", measured=True)
                print(f"{rel} {name}: exit {rc}, {rss / MIB:.1f} MiB, "
                      f"{secs:.2f} s")
                check(rc in (65, 78), f"{rel} {name}: exit {rc}: {err}")
                check(names_place(err, rel),
                      f"{rel} {name}: no file:line:column: {err[:300]}")
                check(rss < SMALL_RSS,
                      f"{rel} {name}: {rss / MIB:.1f} MiB to refuse it")
            with open(s.path(rel), "w") as f:
                f.write(keep)
    finally:
        s.close()


# (file, path in the YAML document) of every data field that reaches a
# header of the message: To, From, Reply-To, Subject, the attachment's
# file name, List-Unsubscribe, the DKIM signature, the SMTP greeting
HEADER_FIELDS = [
    ("lists/journalists.yaml", ["journalists", 0, "name"]),
    ("lists/journalists.yaml", ["journalists", 0, "email"]),
    ("templates/report-launch/release.yaml", ["from", "name", "en"]),
    ("templates/report-launch/release.yaml", ["from", "email"]),
    ("templates/report-launch/release.yaml", ["reply_to", "name", "en"]),
    ("templates/report-launch/release.yaml", ["reply_to", "email"]),
    ("templates/report-launch/release.yaml", ["subject", "en"]),
    ("templates/report-launch/release.yaml", ["subject", "ru"]),
    ("templates/report-launch/release.yaml",
     ["attachments", 0, "name", "en"]),
    ("lists/coalition.yaml", ["name", "en"]),
    ("lists/coalition.yaml", ["spokesperson", "name", "en"]),
    ("lists/coalition.yaml", ["spokesperson", "email"]),
    ("herald.yaml", ["bounces", "domain"]),
    ("herald.yaml", ["bounces", "unsubscribe_url"]),
    ("herald.yaml", ["relay", "helo"]),
]


def set_path(doc, path, value):
    for k in path[:-1]:
        doc = doc[k]
    doc[path[-1]] = value


def case_header_fields():
    """CR, LF and NUL in each field that reaches a header: refused."""
    s = Scratch()
    bad = {"CR": "\r", "LF": "\n", "CRLF": "\r\n", "NUL": "\0"}
    try:
        secret = s.path("bounce.secret")
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"hostile-input-test-secret-0123456789\n")
        transcript.secret(b"hostile-input-test-secret-0123456789")
        os.close(fd)
        base_cfg = {"bounces": {"domain": "bounces.example.org",
                                "secret_file": secret,
                                "unsubscribe_url":
                                "https://example.org/u/{token}"},
                    "relay": {"helo": "herald.example.org"}}
        s.write_config(base_cfg)
        rc, out, err, _ = s.herald("check", "templates/report-launch",
                                   "--to", "lists/journalists.yaml")
        check(rc == 0, f"the clean copy does not check: {err}")
        originals = {}
        for rel, path in HEADER_FIELDS:
            if rel not in originals:
                originals[rel] = open(s.path(rel), "rb").read()
            for what, ch in bad.items():
                if rel == "herald.yaml":
                    cfg = yaml.safe_load(originals[rel])
                    doc = cfg
                else:
                    doc = yaml.safe_load(originals[rel])
                node = doc
                for k in path[:-1]:
                    node = node[k]
                old = str(node[path[-1]])
                # keep addresses and URLs otherwise valid: the bad
                # character in the middle, then an injected header
                cut = len(old) // 2
                node[path[-1]] = (old[:cut] + ch +
                                  "Bcc: victim@elsewhere.test" + old[cut:])
                s.dump(rel, doc)
                rc, out, err, _ = s.herald(
                    "check", "templates/report-launch", "--to",
                    "lists/journalists.yaml")
                field = ".".join(str(p) for p in path)
                check(rc in (65, 78),
                      f"{rel} {field} with {what}: exit {rc}, {out[-300:]}")
                check(names_place(err, rel),
                      f"{rel} {field} with {what}: {err[:400]}")
                # and nothing is ever built from it
                rc, out, err, _ = s.herald(
                    "preview", "templates/report-launch", "--to",
                    "lists/journalists.yaml", "--recipient",
                    "dokafor@harborview-sentinel.test")
                check(rc != 0 and "Bcc: victim" not in out,
                      f"{rel} {field} with {what}: preview built it")
            with open(s.path(rel), "wb") as f:
                f.write(originals[rel])
        print(f"{len(HEADER_FIELDS)} fields x {len(bad)} characters refused")
    finally:
        s.close()


def case_template_values():
    """Values are text: a value holding Mustache tags is printed as
    written (HTML-escaped in the HTML part), never evaluated."""
    s = Scratch()
    try:
        tags = "{{coalition.name}} {{{report.url}}} {{> members}} {{#x}}"
        coal = s.load("lists/coalition.yaml")
        coal["spokesperson"]["name"]["en"] = "Natalia " + tags
        s.dump("lists/coalition.yaml", coal)
        jl = s.load("lists/journalists.yaml")
        jl["journalists"][0]["name"] = "Margaret " + tags
        s.dump("lists/journalists.yaml", jl)
        who = jl["journalists"][0]["email"]
        rc, out, err, _ = s.herald("render", "templates/report-launch",
                                   "--to", "lists/journalists.yaml",
                                   "--recipient", who)
        check(rc == 0, f"render: {err}")
        check(("Natalia " + tags) in out, "the tags were not kept as text")
        rc, html, err, _ = s.herald("render", "templates/report-launch",
                                    "--to", "lists/journalists.yaml",
                                    "--recipient", who, "--format", "html")
        check(rc == 0 and "Natalia {{coalition.name}} {{{report.url}}} "
              "{{&gt; members}} {{#x}}" in html, "HTML: not kept as text")
        rc, msg, err, _ = s.herald("preview", "templates/report-launch",
                                   "--to", "lists/journalists.yaml",
                                   "--recipient", who)
        check(rc == 0, f"preview: {err}")
        import email
        import email.header
        import email.policy
        m = email.message_from_string(msg, policy=email.policy.compat32)
        to = "".join(
            p.decode(c or "ascii") if isinstance(p, bytes) else p
            for p, c in email.header.decode_header(m["To"]))
        check(("Margaret " + tags) in to, f"To: {to!r}")
    finally:
        s.close()


def case_addresses():
    """Addresses herald cannot send to are refused with the reason;
    an IDN domain in its xn-- form is sent as is."""
    s = Scratch()
    try:
        jl = s.load("lists/journalists.yaml")
        cases = [
            ('"anna x"@example.org', "quoted local parts"),
            ("reporter@пример.рф", "xn--"),
            ("репортер@example.org", "non-ASCII"),
            ("a" * 65 + "@example.org", "64"),
            ("a" * 60 + "@" + ("b" * 60 + ".") * 4 + "org", "254"),
            ("reporter@example..org", None),
            ("reporter@-example.org", None),
            ("reporter@example.org>", None),
        ]
        for addr, reason in cases:
            jl["journalists"][0]["email"] = addr
            s.dump("lists/journalists.yaml", jl)
            rc, out, err, _ = s.herald("check", "templates/report-launch",
                                       "--to", "lists/journalists.yaml")
            check(rc == 65 and names_place(err, "lists/journalists.yaml"),
                  f"{addr}: exit {rc}: {err[:300]}")
            check(reason is None or reason in err,
                  f"{addr}: the reason does not say {reason!r}: {err}")
        jl["journalists"][0]["email"] = "reporter@xn--e1afmkfd.xn--p1ai"
        s.dump("lists/journalists.yaml", jl)
        rc, msg, err, _ = s.herald("preview", "templates/report-launch",
                                   "--to", "lists/journalists.yaml",
                                   "--recipient",
                                   "reporter@xn--e1afmkfd.xn--p1ai")
        check(rc == 0 and re.search(r"^To: .*<reporter@xn--e1afmkfd\."
                                    r"xn--p1ai>", msg, re.M),
              f"the xn-- address: {err}{msg[:300]}")
    finally:
        s.close()


def case_duplicates():
    """10,000 entries naming three addresses (the domain's case varying)
    queue three deliveries."""
    s = Scratch()
    try:
        addrs = ["one@example.org", "two@example.net", "three@example.com"]
        entries = []
        for i in range(10000):
            local, dom = addrs[i % 3].split("@")
            if i % 2:
                dom = dom.upper()
            entries.append({"name": f"Reporter {i}", "email": f"{local}@{dom}",
                            "language": "en", "outlet": "Test",
                            "timezone": "Europe/London"})
        s.dump("lists/dups.yaml", {"journalists": entries})
        rc, out, err, rss, secs = s.herald(
            "queue", "templates/report-launch", "--to", "lists/dups.yaml",
            measured=True)
        print(f"queue of 10,000 entries: {secs:.2f} s, {rss / MIB:.1f} MiB")
        check(rc == 0, f"queue: exit {rc}: {err[-500:]}")
        check("3 recipients" in out and
              "9997 repeated addresses removed" in out, out)
        import sqlite3
        db = sqlite3.connect(s.store)
        n = db.execute("SELECT count(*) FROM deliveries").fetchone()[0]
        db.close()
        check(n == 3, f"{n} deliveries")
    finally:
        s.close()


def case_big_bounce():
    """A 100 MB message: refused by size without being read."""
    s = Scratch()
    try:
        big = s.path("big.eml")
        with open(big, "wb") as f:
            f.write(b"From: MAILER-DAEMON@example.org\r\n"
                    b"Subject: Undelivered Mail Returned to Sender\r\n"
                    b"Content-Type: text/plain\r\n\r\n")
            f.truncate(100 * MIB)
        rc, out, err, rss, secs = s.herald("bounces", "parse", big,
                                           measured=True)
        print(f"bounces parse, 100 MB: exit {rc}, {rss / MIB:.1f} MiB, "
              f"{secs:.2f} s")
        check(rc == 65 and "larger than" in err, f"parse: {rc} {err}")
        check(rss < SMALL_RSS, f"parse read it: {rss / MIB:.1f} MiB")
        md = s.path("mbox")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        os.rename(big, os.path.join(md, "new", "1700000000.M1.big"))
        # bounces come back to a store a release was queued into
        rc, out, err, _ = s.herald("queue", "templates/report-launch",
                                   "--to", "lists/journalists.yaml")
        check(rc == 0, f"queue: {rc} {err}")
        rc, out, err, rss, secs = s.herald(
            "bounces", "fetch", "--mailbox", f"maildir:{md}", measured=True)
        print(f"bounces fetch, 100 MB: exit {rc}, {rss / MIB:.1f} MiB, "
              f"{secs:.2f} s")
        check(rc == 0 and "handled 1 message" in out, f"fetch: {out}{err}")
        check(rss < SMALL_RSS, f"fetch read it: {rss / MIB:.1f} MiB")
        check(os.listdir(os.path.join(md, "new")) == [] and
              len(os.listdir(os.path.join(md, "cur"))) == 1,
              "the message was not kept in cur/")
        rc, out, err, _ = s.herald("bounces", "--format", "json")
        check(rc == 0 and "larger than herald reads" in out, out)
    finally:
        s.close()


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--rss-mib", type=int, default=64,
                    help="the most a refused input may cost")
    ap.add_argument("case", choices=sorted(CASES))
    A = ap.parse_args()
    global SMALL_RSS
    SMALL_RSS = A.rss_mib * MIB
    try:
        CASES[A.case]()
    except Failure as e:
        print("FAIL:", e)
        return 1
    print("ok:", A.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
