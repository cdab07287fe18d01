#!/usr/bin/env python3
"""herald's SMTP transport against real servers on 127.0.0.1.

Usage: test_transport_tls.py TRANSPORT_SEND

TRANSPORT_SEND is tests/transport_send.c built (herald's transports as a
command, one key=value line per message). Each test starts its servers
(tests/lib/mailservers.py), sends, and checks what herald reported against
what the server saw:
- many messages over few reused connections arrive byte-identical, each
  once, and no connection carries more than --per-conn messages (smtp-sink
  -c counts the sessions, and that each ended with QUIT);
- refusals at MAIL, RCPT, DATA and the final dot, 4xx and 5xx, a 421 at
  the greeting, a dropped connection and a hung server are each reported
  with the stage, code, enhanced status and flags they deserve;
- TLS: STARTTLS to a server with a certificate from a CA made by the test
  succeeds with that CA and fails (tls=1) with another CA or a certificate
  for another address; smtp:// to a loopback server that offers STARTTLS
  is upgraded; smtps:// works; smtp:// to a host that is not a loopback
  address needs STARTTLS and gives up without it;
- AUTH PLAIN and LOGIN over TLS succeed with the right password, a wrong
  one is stage auth, a relay that offers no AUTH is stage auth; a loopback
  relay offering AUTH without STARTTLS gets no AUTH unless allow_plain;
- the password never appears in anything the command prints.
Needs root for smtp-sink (as CI runs).
"""
import base64
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import faultsmtp as fs  # noqa: E402
import mailservers as ms  # noqa: E402
import transcript  # noqa: E402

DRIVER = ""
PASSWORD = "Pw-7f3a9c-herald-secret"
transcript.secret(PASSWORD)
SENDER = "press@herald.test"

LINE = re.compile(r'^n=(\d+) stage=(\w+) code=(\d+) status=(\S*) queue_id=(\S*) '
                  r'timeout=([01]) tls=([01]) conn_lost=([01]) error=(\d+) ms=(\d+) '
                  r'text="((?:[^"\\]|\\.)*)" error_text="((?:[^"\\]|\\.)*)"$')


