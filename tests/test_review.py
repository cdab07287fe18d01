#!/usr/bin/env python3
"""Findings of the security review, one case each, against real servers on
127.0.0.1.

`test_review.py --herald H --heraldd D --source S CASE` (ctest runs each as
review/CASE):

  preview_symlink  herald preview --out does not follow a symbolic link
                   planted at the name of a message it writes: the file the
                   link points to is unchanged, the command says so and
                   fails, and leaves no temporary file
  imap_untrusted   herald bounces fetch from an imaps server whose
                   certificate is from another CA sends it not one byte
                   after the TLS handshake (no LOGOUT, no TLS goodbye):
                   the socket is just closed
  control_chars    a bounce whose diagnostic and From carry ESC[2J, BEL,
                   CR, NUL, DEL and CSI (U+009B), and an IMAP server's refusal carrying
                   them before its certificate is checked: herald bounces
                   fetch, herald bounces (and --unmatched) and heraldd's
                   log print no raw control byte, only \\xHH escapes
  csv_formula      CSV cells from outside that start with = + - @ (a
                   suppression's reason and address, a bounce's
                   diagnostic) are written with a leading ', and herald
                   suppress import of an exported file gives back the same
                   addresses and reasons
"""
import csv
import io
import json
import os
import re
import shutil
import socket
import ssl
import sys
import threading
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_delivery as td  # noqa: E402

A = None
check = td.check
ms = td.ms


