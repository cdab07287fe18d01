#!/usr/bin/env python3
"""Self-test of tests/lib/mailservers.py, the mail servers of herald's
integration tests.

Each piece is shown to work, and to fail when it should, before herald's
tests rely on it:
- smtp-sink gives back what it received: envelope sender, recipients and
  the message byte for byte; its fault injection refuses what it is told
  to; a message still being received is not counted; it stops cleanly.
- a private Postfix relays to smtp-sink with the original headers intact,
  and turns a 5xx from the relay (or a 4xx past maximal_queue_lifetime)
  into a DSN to the sender, delivered to a second smtp-sink.
- SpamAssassin, with the Debian package's rules and no network, scores a
  plain release-like message low and spam high.
- a private Dovecot serves its Maildir over IMAP with STARTTLS and over
  implicit TLS with a TestCA certificate, refuses LOGIN before STARTTLS
  and with a wrong password, keeps its mail across kill() and start(),
  and is not the machine's own Dovecot.
No server may outlive its `with` block: every test checks that its servers'
processes and directories are gone.
Needs root for Postfix (as CI runs).
"""
import email
import email.policy
import email.utils
import os
import re
import signal
import smtplib
import socket
import sys
import tempfile
import time
import unittest
from email.message import EmailMessage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mailservers as ms  # noqa: E402

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def release_message(subject="City library opens a new reading room",
                    sender="press@library.example.org", to="tom.reed@example.net"):
    """A plain, well-formed text message like one herald sends."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = f"City Library Press Office <{sender}>"
    msg["To"] = f"Tom Reed <{to}>"
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain="library.example.org")
    msg.set_content(
        "Dear Tom,\n\n"
        "the city library opens its new reading room on Monday, 7 December.\n"
        "The room has forty seats and is open from nine to six, Monday to\n"
        "Saturday. The opening talk starts at ten.\n\n"
        "Best regards,\nAnna Berg\nCity Library Press Office\n")
    return msg.as_bytes()


def alive(pid):
    """True while process pid runs (a zombie has finished)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class ServerTest(unittest.TestCase):
    def assert_gone(self, server, directory):
        """The server's processes and files are gone after its with block."""
        self.assertFalse(os.path.exists(directory), f"{directory} left behind")
        self.assertEqual(ms.processes_under(directory), [],
                         f"processes left behind by {type(server).__name__}")


class FreePortTest(unittest.TestCase):
    def test_port_is_free_on_loopback(self):
        port = ms.free_port()
        self.assertTrue(1024 <= port < 65536)
        with socket.socket() as s:
            s.bind((ms.LOOPBACK, port))


class LoopbackDestinationTest(unittest.TestCase):
    def test_only_bracketed_loopback(self):
        self.assertEqual(ms.loopback_destination("[127.0.0.1]:2525"), "[127.0.0.1]:2525")
        self.assertEqual(ms.loopback_destination("[127.1.2.3]:25"), "[127.1.2.3]:25")
        for bad in ("127.0.0.1:2525", "[10.0.0.1]:25", "[192.0.2.1]:25",
                    "[localhost]:25", "mx.example.org", "[127.0.0.1]"):
            with self.assertRaises(ValueError, msg=bad):
                ms.loopback_destination(bad)


class ParseDumpTest(unittest.TestCase):
    DUMP = (b"X-Client-Addr: 127.0.0.1\n"
            b"X-Client-Proto: ESMTP\n"
            b"X-Mail-Args: <\"odd>name\"@example.org> SIZE=30\n"
            b"X-Rcpt-Args: <a@example.net> NOTIFY=FAILURE\n"
            b"X-Rcpt-Args: <b@example.net>\n"
            b"Received: from [127.0.0.1] ([127.0.0.1])\n"
            b"\tby smtp-sink (smtp-sink) with ESMTP id 1234abcd;\n"
            b"\tFri, 27 Nov 2026 23:13:01 +0000 (UTC)\n"
            b"Subject: x\n\n.leading dot\nlast\n\n")

    def test_fields(self):
        m = ms.parse_dump(self.DUMP)
        self.assertEqual(m.sender, '"odd>name"@example.org')
        self.assertEqual(m.recipients, ["a@example.net", "b@example.net"])
        self.assertEqual(m.rcpt_args, ["<a@example.net> NOTIFY=FAILURE", "<b@example.net>"])
        self.assertIsNone(m.helo)
        self.assertEqual(m.data, b"Subject: x\r\n\r\n.leading dot\r\nlast\r\n")

    def test_malformed(self):
        for raw in (b"", b"Subject: x\n\nbody\n\n", self.DUMP[:-1],
                    self.DUMP.replace(b"X-Mail-Args", b"X-Mial-Args"),
                    self.DUMP.replace(b"\tFri", b"Fri")):
            with self.assertRaises(ms.DumpFormatError, msg=raw[-40:]):
                ms.parse_dump(raw)