def message(size=3000):
    """A plain CRLF message of about size bytes, with a leading-dot line
    (curl must dot-stuff it) and a line of only a dot."""
    head = (b"From: Press Office <press@herald.test>\r\n"
            b"To: News Desk <desk@herald.test>\r\n"
            b"Subject: Coalition report launch\r\n"
            b"Message-ID: <launch-1@herald.test>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
    body = b".a line that starts with a dot\r\n.\r\n"
    line = b"Thirteen organisations publish their joint report today.\r\n"
    while len(head) + len(body) + len(line) <= size:
        body += line
    return head + body


class Result:
    def __init__(self, proc, lines, seconds):
        self.proc = proc
        self.lines = lines  # one dict per message, by n
        self.seconds = seconds
        self.output = proc.stdout + proc.stderr

    def one(self):
        if len(self.lines) != 1:
            raise AssertionError(f"want one result line, got {len(self.lines)}:\n{self.output}")
        return self.lines[0]


def send(url, *args, data=None, env=None, timeout=120):
    """Run the driver; parse its lines."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.monotonic()
    proc = subprocess.run([DRIVER, url, *args], input=message() if data is None else data,
                          capture_output=True, env=full_env, timeout=timeout)
    seconds = time.monotonic() - t0
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    transcript.record("transport_send", proc.stdout + proc.stderr)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"transport_send exited {proc.returncode}:\n"
                             f"{proc.stdout}{proc.stderr}")
    lines = []
    for raw in proc.stdout.splitlines():
        m = LINE.match(raw)
        if not m:
            raise AssertionError(f"unparseable line: {raw!r}")
        lines.append(dict(n=int(m[1]), stage=m[2], code=int(m[3]), status=m[4],
                          queue_id=m[5], timeout=m[6] == "1", tls=m[7] == "1",
                          conn_lost=m[8] == "1", error=int(m[9]), ms=int(m[10]),
                          text=m[11], error_text=m[12]))
    if "summary sent=" not in proc.stderr:
        raise AssertionError(f"no summary line:\n{proc.stderr}")
    return Result(proc, sorted(lines, key=lambda x: x["n"]), seconds)


def sink_counters(sink):
    """smtp-sink -c's last counters: {'sess': n, 'quit': n, 'mesg': n}."""
    with open(sink.log_path, "rb") as f:
        text = f.read().decode("ascii", "replace")
    found = re.findall(r"sess=(\d+) quit=(\d+) mesg=(\d+)", text)
    if not found:
        return {"sess": 0, "quit": 0, "mesg": 0}
    sess, quit, mesg = map(int, found[-1])
    return {"sess": sess, "quit": quit, "mesg": mesg}


def settled_counters(sink, messages):
    """The counters once every session has ended (smtp-sink updates them
    when a session ends) and all messages are counted."""
    def settled():
        c = sink_counters(sink)
        return c if c["quit"] == c["sess"] and c["mesg"] == messages else None
    try:
        return ms.wait_until(settled, 10, "smtp-sink's session counters to settle")
    except TimeoutError as e:
        raise AssertionError(f"{e}: {sink_counters(sink)}") from None


class ReuseTest(unittest.TestCase):
    def test_many_messages_few_connections(self):
        data = message()
        with ms.SmtpSink(extra_args=["-c"]) as sink:
            r = send(f"smtp://127.0.0.1:{sink.port}", "--count", "400", "--conns", "4",
                     "--per-conn", "25", "--to", "desk{n}@herald.test", data=data)
            self.assertEqual(r.proc.returncode, 0, r.output)
            self.assertEqual(len(r.lines), 400)
            for x in r.lines:
                self.assertEqual((x["stage"], x["code"], x["status"]), ("done", 250, "2.0.0"), x)
            got = sink.wait_for(400)
            self.assertEqual(len(got), 400)
            self.assertEqual(sorted(m.recipients[0] for m in got),
                             sorted(f"desk{n}@herald.test" for n in range(400)))
            for m in got:
                self.assertEqual(m.data, data, m.path)
                self.assertEqual(m.sender, SENDER)
            # Every session ended with QUIT; 25 a session at most means
            # at least 16 sessions, and with 4 in parallel at most 3 more
            # end short.
            c = settled_counters(sink, 400)
            self.assertGreaterEqual(c["sess"], 16, c)
            self.assertLessEqual(c["sess"], 19, c)

    def test_exact_bound_on_one_connection(self):
        # 110 messages, 10 a connection, one at a time: exactly 11
        # sessions (11 a connection would make 10, 9 would make 13).
        with ms.SmtpSink(extra_args=["-c"]) as sink:
            r = send(f"smtp://127.0.0.1:{sink.port}", "--count", "110", "--conns", "1",
                     "--per-conn", "10")
            self.assertEqual(r.proc.returncode, 0, r.output)
            sink.wait_for(110)
            c = settled_counters(sink, 110)
            self.assertEqual(c["sess"], 11, c)


class FaultTest(unittest.TestCase):
    def refused(self, expect_stage, expect_code, expect_status, **sink_args):
        with ms.SmtpSink(**sink_args) as sink:
            r = send(f"smtp://127.0.0.1:{sink.port}")
            x = r.one()
            self.assertEqual(r.proc.returncode, 1, r.output)
            self.assertEqual((x["stage"], x["code"], x["status"]),
                             (expect_stage, expect_code, expect_status), r.output)
            self.assertFalse(x["conn_lost"] or x["timeout"] or x["tls"], x)
            return x, sink

    def test_rcpt_soft_reject(self):
        x, _ = self.refused("rcpt", 450, "4.3.0", soft_reject=["RCPT"])
        self.assertIn("450", x["text"])

    def test_rcpt_hard_reject(self):
        self.refused("rcpt", 550, "5.1.1", hard_reject=["RCPT"],
                     hard_reply="550 5.1.1 No such user here")

    def test_mail_reject(self):
        self.refused("mail", 451, "4.3.0", soft_reject=["MAIL"],
                     soft_reply="451 4.3.0 Try again later")

    def test_data_reject(self):
        self.refused("data", 554, "5.3.0", hard_reject=["DATA"],
                     hard_reply="554 5.3.0 No data today")

    def test_dot_reject(self):
        self.refused("dot", 552, "5.3.4", hard_reject=["."],
                     hard_reply="552 5.3.4 Message too big")

    def test_421_at_greeting(self):
        with ms.SmtpSink(reply_421=["CONNECT"]) as sink:
            x = send(f"smtp://127.0.0.1:{sink.port}").one()
            self.assertEqual((x["stage"], x["code"]), ("connect", 421), x)
            self.assertEqual(sink.count(), 0)

    def test_421_at_rcpt(self):
        with ms.SmtpSink(reply_421=["RCPT"]) as sink:
            x = send(f"smtp://127.0.0.1:{sink.port}").one()
            self.assertEqual((x["stage"], x["code"]), ("rcpt", 421), x)

    def test_disconnect_at_data(self):
        with ms.SmtpSink(disconnect=["DATA"]) as sink:
            x = send(f"smtp://127.0.0.1:{sink.port}").one()
            self.assertEqual((x["stage"], x["code"], x["conn_lost"]), ("data", 0, True), x)

    def test_disconnect_after_dot(self):
        with ms.SmtpSink(disconnect=["."]) as sink:
            x = send(f"smtp://127.0.0.1:{sink.port}").one()
            self.assertEqual((x["stage"], x["code"], x["conn_lost"]), ("dot", 0, True), x)

    def test_hung_server_at_rcpt(self):
        with ms.SmtpSink(delays={"RCPT": 60}) as sink:
            r = send(f"smtp://127.0.0.1:{sink.port}", "--timeout", "2")
            x = r.one()
            self.assertEqual((x["stage"], x["timeout"], x["code"]), ("rcpt", True, 0), x)
            self.assertLess(r.seconds, 20, "the timeout did not cut the wait short")
            self.assertGreaterEqual(x["ms"], 1900, x)

    def test_hung_server_after_dot(self):
        with ms.SmtpSink(delays={".": 60}) as sink:
            r = send(f"smtp://127.0.0.1:{sink.port}", "--timeout", "2")
            x = r.one()
            self.assertEqual((x["stage"], x["timeout"]), ("dot", True), x)
            self.assertLess(r.seconds, 20)

    def test_nothing_listening(self):
        port = ms.free_port()
        x = send(f"smtp://127.0.0.1:{port}").one()
        self.assertEqual((x["stage"], x["code"], x["conn_lost"]), ("connect", 0, False), x)
        self.assertEqual(x["error"], 7, x)  # CURLE_COULDNT_CONNECT


class HangPlan(fs.FaultPlan):
    """faultsmtp's rule for HangWhileDotTest: the first connection answers
    until the final dot and then hangs; every later one hangs at EHLO."""

    def decide(self, key, attempt, command):
        if command == "DOT" or (command == "EHLO" and key != "conn1"):
            return "hang"
        return "ok"


class HangWhileDotTest(unittest.TestCase):
    # test_hangs_end_at_their_timeouts and
    # test_waiting_behind_a_dot_is_not_a_timeout drive
    # transport_smtp_multi_backend (--multi: every connection in one
    # libcurl multi, as herald sent before it gave each connection a
    # thread), where one message's dot blocks the others; the other two
    # cases, herald's transport.
    def test_hangs_end_at_their_timeouts(self):
        # libcurl 7.88 blocks every transfer while it waits for one
        # message's reply after the dot (here 6 s); a relay hanging at
        # another connection's EHLO must still be left at the connect
        # timeout (1 s), give or take the second curl's progress callback
        # takes, not when the dot's wait is over
        with fs.FaultSmtp(HangPlan()) as srv:
            r = send(f"smtp://127.0.0.1:{srv.port}", "--count", "2",
                     "--conns", "2", "--per-conn", "1", "--timeout", "6",
                     "--connect-timeout", "1", "--multi")
            stages = sorted((x["stage"], x["timeout"]) for x in r.lines)
            self.assertEqual(stages, [("connect", True), ("dot", True)], r.output)
            ehlo = [x for x in r.lines if x["stage"] == "connect"][0]
            self.assertIn("no answer from the relay within 1 s while connecting",
                          ehlo["error_text"], ehlo)
            closed = srv.closed_hangs()
            hangs = {h.command: h for h in closed}
            self.assertEqual(sorted(hangs), ["DOT", "EHLO"], closed)
            h = hangs["EHLO"]
            self.assertIsNotNone(h.end, "the client never closed the hung connection")
            self.assertLess(h.end - h.start, 2.5,
                            f"the EHLO hang lasted {h.end - h.start:.2f} s, connect "
                            f"timeout 1 s: it waited for the other message's dot")
            # the dot's own wait ends at its timeout: curl closing that
            # connection (--per-conn 1) waited the whole timeout again for
            # the reply to its QUIT
            h = hangs["DOT"]
            self.assertIsNotNone(h.end, "the client never closed after the dot")
            self.assertLess(h.end - h.start, 7.5,
                            f"the dot hang lasted {h.end - h.start:.2f} s, timeout 6 s")
            dot = [x for x in r.lines if x["stage"] == "dot"][0]
            self.assertIn("no reply to the final dot within 6 s", dot["error_text"], dot)

    def test_dots_wait_side_by_side(self):
        # a relay that answers every final dot after 2 s: four messages
        # over four connections wait for their dots at the same time
        # (libcurl 7.88 waits for a dot's reply blocking its whole multi
        # handle, so one multi for all connections sent the next dot only
        # after the last reply: one message per 2 s)
        class Plan(fs.FaultPlan):
            def decide(self, key, attempt, command):
                return "slow" if command == "DOT" else "ok"

            def slow_delay(self, key, attempt, command):
                return 2.0

        with fs.FaultSmtp(Plan()) as srv:
            r = send(f"smtp://127.0.0.1:{srv.port}", "--count", "4",
                     "--conns", "4", "--timeout", "10", "--to", "r{n}@herald.test")
            self.assertEqual([x["stage"] for x in r.lines], ["done"] * 4, r.output)
            starts = sorted(e.at for e in srv.events
                            if e.command == "DOT" and e.action == "slow")
            self.assertEqual(len(starts), 4, srv.events)
            self.assertLess(starts[-1] - starts[0], 2.0,
                            f"the dots reached the relay {starts[-1] - starts[0]:.2f} s "
                            f"apart: each waited for the one before it")

    def test_close_while_dots_wait(self):
        # the transport closed (heraldd stopping) while two messages wait
        # for their dots' replies (timeout 60 s): both are done as
        # aborted, their connections closed, within seconds, not when the
        # relay would have timed out
        class Plan(fs.FaultPlan):
            def decide(self, key, attempt, command):
                return "hang" if command == "DOT" else "ok"

        with fs.FaultSmtp(Plan()) as srv:
            r = send(f"smtp://127.0.0.1:{srv.port}", "--count", "2", "--conns", "2",
                     "--timeout", "60", "--close-after", "2")
            self.assertEqual([(x["stage"], x["error_text"]) for x in r.lines],
                             [("local", "aborted")] * 2, r.output)
            self.assertLess(r.seconds, 10, r.output)
            closed = srv.closed_hangs()
            self.assertEqual(len(closed), 2, closed)
            for h in closed:
                self.assertIsNotNone(h.end, "a connection left open")
                self.assertLess(h.end - h.start, 10)

    def test_waiting_behind_a_dot_is_not_a_timeout(self):
        # Three messages over two connections: r1 is refused at once, so
        # the third is handed to curl about when r0's dot starts to hang
        # (6 s), and curl blocks for that dot before it gets to the
        # third. Depending on how far curl took it first, curl itself
        # then fails it as a connect timeout (it counts the time it was
        # blocked), or it connects after the dot and hangs at MAIL. That
        # wait was never the relay's: herald must not call it a connect
        # timeout of its own (connect timeout 1 s) and let the transfer
        # go on regardless, which left the hang at MAIL unwatched for
        # twice the reply timeout (seen in reliability/faults; here in
        # some runs, as curl's order varies).
        class Plan(fs.FaultPlan):
            def decide(self, key, attempt, command):
                if command == "RCPT" and key.startswith("r1@"):
                    return "5xx"
                if command == "DOT" and key.startswith("r0@"):
                    return "hang"
                if command == "MAIL" and attempt == 3:
                    return "hang"
                return "ok"

        with fs.FaultSmtp(Plan()) as srv:
            r = send(f"smtp://127.0.0.1:{srv.port}", "--count", "3",
                     "--conns", "2", "--timeout", "6", "--connect-timeout", "1",
                     "--to", "r{n}@herald.test", "--multi")
            got = [(x["stage"], x["code"], x["timeout"]) for x in r.lines]
            self.assertEqual(got[:2], [("dot", 0, True), ("rcpt", 550, False)], r.output)
            self.assertIn(got[2], [("connect", 0, True), ("mail", 0, True)], r.output)
            self.assertNotIn("while connecting", r.lines[2]["error_text"], r.output)
            closed = srv.closed_hangs()
            hangs = {h.command: h for h in closed}
            self.assertEqual(sorted(hangs), ["DOT", "MAIL"] if got[2][0] == "mail"
                             else ["DOT"], closed)
            for h in hangs.values():
                self.assertIsNotNone(h.end, f"{h.command}: the client never closed")
                self.assertLess(h.end - h.start, 7.5,
                                f"the hang at {h.command} lasted "
                                f"{h.end - h.start:.2f} s, timeout 6 s")

def localhost_in_hosts():
    """True when /etc/hosts maps localhost to 127.0.0.1 (no DNS needed)."""
    try:
        with open("/etc/hosts") as f:
            return any(line.split()[:1] == ["127.0.0.1"] and "localhost" in line.split()[1:]
                       for line in f if line.strip() and not line.startswith("#"))
    except OSError:
        return False


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ca = ms.TestCA()
        cls.ca.create()
        cls.other = ms.TestCA("another test CA")
        cls.other.create()
        cls.cert, cls.key = cls.ca.issue()

    @classmethod
    def tearDownClass(cls):
        cls.ca.remove()
        cls.other.remove()

    def test_starttls_with_the_right_ca(self):
        data = message()
        with ms.TlsSmtpServer(cert=self.cert, key=self.key) as srv:
            r = send(f"smtp://127.0.0.1:{srv.port}", "--ca", self.ca.cert_path, "--count", "3",
                     data=data)
            self.assertEqual(r.proc.returncode, 0, r.output)
            # three connections at once: the server numbers them in any order
            self.assertEqual(sorted(x["queue_id"] for x in r.lines), ["T1", "T2", "T3"],
                             r.output)
            got = srv.messages()
            self.assertEqual(len(got), 3)
            for m in got:
                # upgraded: the server requires STARTTLS before MAIL anyway,
                # and says the session was encrypted
                self.assertTrue(m.tls)
                self.assertEqual(m.data, data)

    def test_starttls_with_another_ca(self):
        with ms.TlsSmtpServer(cert=self.cert, key=self.key) as srv:
            x = send(f"smtp://127.0.0.1:{srv.port}", "--ca", self.other.cert_path).one()
            self.assertEqual((x["stage"], x["tls"], x["code"]), ("connect", True, 0), x)
            self.assertEqual(srv.messages(), [])

    def test_certificate_for_another_address(self):
        cert, key = self.ca.issue(ip="127.0.0.2")
        with ms.TlsSmtpServer(cert=cert, key=key) as srv:
            x = send(f"smtp://127.0.0.1:{srv.port}", "--ca", self.ca.cert_path).one()
            self.assertEqual((x["stage"], x["tls"]), ("connect", True), x)
            self.assertEqual(srv.messages(), [])

    def test_implicit_tls(self):
        with ms.TlsSmtpServer(cert=self.cert, key=self.key, tls="implicit") as srv:
            r = send(f"smtps://127.0.0.1:{srv.port}", "--ca", self.ca.cert_path)
            self.assertEqual(r.one()["stage"], "done", r.output)
            self.assertTrue(srv.messages()[0].tls)
            self.assertIn("smtps://127.0.0.1", r.proc.stderr)
            x = send(f"smtps://127.0.0.1:{srv.port}", "--ca", self.other.cert_path).one()
            self.assertEqual((x["stage"], x["tls"]), ("connect", True), x)

    def test_plain_loopback_relay_without_starttls(self):
        # smtp-sink offers no STARTTLS: a loopback relay may be plain.
        with ms.SmtpSink() as sink:
            r = send(f"smtp://127.0.0.1:{sink.port}")
            self.assertEqual(r.one()["stage"], "done", r.output)
            self.assertIn("STARTTLS if offered", r.proc.stderr)

    @unittest.skipUnless(localhost_in_hosts(), "/etc/hosts does not map localhost")
    def test_starttls_required_for_a_name(self):
        # "localhost" is a name, not a loopback address: TLS is required,
        # and smtp-sink offers none, so nothing is sent.
        with ms.SmtpSink() as sink:
            r = send(f"smtp://localhost:{sink.port}")
            x = r.one()
            self.assertEqual((x["stage"], x["tls"]), ("connect", True), r.output)
            self.assertIn("STARTTLS required", r.proc.stderr)
            self.assertEqual(sink.count(), 0)


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ca = ms.TestCA()
        cls.ca.create()
        cls.cert, cls.key = cls.ca.issue()

    @classmethod
    def tearDownClass(cls):
        cls.ca.remove()

    def send_auth(self, url, password, *args):
        r = send(url, "--ca", self.ca.cert_path, "--user", "press", "--password-env",
                 "HERALD_TEST_PW", *args,
                 env={"HERALD_TEST_PW": password, "HERALD_SMTP_TRACE": "1"})
        self.assertNoPassword(r.output, password)
        return r

    def assertNoPassword(self, output, password):
        forms = [password, base64.b64encode(password.encode()).decode(),
                 base64.b64encode(b"\0press\0" + password.encode()).decode()]
        for f in forms:
            self.assertNotIn(f, output, "the password (or its base64) was printed")

    def test_plain_and_login(self):
        for mech in ("PLAIN", "LOGIN"):
            with self.subTest(mech=mech), ms.TlsSmtpServer(
                    cert=self.cert, key=self.key, users={"press": PASSWORD},
                    mechanisms=[mech]) as srv:
                r = self.send_auth(f"smtp://127.0.0.1:{srv.port}", PASSWORD, "--count", "2")
                self.assertEqual([x["stage"] for x in r.lines], ["done", "done"], r.output)
                got = srv.messages()
                self.assertEqual([(m.auth_user, m.auth_mechanism, m.tls) for m in got],
                                 [("press", mech, True)] * 2)

    def test_wrong_password(self):
        wrong = PASSWORD + "-wrong"
        with ms.TlsSmtpServer(cert=self.cert, key=self.key, users={"press": PASSWORD}) as srv:
            r = self.send_auth(f"smtp://127.0.0.1:{srv.port}", wrong)
            x = r.one()
            self.assertEqual((x["stage"], x["code"], x["status"]), ("auth", 535, "5.7.8"), x)
            self.assertEqual(srv.messages(), [])
            self.assertGreaterEqual(srv.auth_failures(), 1)

    def test_plain_auth_needs_allow_plain(self):
        # A loopback relay that offers AUTH but no STARTTLS: without
        # allow_plain the password would go in clear, so nothing is sent
        # (no AUTH reaches the server) and the refusal names the setting;
        # with it, AUTH in clear is what the operator asked for.
        class Counting(ms.TlsSmtpServer):
            auths = 0  # every AUTH the server saw, right or wrong

            def _authenticator(self, *args):
                self.auths += 1
                return super()._authenticator(*args)

        with Counting(tls="none", users={"press": PASSWORD}) as srv:
            url = f"smtp://127.0.0.1:{srv.port}"
            r = self.send_auth(url, PASSWORD)
            x = r.one()
            self.assertEqual((x["stage"], x["tls"]), ("connect", True), r.output)
            self.assertIn("relay.allow_plain", x["error_text"])
            self.assertEqual((srv.auths, srv.messages()), (0, []), "AUTH was sent")
            r = self.send_auth(url, PASSWORD, "--allow-plain")
            self.assertEqual(r.one()["stage"], "done", r.output)
            self.assertEqual([(m.auth_user, m.tls) for m in srv.messages()],
                             [("press", False)])

    def test_relay_without_auth(self):
        # smtp-sink -a offers no AUTH: going on without it would make the
        # relay's "relay access denied" look like the recipient's fault.
        # (It offers no STARTTLS either: allow_plain lets herald try.)
        with ms.SmtpSink(extra_args=["-a"]) as sink:
            r = self.send_auth(f"smtp://127.0.0.1:{sink.port}", PASSWORD,
                               "--allow-plain")
            x = r.one()
            self.assertEqual(x["stage"], "auth", r.output)
            self.assertIn("offered no AUTH", x["error_text"])
            self.assertEqual(sink.count(), 0)

    def test_password_in_url_refused(self):
        r = subprocess.run([DRIVER, f"smtp://press:{PASSWORD}@127.0.0.1:2525"],
                           input=b"x\r\n", capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertNoPassword((r.stdout + r.stderr).decode("utf-8", "replace"), PASSWORD)
        self.assertIn(b"user or password", r.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2 or not os.access(sys.argv[1], os.X_OK):
        sys.exit("usage: test_transport_tls.py TRANSPORT_SEND")
    DRIVER = sys.argv.pop(1)
    unittest.main(verbosity=2)