class TlsTap:
    """A TLS listener on 127.0.0.1 that greets as an IMAP server would
    (greeting, sent once the handshake is done) and records, per
    connection, every raw byte the client sends after the handshake,
    TLS records included: the goodbye of the protocol and of TLS alike."""

    def __init__(self, cert, key, greeting=b"* OK IMAP4rev1 ready\r\n"):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.bind((ms.LOOPBACK, 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []  # [handshake done, bytes after it, closed]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        rec = [False, bytearray(), False]
        with self.lock:
            self.conns.append(rec)
        conn.settimeout(30)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(inc, out, server_side=True)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if out.pending:
                        conn.sendall(out.read())
                    data = conn.recv(65536)
                    if not data:
                        return
                    inc.write(data)
            if out.pending:
                conn.sendall(out.read())
            rec[0] = True
            if inc.pending:
                rec[1] += inc.read()
            tls.write(self.greeting)
            conn.sendall(out.read())
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                rec[1] += data
        except (OSError, ssl.SSLError):
            pass
        finally:
            rec[2] = True
            conn.close()

    def close(self):
        self.sock.close()


def tap_env(tap):
    """What td.imap_env needs of a mailbox server, for the TlsTap."""
    box = types.SimpleNamespace(
        password="Tap-Pa55word-for-herald",
        url=lambda tls, folder: (f"{tls}://press@{ms.LOOPBACK}:"
                                 f"{tap.port}/{folder}"))
    return box


def case_preview_symlink():
    env = td.Env("maildir://{dir}/out")
    try:
        out = os.path.join(env.dir, "preview")
        os.mkdir(out, 0o700)
        victim = os.path.join(env.dir, "victim")
        with open(victim, "wb") as f:
            f.write(b"keep me\n")
        env.herald("preview", "templates/report-launch", "--to",
                   "lists/journalists.yaml", "--out", out)
        names = sorted(os.listdir(out))
        check(len(names) == td.SAMPLE, f"{len(names)} files written")
        planted = os.path.join(out, names[0])
        os.unlink(planted)
        os.symlink(victim, planted)
        r = env.herald("preview", "templates/report-launch", "--to",
                       "lists/journalists.yaml", "--out", out,
                       check_rc=False)
        err = r.stderr.decode()
        check(r.returncode != 0, f"preview over a planted link exited 0: "
              f"{err}{r.stdout.decode()}")
        check(names[0] in err and "link" in err,
              f"the refusal does not name the link: {err!r}")
        with open(victim, "rb") as f:
            check(f.read() == b"keep me\n", "the link's target was changed")
        check(os.path.islink(planted), "the planted link was replaced")
        left = [n for n in os.listdir(out) if not n.endswith(".eml")]
        check(not left, f"temporary files left: {left}")
    finally:
        env.close()


def case_imap_untrusted():
    with ms.TestCA() as ca, ms.TestCA("another test CA") as other, \
            ms.SmtpSink() as sink:
        cert, key = other.issue()
        tap = TlsTap(cert, key)
        env = td.imap_env(f"smtp://127.0.0.1:{sink.port}", tap_env(tap),
                          ca.cert_path)
        try:
            rc, out, err = td.fetch(env)
            check(rc != 0 and "not trusted" in err,
                  f"fetch from an untrusted server: exit {rc}: {err}")
            ms.wait_until(lambda: tap.conns and all(c[2] for c in tap.conns),
                          10, "herald to close its connections")
            check(all(c[0] for c in tap.conns),
                  "a connection ended before its handshake")
            sent = [bytes(c[1]) for c in tap.conns]
            check(not any(sent), f"sent after the handshake: {sent!r}")
        finally:
            tap.close()
            env.close()


# ESC [2J (clear the screen), BEL, CR, NUL, DEL and CSI (U+009B, which
# terminals take as ESC [) 2J
NASTY = b"\x1b[2J\x07\r\x00\x7f\xc2\x9b2J"
# what must not be printed raw (LF and TAB may)
RAW = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def nasty_mail(dom):
    """A DSN to the bare bounce address whose diagnostic carries NASTY, and
    an unsubscribe reply whose From does."""
    dsn = (b"From: MAILER-DAEMON@relay.example\r\n"
           b"To: bounces@" + dom.encode() + b"\r\n"
           b"Subject: Undelivered Mail Returned to Sender\r\n"
           b"Message-ID: <nasty-dsn@relay.example>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status;"
           b" boundary=\"b1\"\r\n\r\n"
           b"--b1\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n"
           b"--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
           b"Reporting-MTA: dns; relay.example\r\n\r\n"
           b"Final-Recipient: rfc822; victim@example.org\r\n"
           b"Action: failed\r\nStatus: 5.1.1\r\n"
           b"Diagnostic-Code: smtp; 550 5.1.1 no such user " + NASTY +
           b" gone\r\n\r\n--b1--\r\n")
    reply = (b"From: <\"evil" + NASTY + b"\"@example.org>\r\n"
             b"To: bounces@" + dom.encode() + b"\r\n"
             b"Subject: unsubscribe\r\n"
             b"Message-ID: <nasty-reply@client.test>\r\n\r\n"
             b"unsubscribe\r\n")
    return {"1.M1.dsn": dsn, "2.M2.reply": reply}


def no_raw(what, data):
    bad = RAW.findall(data)
    check(not bad, f"{what}: raw control bytes {bad!r} in {data[-600:]!r}")


def case_control_chars():
    dom = "bounces.coalition.example.org"
    secret = b"herald-test-secret-0123456789abcdef"
    with ms.SmtpSink() as sink:
        relay = f"smtp://127.0.0.1:{sink.port}"
        # herald bounces fetch, then the tables
        env, md = td.maildir_env(relay, dom, secret)
        try:
            for name, data in nasty_mail(dom).items():
                with open(os.path.join(md, "new", name), "wb") as f:
                    f.write(data)
            empty = os.path.join(env.dir, "none.txt")
            open(empty, "w").close()
            env.herald("suppress", "import", empty)
            r = env.herald("bounces", "fetch", check_rc=False)
            out = r.stdout + r.stderr
            check(b"handled 2 messages" in r.stdout, f"fetch: {out!r}")
            no_raw("herald bounces fetch", out)
            shown = b""
            for args in (["bounces", "--wide"], ["bounces", "--unmatched",
                                                 "--wide"]):
                r = env.herald(*args)
                no_raw("herald " + " ".join(args), r.stdout + r.stderr)
                shown += r.stdout
            check(b"\\xc2\\x9b2J" in shown,
                  f"the tables show no escaped diagnostic: {shown!r}")
        finally:
            env.close()
            shutil.rmtree(md, ignore_errors=True)
        # heraldd's log of the same events
        env, md = td.maildir_env(relay, dom, secret)
        try:
            for name, data in nasty_mail(dom).items():
                with open(os.path.join(md, "new", name), "wb") as f:
                    f.write(data)
            env.start()
            ms.wait_until(lambda: env.log_text().count("mailbox: ") >= 2,
                          30, "heraldd to log both events")
            with open(env.logs[0], "rb") as f:
                log = f.read()
            no_raw("heraldd's log", log)
        finally:
            env.close()
            shutil.rmtree(md, ignore_errors=True)
    # an IMAP server's refusal, read before its certificate is checked
    with ms.TestCA() as ca, ms.TestCA("another test CA") as other, \
            ms.SmtpSink() as sink:
        cert, key = other.issue()
        tap = TlsTap(cert, key, greeting=b"* BYE " + NASTY.replace(
            b"\r", b"").replace(b"\x00", b"") + b" go away\r\n")
        env = td.imap_env(f"smtp://127.0.0.1:{sink.port}", tap_env(tap),
                          ca.cert_path)
        try:
            r = env.herald("bounces", "fetch", check_rc=False)
            err = r.stdout + r.stderr
            check(r.returncode != 0, f"fetch from a server saying BYE: "
                  f"exit {r.returncode}")
            no_raw("herald bounces fetch (IMAP)", err)
            check(b"\\x1b[2J" in err, f"the refusal is not shown: {err!r}")
            env.start()
            ms.wait_until(lambda: "failure 1" in env.log_text(), 30,
                          "heraldd to log the mailbox's failure")
            with open(env.logs[0], "rb") as f:
                log = f.read()
            no_raw("heraldd's log (IMAP)", log)
            check(b"\\x1b[2J" in log, f"the refusal is not logged: {log!r}")
        finally:
            tap.close()
            env.close()


def case_csv_formula():
    dom = "bounces.coalition.example.org"
    secret = b"herald-test-secret-0123456789abcdef"
    with ms.SmtpSink() as sink:
        env, md = td.maildir_env(f"smtp://127.0.0.1:{sink.port}", dom,
                                 secret)
        try:
            rows = {"=cmd@example.org": "=HYPERLINK(\"http://x.test\")",
                    "+plus@example.org": "+1+1",
                    "dash@example.org": "-2",
                    "at@example.org": "@SUM(A1:A2)",
                    "'quote@example.org": "'kept",
                    "plain@example.org": "staff, by \"request\""}
            for addr, why in rows.items():
                env.herald("suppress", "add", addr, f"--reason={why}")
            got = env.herald("suppress", "export").stdout.decode()
            cells = list(csv.reader(io.StringIO(got)))
            check(cells[0][:2] == ["email", "reason"], f"header {cells[0]}")
            for addr, why, *_ in cells[1:]:
                for cell in (addr, why):
                    check(cell[0] not in "=+-@",
                          f"export: cell {cell!r} starts a formula")
            reasons = {a: w for a, w, *_ in cells[1:]}
            check(reasons.get("'=cmd@example.org") ==
                  "'=HYPERLINK(\"http://x.test\")" and
                  reasons.get("plain@example.org") ==
                  "staff, by \"request\"" and
                  reasons.get("''quote@example.org") == "''kept",
                  f"export: {reasons}")
            # import into a fresh store gives the same list back
            path = os.path.join(env.dir, "export.csv")
            with open(path, "w") as f:
                f.write(got)
            env.herald("suppress", "import", path, "--store",
                       os.path.join(env.dir, "other.db"))
            back = env.herald("suppress", "list", "--format", "json",
                              "--store", os.path.join(env.dir, "other.db"))
            back = {json.loads(l)["email"]: json.loads(l)["reason"]
                    for l in back.stdout.decode().splitlines()}
            check(back == rows, f"import gave back {back}, not {rows}")
            # a bounce's diagnostic
            dsn = (b"From: MAILER-DAEMON@relay.example\r\n"
                   b"To: bounces@" + dom.encode() + b"\r\n"
                   b"Subject: failure\r\nMessage-ID: <f@relay.example>\r\n"
                   b"MIME-Version: 1.0\r\n"
                   b"Content-Type: multipart/report; "
                   b"report-type=delivery-status; boundary=\"b1\"\r\n\r\n"
                   b"--b1\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
                   b"--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
                   b"Reporting-MTA: dns; relay.example\r\n\r\n"
                   b"Final-Recipient: rfc822; victim@example.org\r\n"
                   b"Action: failed\r\nStatus: 5.1.1\r\n"
                   b"Diagnostic-Code: X-Unix; =HYPERLINK(\"http://x.test\")"
                   b"\r\n\r\n--b1--\r\n")
            with open(os.path.join(md, "new", "1.M1.dsn"), "wb") as f:
                f.write(dsn)
            env.herald("bounces", "fetch")
            out = env.herald("bounces", "--format", "csv").stdout.decode()
            out += env.herald("bounces", "--unmatched", "--format",
                              "csv").stdout.decode()
            cells = [c for row in csv.reader(io.StringIO(out)) for c in row]
            check(any(c.startswith("'=HYPERLINK") for c in cells),
                  f"bounces csv: {out!r}")
            check(not any(c[:1] in ("=", "+", "@") for c in cells),
                  f"bounces csv starts a formula: {out!r}")
        finally:
            env.close()
            shutil.rmtree(md, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(td.run_cases(globals()))