class SmtpSinkTest(ServerTest):
    def test_roundtrip(self):
        body = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: round trip\r\n"
                b"X-Folded: one\r\n\ttwo\r\n\r\n"
                b".leading dot\r\n..two dots\r\n.\r\n\r\n\r\n"
                + "8-bit: Grüße, Привет\r\n".encode()
                + b"x" * 990 + b"\r\nno final line end")
        with ms.SmtpSink() as sink:
            with smtplib.SMTP(sink.host, sink.port, local_hostname="client.herald.test") as s:
                refused = s.sendmail("a@example.org", ["b@example.net", "c@example.net"], body,
                                     mail_options=["BODY=8BITMIME"],
                                     rcpt_options=["NOTIFY=FAILURE"])
                self.assertEqual(refused, {})
                s.sendmail("", ["d@example.net"], b"Subject: bounce-like\r\n\r\nx\r\n")
            msgs = sink.wait_for(2, timeout=10)
            directory = sink.directory
        self.assert_gone(sink, directory)
        self.assertEqual(len(msgs), 2)
        first = next(m for m in msgs if m.sender == "a@example.org")
        self.assertEqual(first.recipients, ["b@example.net", "c@example.net"])
        # smtplib ends the data with CRLF when the message does not.
        self.assertEqual(first.data, body + b"\r\n")
        self.assertEqual(first.helo, "client.herald.test")
        self.assertEqual(first.mail_args, "<a@example.org> BODY=8BITMIME")
        self.assertEqual(first.rcpt_args, ["<b@example.net> NOTIFY=FAILURE",
                                           "<c@example.net> NOTIFY=FAILURE"])
        second = next(m for m in msgs if m.sender != "a@example.org")
        self.assertEqual((second.sender, second.recipients), ("", ["d@example.net"]))

    def test_message_in_progress_is_not_counted(self):
        with ms.SmtpSink() as sink, socket.create_connection((sink.host, sink.port), 10) as c:
            f = c.makefile("rb")

            def command(line, code):
                c.sendall(line)
                reply = f.readline()
                while reply[3:4] == b"-":
                    reply = f.readline()
                self.assertTrue(reply.startswith(code), reply)

            self.assertTrue(f.readline().startswith(b"220"))
            command(b"EHLO client.herald.test\r\n", b"250")
            command(b"MAIL FROM:<a@example.org>\r\n", b"250")
            command(b"RCPT TO:<b@example.net>\r\n", b"250")
            command(b"DATA\r\n", b"354")
            c.sendall(b"Subject: slow\r\n\r\nfirst half\r\n")
            ms.wait_until(lambda: os.listdir(sink.dump_dir), 10, "the dump file")
            self.assertEqual(sink.count(), 0)
            self.assertEqual(sink.messages(), [])
            command(b"second half\r\n.\r\n", b"250")
            self.assertEqual(sink.count(), 1)
            self.assertEqual(sink.messages()[0].data,
                             b"Subject: slow\r\n\r\nfirst half\r\nsecond half\r\n")
            command(b"QUIT\r\n", b"221")

    def test_hard_reject_rcpt(self):
        with ms.SmtpSink(hard_reject=["RCPT"]) as sink:
            with smtplib.SMTP(sink.host, sink.port) as s:
                with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                    s.sendmail("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\nx\r\n")
            self.assertEqual(cm.exception.recipients["b@example.net"][0], 500)
            self.assertEqual(sink.messages(), [])

    def test_soft_reject_and_421(self):
        with ms.SmtpSink(soft_reject=["MAIL"]) as sink, smtplib.SMTP(sink.host, sink.port) as s:
            s.ehlo()
            self.assertEqual(s.mail("a@example.org")[0], 450)
        with ms.SmtpSink(reply_421=["DATA"]) as sink, smtplib.SMTP(sink.host, sink.port) as s:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\nx\r\n")
            self.assertEqual(cm.exception.smtp_code, 421)
            self.assertEqual(sink.messages(), [])

    def test_delay(self):
        with ms.SmtpSink(delays={"RCPT": 1}) as sink, smtplib.SMTP(sink.host, sink.port) as s:
            s.ehlo()
            s.mail("a@example.org")
            started = time.monotonic()
            self.assertEqual(s.rcpt("b@example.net")[0], 250)
            self.assertGreaterEqual(time.monotonic() - started, 0.9)

    def test_wait_for_fails_when_nothing_comes(self):
        with ms.SmtpSink() as sink:
            with self.assertRaises(TimeoutError) as cm:
                sink.wait_for(1, timeout=0.3)
            self.assertIn(f"port {sink.port}", str(cm.exception))

    def test_stop_frees_everything(self):
        sink = ms.SmtpSink()
        with self.assertRaises(ZeroDivisionError):
            with sink:
                port, pid, directory = sink.port, sink.pid, sink.directory
                self.assertTrue(alive(pid))
                1 / 0
        self.assert_gone(sink, directory)
        self.assertFalse(alive(pid), f"smtp-sink {pid}")
        self.assertFalse(ms._port_taken(port))


class PostfixTest(ServerTest):
    def test_relay_keeps_headers(self):
        original = release_message()
        with ms.SmtpSink() as sink, ms.Postfix(relayhost=sink) as relay:
            queue_id = relay.send("press@library.example.org",
                                  ["tom.reed@example.net", "ana@example.com"], original)
            self.assertRegex(queue_id, r"^[0-9A-F]+$")
            (got,) = sink.wait_for(1, timeout=30)
            relay.wait_queue_empty(timeout=30)
            log = relay.log()
            directory = relay.directory
        self.assert_gone(relay, directory)
        self.assertEqual(got.sender, "press@library.example.org")
        self.assertEqual(sorted(got.recipients), ["ana@example.com", "tom.reed@example.net"])
        # Postfix puts its Received header on top and changes nothing else.
        m = re.match(rb"Received: [^\r]*\r\n(?:[ \t][^\r]*\r\n)*", got.data)
        self.assertTrue(m, got.data[:200])
        self.assertIn(queue_id.encode(), m.group(0))
        self.assertEqual(got.data[m.end():], original)
        self.assertRegex(log, rf"{queue_id}: to=<tom.reed@example.net>, "
                              rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink.port},.* status=sent")

    def test_bounce_for_5xx_recipient(self):
        sender, rcpt = "press@library.example.org", "gone@example.net"
        original = release_message(to=rcpt)
        message_id = email.message_from_bytes(original)["Message-ID"]
        unknown = "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"
        with ms.SmtpSink(hard_reject=["RCPT"], hard_reply=unknown) as sink, \
                ms.SmtpSink() as bounces, \
                ms.Postfix(relayhost=sink, bounce_to=bounces) as relay:
            queue_id = relay.send(sender, [rcpt], original)
            (dsn,) = bounces.wait_for(1, timeout=30)
            relay.wait_queue_empty(timeout=30)
            self.assertEqual(sink.messages(), [])
            self.assertRegex(relay.log(),
                             rf"{queue_id}: to=<{rcpt}>,.* dsn=5\.1\.1, status=bounced")
            directories = [sink.directory, bounces.directory, relay.directory]
        for server, directory in zip((sink, bounces, relay), directories):
            self.assert_gone(server, directory)
        self.assertEqual(dsn.sender, "")
        self.assertEqual(dsn.recipients, [sender])
        fields = self.check_dsn(dsn.data, rcpt, message_id)
        self.assertEqual(fields["Status"], "5.1.1")
        self.assertEqual(fields["Diagnostic-Code"], "smtp; " + unknown)

    def test_bounce_after_queue_lifetime(self):
        # 4xx from the relay and maximal_queue_lifetime = 0: one attempt,
        # then the message bounces with the temporary status.
        sender, rcpt = "press@library.example.org", "busy@example.net"
        original = release_message(to=rcpt)
        message_id = email.message_from_bytes(original)["Message-ID"]
        with ms.SmtpSink(soft_reject=["RCPT"]) as sink, ms.SmtpSink() as bounces, \
                ms.Postfix(relayhost=sink, bounce_to=bounces, maximal_queue_lifetime="0") as relay:
            relay.send(sender, [rcpt], original)
            (dsn,) = bounces.wait_for(1, timeout=30)
            relay.wait_queue_empty(timeout=30)
            directory = relay.directory
        self.assert_gone(relay, directory)
        self.assertEqual((dsn.sender, dsn.recipients), ("", [sender]))
        fields = self.check_dsn(dsn.data, rcpt, message_id)
        self.assertEqual(fields["Status"], "4.3.0")

    def test_stopped_when_the_test_fails(self):
        relay = ms.Postfix(relayhost="[127.0.0.1]:9")
        with self.assertRaises(ZeroDivisionError):
            with relay:
                directory, master = relay.directory, relay._master_pid
                self.assertTrue(ms.processes_under(directory))
                1 / 0
        self.assert_gone(relay, directory)
        self.assertFalse(alive(master), f"Postfix master {master}")

    def check_dsn(self, data, rcpt, message_id):
        """Check an RFC 3464 failure report; return its recipient fields."""
        report = email.message_from_bytes(data, policy=email.policy.default)
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        parts = {p.get_content_type(): p for p in report.iter_parts()}
        self.assertIn("message/delivery-status", parts)
        # Unfolded, with runs of white space as one space.
        status = re.sub(r"\r?\n(?=[ \t])", "", data.decode("utf-8", "replace"))
        fields = {k: " ".join(v.split()) for k, v in re.findall(
            r"^(Final-Recipient|Action|Status|Diagnostic-Code): (.*?)\r?$", status, re.M)}
        self.assertEqual(fields.get("Final-Recipient"), f"rfc822; {rcpt}")
        self.assertEqual(fields.get("Action"), "failed")
        # The returned original (its headers at least) is attached.
        returned = parts.get("message/rfc822") or parts.get("text/rfc822-headers")
        self.assertIsNotNone(returned, list(parts))
        self.assertIn(message_id, returned.as_string())
        return fields


class DovecotTest(ServerTest):
    def setUp(self):
        self.ca = ms.TestCA()
        self.ca.create()
        self.addCleanup(self.ca.remove)
        self.cert, self.key = self.ca.issue()

    def _ctx(self):
        import ssl
        return ssl.create_default_context(cafile=self.ca.cert_path)

    def test_starttls_and_imaps(self):
        import imaplib
        with ms.Dovecot(self.cert, self.key, ca=self.ca.cert_path) as dv:
            directory = dv.directory
            self.assertNotEqual(dv.port, dv.ssl_port)
            self.assertTrue(dv.url().startswith(f"imaps://herald@127.0.0.1:{dv.ssl_port}/"))
            sent = release_message()
            dv.append(sent)
            # STARTTLS on the imap port: no LOGIN before it. (Dovecot
            # counts a client whose address is the server's own as
            # secure, so this one comes from 127.0.0.2.)

            class FromElsewhere(imaplib.IMAP4):
                def _create_socket(self, timeout):
                    return socket.create_connection((self.host, self.port), timeout,
                                                    source_address=("127.0.0.2", 0))

            c = FromElsewhere(dv.host, dv.port, timeout=30)
            self.assertIn("STARTTLS", c.capabilities)
            self.assertIn("LOGINDISABLED", c.capabilities)
            with self.assertRaises(imaplib.IMAP4.error):
                c.login(dv.user, dv.password)
            c.starttls(ssl_context=self._ctx())
            c.login(dv.user, dv.password)
            typ, data = c.select("INBOX")
            self.assertEqual((typ, data[0]), ("OK", b"1"))
            c.logout()
            # a wrong password is refused (and logged)
            c = imaplib.IMAP4_SSL(dv.host, dv.ssl_port, ssl_context=self._ctx(), timeout=30)
            with self.assertRaises(imaplib.IMAP4.error):
                c.login(dv.user, "wrong")
            c.shutdown()
            ms.wait_until(lambda: "auth failed" in dv.log() or "Authentication failed" in dv.log(),
                          10, "the failed login in Dovecot's log")
            got = dv.messages()
            self.assertEqual(len(got), 1)
            self.assertEqual(got[0][1], sent)  # byte for byte
            # the mail is a Maildir the test (or Postfix) can read
            self.assertEqual(len(os.listdir(os.path.join(dv.maildir, "new"))) +
                             len(os.listdir(os.path.join(dv.maildir, "cur"))), 1)
            # its own base_dir, not the system's /run/dovecot
            self.assertTrue(os.path.exists(os.path.join(directory, "run", "master.pid")))
        self.assert_gone(dv, directory)

    def test_kill_and_start_keep_the_mail(self):
        with ms.Dovecot(self.cert, self.key, ca=self.ca.cert_path) as dv:
            dv.append(release_message(subject="one"))
            port, ssl_port = dv.port, dv.ssl_port
            dv.kill()
            self.assertEqual(ms.processes_under(dv.directory), [])
            self.assertFalse(ms._port_taken(ssl_port))
            dv.start()
            self.assertEqual((dv.port, dv.ssl_port), (port, ssl_port))
            dv.append(release_message(subject="two"), folder="INBOX")
            self.assertEqual(dv.count(), 2)
            self.assertEqual(dv.messages("Nonexistent"), [])

    def test_stopped_when_the_test_fails(self):
        dv = ms.Dovecot(self.cert, self.key)
        with self.assertRaises(ZeroDivisionError):
            with dv:
                directory, ssl_port = dv.directory, dv.ssl_port
                1 / 0
        self.assert_gone(dv, directory)
        self.assertFalse(ms._port_taken(ssl_port))


class SpamAssassinTest(unittest.TestCase):
    def test_release_scores_low(self):
        score, rules = ms.spamassassin_score(release_message())
        self.assertLess(score, 2, rules)

    def test_gtube_scores_high(self):
        message = release_message().replace(b"Dear Tom,", GTUBE.encode() + b"\r\nDear Tom,")
        score, rules = ms.spamassassin_score(message)
        self.assertGreater(score, 5, rules)
        self.assertIn("GTUBE", rules)

    def test_real_rules_score_spam_high(self):
        spam = (
            "From: \"BEST DEALS\" <winner@lottery-prize.example>\r\n"
            "To: undisclosed-recipients:;\r\n"
            "Subject: CONGRATULATIONS!!! YOU HAVE WON $1,000,000 USD !!!\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
            "<html><body><font size=7 color=red><b>CONGRATULATIONS WINNER!!!</b></font>\r\n"
            "<p>You have been selected to receive <b>$1,000,000 USD</b> cash prize.\r\n"
            "100% FREE! Act now! Claim your prize:\r\n"
            "<a href=\"http://192.0.2.7/claim.php?id=123\">http://www.paypal.com/claim</a>\r\n"
            "<p>Dear beneficiary, I am barrister to late Dr. Smith who died leaving\r\n"
            "US$15.5 million in a bank account. Send your bank account details,\r\n"
            "full name and phone number to claim the fund transfer urgently.\r\n"
            "<p>Buy cheap viagra cialis online pharmacy, no prescription needed!\r\n"
            "</body></html>\r\n").encode()
        score, rules = ms.spamassassin_score(spam)
        self.assertGreater(score, 5, rules)
        self.assertNotIn("GTUBE", rules)

    def test_missing_rules_is_an_error(self):
        saved = ms.SPAMASSASSIN_RULES
        with tempfile.TemporaryDirectory() as empty:
            ms.SPAMASSASSIN_RULES = empty
            try:
                with self.assertRaisesRegex(ms.HarnessError, "rules missing"):
                    ms.spamassassin_score(release_message())
            finally:
                ms.SPAMASSASSIN_RULES = saved


if __name__ == "__main__":
    # Stopped with SIGTERM (by hand, or by ctest's TIMEOUT_SIGNAL_NAME),
    # leave the with blocks through SystemExit so the servers are stopped.
    # (ctest's default SIGKILL to the process tree takes smtp-sink along;
    # a Postfix master, a daemon, exits by itself after its lifetime.)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    unittest.main(verbosity=2)
