#!/usr/bin/env python3
"""herald-web: the public unsubscribe page, /healthz and /metrics.

Each case delivers the sample release through heraldd into a Maildir with
signed return paths (bounces.domain, a bounce secret) and
bounces.unsubscribe_url pointing at a herald-web the case starts on
127.0.0.1 with HTTPS (a certificate from a test CA,
tests/lib/mailservers.py TestCA), and drives it with Python's HTTP client,
the link taken from List-Unsubscribe of a delivered message.

`test_web.py --herald H --heraldd D --herald-web W --source S CASE`
(ctest runs each as web/CASE; those also under pg/ with the store in
PostgreSQL):

  unsubscribe  a Russian journalist's link: GET shows the page in Russian
               with the coalition's Russian name and changes nothing;
               POST List-Unsubscribe=One-Click suppresses the address
               (herald suppress list), records an unsubscribe event
               matched by the token (herald bounces, reason web); a second
               POST changes nothing more; undo takes it back, a second
               undo cannot; unsubscribing again works; the next release
               skips the address
  forged       a token with one character changed, the delivery's
               bounces+ token (signed, but the other kind), a token
               signed for a key no delivery has, and malformed ones: 404,
               nothing changed
  metrics      a one-click POST as multipart/form-data (RFC 8058's
               SHOULD); /healthz is ok; /metrics is Prometheus text, every
               metric herald_..., its figures those of herald status
               --format json and herald bounces
  plain_http   plain HTTP is refused (exit 78, saying why) on an address
               that is not loopback, from the config and from --listen;
               served on 127.0.0.1; SIGTERM stops it with exit 0
  hostile      <script> in a journalist's name and in the coalition's
               name is shown as text; a body over 4 KiB (413) and headers
               over 16 KiB are refused; path traversal (.., %2e%2e) is
               404; a POST without One-Click (form or multipart) is 400
               and changes nothing; every page carries a CSP without
               scripts

The admin console's accounts and sessions (web.users, herald passwd):

  passwd       herald passwd from a pipe prints an argon2id hash (the
               encoded form, m >= 19 MiB, t >= 2, p >= 1, a 16-byte salt)
               that libargon2 verifies for that password and not another;
               a new salt each time; an empty password is refused (65)
  login        GET /login is a form; a wrong password and an unknown name
               get the same 401 page in about the same time; the right
               one sets herald_session (64 hex digits, HttpOnly,
               SameSite=Strict, Path=/, Secure over HTTPS) and 303 to /;
               the releases page shows the sample release with the
               figures of herald status --format json, escaped, with the
               CSP; logout revokes the session (the old cookie then gets
               303 to /login); a new login gets a new id, also when the
               browser sends one (planted ids are not taken over)
  session_idle web.session_idle: 2s; requests every half second keep a
               session; after 3 s without one its cookie gets 303 to
               /login
  csrf         POST /logout without a token, with a wrong one and with
               another session's: 403, and the session still works; the
               releases page's form carries the token; with it, logout
  throttle     the account rule: 5 wrong passwords for alice, then her
               right one is 429 (Retry-After) until the delay passes,
               while bob from the same address still logs in (the
               address allows 20); after the delay alice logs in and her
               count is cleared. The address rule: 20 failures from
               127.0.0.1 (unknown names, each under 5) and bob's right
               password is 429 too
  no_session   every admin URL (/, /logout; GET, HEAD, POST) without a
               cookie, with a forged one, a malformed one or a logged-out
               one: 303 to /login, no release name in the body
  config       web.users with a bad role, a hash that is not argon2id, a
               duplicate name, an unknown key: herald config and
               herald-web exit 78 with file:line:column (herald check 65,
               as for any error in its inputs); herald config shows the
               users and never their hashes
"""
import base64
import ctypes
import ctypes.util
import email
import email.policy
import hashlib
import hmac
import html
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mailservers as ms  # noqa: E402
import test_delivery as td  # noqa: E402

A = None
SAMPLE = td.SAMPLE
Failure = td.Failure
check = td.check
SECRET = b"herald-test-secret-0123456789abcdef"
DOM = "bounces.coalition.example.org"
RU = "o.veretennikova@example.org"


def token(kind, key):
    """verp.c's token, computed here from the secret."""
    mac = hmac.new(SECRET, f"herald-verp-v1:{kind}:{key}".encode(),
                   hashlib.sha256).digest()[:10]
    return key + "-" + base64.b32encode(mac).decode().lower()


class Web:
    """The sample release delivered into a Maildir, and herald-web over
    its store with HTTPS on 127.0.0.1."""

    def __init__(self, ca, release="templates/report-launch",
                 to="lists/journalists.yaml", web_extra=""):
        self.port = ms.free_port()
        cert, key = ca.issue()
        self.ca = ca
        self.env = td.Env(
            "maildir:{dir}/outbox",
            relay_extra=f"bounces:\n  domain: {DOM}\n"
            f"  secret_file: bounce.secret\n"
            f"  unsubscribe_url: https://127.0.0.1:{self.port}/u/{{token}}\n"
            f"web:\n  listen: 127.0.0.1:{self.port}\n"
            f"  tls_cert: {cert}\n  tls_key: {key}\n" + web_extra)
        self.proc = None
        try:
            self.env.write_private("bounce.secret", SECRET + b"\n")
            self.env.herald("queue", release, "--to", to)
            self.env.drain()
            self.start()
        except BaseException:
            self.close()
            raise

    def start(self):
        self.log = os.path.join(self.env.dir, "herald-web.log")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [A.herald_web, "--config", self.env.cfg], cwd=A.source,
                stdout=log, stderr=log,
                env=dict(os.environ, **self.env.run_env))
        ms.wait_until(lambda: self.healthy(), 30, "herald-web answering")

    def healthy(self):
        if self.proc.poll() is not None:
            raise Failure(f"herald-web exited {self.proc.returncode}: "
                          f"{self.log_text()}")
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def ctx(self):
        c = ssl.create_default_context(cafile=self.ca.cert_path)
        return c

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body text) of one request, path sent as
        given (no normalisation)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=self.ctx(), timeout=20)
        try:
            h = dict(headers or {})
            if body is not None:
                h.setdefault("Content-Type",
                             "application/x-www-form-urlencoded")
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
            return r.status, r.headers, text
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body="List-Unsubscribe=One-Click"):
        return self.request("POST", path, body=body)

    def messages(self):
        """{recipient: message} of the Maildir."""
        md = os.path.join(self.env.dir, "outbox", "new")
        out = {}
        for name in os.listdir(md):
            with open(os.path.join(md, name), "rb") as f:
                m = email.message_from_bytes(f.read(),
                                             policy=email.policy.default)
            out[m["To"].addresses[0].addr_spec] = m
        return out

    def link(self, who):
        """The https URL of List-Unsubscribe in who's message, as a
        path."""
        lu = " ".join(str(self.messages()[who]["List-Unsubscribe"]).split())
        m = re.search(r"<https://127\.0\.0\.1:(\d+)(/u/[^>]+)>", lu)
        check(m is not None and int(m.group(1)) == self.port,
              f"List-Unsubscribe {lu!r}")
        return m.group(2)

    def state(self):
        """What an unsubscribe may change: the suppression list, the
        events, the deliveries' states."""
        e = self.env
        return (e.herald("suppress", "list", "--format", "json").stdout,
                e.herald("bounces", "--format", "json").stdout,
                e.herald("status", "--format", "json").stdout,
                e.herald("log", "--format", "json").stdout)

    def stop(self):
        """SIGTERM: herald-web stops cleanly (exit 0)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=20)
            check(rc == 0, f"herald-web exited {rc} on SIGTERM: "
                  f"{self.log_text()}")

    def close(self):
        try:
            self.stop()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.env.close()


def check_page(status, headers, text, want_status=200):
    check(status == want_status, f"status {status}, want {want_status}: "
          f"{text[:500]}")
    csp = headers.get("Content-Security-Policy", "")
    check("script-src 'none'" in csp and "default-src 'none'" in csp,
          f"CSP {csp!r}")
    check("<script" not in text.lower() and "http://" not in text and
          "https://" not in text, f"a script or remote load: {text}")


def case_unsubscribe():
    with ms.TestCA() as ca:
        w = Web(ca)
        try:
            path = w.link(RU)
            before = w.state()
            st, h, text = w.get(path)
            check_page(st, h, text)
            check('<html lang="ru">' in text and "Отписаться" in text and
                  "Коалиция за освобождение политических заключённых "
                  "Кремля" in text and RU in text and
                  "Ольга Веретенникова" in text, f"the page: {text}")
            check('method="post"' in text and
                  'name="List-Unsubscribe" value="One-Click"' in text,
                  f"no button: {text}")
            w.request("HEAD", path)
            check(w.state() == before, "GET changed the store")

            # one-click (RFC 8058)
            st, h, text = w.post(path)
            check_page(st, h, text)
            check("Вы отписаны" in text and "Подписать меня снова" in text
                  and f'action="{path}/undo"' in text, text)
            sup = td.suppression_list(w.env)
            check(set(sup) == {RU}, f"suppressed: {sorted(sup)}")
            ev = [e for e in td.events(w.env) if e["recipient"] == RU]
            check(len(ev) == 1 and ev[0]["type"] == "unsubscribe" and
                  ev[0]["matched_by"] == "verp" and
                  ev[0]["reason"] == "web" and not ev[0]["held"],
                  f"events: {ev}")
            show = w.env.herald("show", RU).stdout.decode()
            check("unsubscribe" in show, f"herald show: {show}")
            log = w.env.attempts("--recipient", RU)
            check(any(r["result"] == "unsubscribed" for r in log),
                  f"herald log: {log}")
            after = w.state()
            # again: nothing more
            st, h, text = w.post(path)
            check_page(st, h, text)
            check(w.state() == after, "a second POST changed the store")

            # I clicked by mistake
            st, h, text = w.post(path + "/undo", "undo=1")
            check_page(st, h, text)
            check("Вы снова подписаны" in text, text)
            check(td.suppression_list(w.env) == {}, "still suppressed")
            st, h, text = w.post(path + "/undo", "undo=1")
            check_page(st, h, text)
            check("нельзя отменить" in text, text)
            # unsubscribing again after an undo works
            st, h, text = w.post(path)
            check_page(st, h, text)
            check(set(td.suppression_list(w.env)) == {RU},
                  "not suppressed after the second unsubscribe")
            # the undo of the web unsubscribe cannot lift another rule's
            # suppression: an admin's entry stays
            w.env.herald("suppress", "remove", RU)
            w.env.herald("suppress", "add", RU, "--reason", "asked by phone")
            st, h, text = w.post(path + "/undo", "undo=1")
            check("нельзя отменить" in text and
                  set(td.suppression_list(w.env)) == {RU},
                  "undo lifted an admin's suppression")

            # the next release skips the address
            rel = td.other_release(w.env, "second-release")
            r = w.env.herald("queue", rel, "--to", "lists/journalists.yaml")
            out = r.stdout.decode()
            check(f"queued release 2 (second-release): {SAMPLE - 1} "
                  f"recipients, 1 suppressed address skipped" in out, out)
            row = w.env.attempts("--recipient", RU, "--release", "2")
            check(all(x["result"] == "suppressed" for x in row),
                  f"second release for {RU}: {row}")
            check("web unsubscribe delivery=" in w.log_text() and
                  SECRET.decode() not in w.log_text(), w.log_text())
        finally:
            w.close()


def case_forged():
    with ms.TestCA() as ca:
        w = Web(ca)
        try:
            msgs = w.messages()
            path = w.link(RU)
            tok = path[len("/u/"):]
            key = tok.split("-")[0]
            before = w.state()
            flip = tok[:-1] + ("a" if tok[-1] != "a" else "b")
            flip_key = ("f" if tok[0] != "f" else "e") + tok[1:]
            check(len(msgs) == SAMPLE, f"{len(msgs)} messages delivered")
            # the delivery's return-path token: signed, the other kind
            bounces_tok = token("bounces", key)
            unknown = token("unsubscribe", "0" * 32)
            check(tok == token("unsubscribe", key), "token differs from "
                  "the one computed here")
            for bad in (flip, flip_key, tok.upper()[:-2] + "!!",
                        bounces_tok, unknown, "x", key,
                        tok + "a", "-" * 49, "a" * 65, "%00", ""):
                for method in ("GET", "POST"):
                    st, h, text = w.request(
                        method, "/u/" + bad,
                        body="List-Unsubscribe=One-Click"
                        if method == "POST" else None)
                    check_page(st, h, text, 404)
                    check(RU not in text and "Коалиция" not in text,
                          f"{bad}: {text}")
                st, h, text = w.post("/u/" + bad + "/undo", "undo=1")
                check(st == 404, f"undo {bad}: {st}")
            check(w.state() == before, "a forged token changed the store")
            # letter case: verp.c ignores it (mailbox providers fold it)
            st, h, text = w.get("/u/" + tok.upper())
            check(st == 200, f"upper-case token: {st}")
        finally:
            w.close()


def metrics(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            if line.startswith("# TYPE "):
                check(line.split()[2].startswith("herald_"), line)
            continue
        m = re.fullmatch(r"(herald_[a-z_]+)(\{[^}]*\})? (\d+)", line)
        check(m is not None, f"not a herald_ sample: {line!r}")
        out[m.group(1) + (m.group(2) or "")] = int(m.group(3))
    return out


def case_metrics():
    with ms.TestCA() as ca:
        w = Web(ca)
        try:
            st, h, text = w.get("/healthz")
            check(st == 200 and text == "ok\n", f"/healthz {st} {text!r}")
            # one-click as RFC 8058 says a mail client SHOULD send it
            bnd = "herald-test-boundary"
            st, h, text = w.request(
                "POST", w.link(RU),
                body=(f"--{bnd}\r\nContent-Disposition: form-data; "
                      f"name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n"
                      f"--{bnd}--\r\n"),
                headers={"Content-Type":
                         f"multipart/form-data; boundary={bnd}"})
            check(st == 200 and set(td.suppression_list(w.env)) == {RU},
                  f"multipart one-click: {st} {text}")
            st, h, text = w.get("/metrics")
            check(st == 200 and "version=0.0.4" in
                  h.get("Content-Type", ""), f"/metrics {st} {h}")
            m = metrics(text)
            status = [json.loads(x) for x in w.env.herald(
                "status", "--format", "json").stdout.decode().splitlines()]
            check(len(status) == 1, f"status: {status}")
            s = status[0]
            states = ("queued", "sending", "sent", "deferred", "failed",
                      "bounced", "complained", "expired", "suppressed",
                      "cancelled")
            for state in states:
                want = s[state]
                got = m[f'herald_release_deliveries{{release_id="{s["id"]}",'
                        f'release="{s["name"]}",state="{state}"}}']
                check(got == want, f"{state}: metrics {got}, status {want}")
                check(m[f'herald_deliveries{{state="{state}"}}'] == want,
                      f"total {state}")
            check(sum(m[f'herald_deliveries{{state="{x}"}}']
                      for x in states) == s["total"] == SAMPLE, "total")
            check(m["herald_queue_depth"] ==
                  s["queued"] + s["deferred"] + s["sending"], "queue depth")
            check(m['herald_releases{state="' + s["state"] + '"}'] == 1,
                  f"release state {s['state']}")
            ev = td.events(w.env)
            for kind in ("bounce", "complaint", "autoreply", "unsubscribe",
                         "unknown"):
                check(m[f'herald_events_total{{type="{kind}"}}'] ==
                      sum(1 for e in ev if e["type"] == kind), kind)
            check(m['herald_events_total{type="unsubscribe"}'] == 1,
                  "the unsubscribe is not counted")
            check(s["unsubscribes"] == 1, f"status: {s}")
        finally:
            w.close()


def run_web(cfg, *extra):
    return subprocess.run([A.herald_web, "--config", cfg, *extra],
                          cwd=A.source, capture_output=True, timeout=30)


def case_plain_http():
    env = td.Env("maildir:{dir}/outbox")
    try:
        env.queue()
        with open(env.cfg, "a") as f:
            f.write("web:\n  listen: 0.0.0.0:8025\n")
        r = run_web(env.cfg)
        err = r.stderr.decode()
        check(r.returncode == 78 and "refusing plain HTTP on 0.0.0.0" in err
              and "tls_cert" in err, f"0.0.0.0: {r.returncode} {err}")
        for addr in ("192.0.2.1:8025", "[::]:8025", "[2001:db8::1]:80",
                     "128.0.0.1:80"):
            r = run_web(env.cfg, "--listen", addr)
            check(r.returncode == 78 and "refusing plain HTTP" in
                  r.stderr.decode(), f"{addr}: {r.returncode} {r.stderr}")
        for addr in ("localhost:8025", "127.0.0.1", "127.0.0.1:99999"):
            r = run_web(env.cfg, "--listen", addr)
            check(r.returncode == 78 and "numeric" in r.stderr.decode(),
                  f"{addr}: {r.returncode} {r.stderr}")
        # loopback: served, over plain HTTP
        port = ms.free_port()
        p = subprocess.Popen([A.herald_web, "--config", env.cfg, "--listen",
                              f"127.0.0.1:{port}"], cwd=A.source,
                             stderr=subprocess.PIPE)
        try:
            def up():
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port,
                                                   timeout=5)
                    c.request("GET", "/healthz")
                    return c.getresponse().status == 200
                except OSError:
                    check(p.poll() is None, f"exited {p.returncode}")
                    return False
            ms.wait_until(up, 30, "herald-web on 127.0.0.1")
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=20)
            err = p.stderr.read().decode()
            check(rc == 0 and "stopping signal=TERM" in err,
                  f"SIGTERM: {rc} {err}")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        env.close()


def hostile_release(env):
    """The sample release with <script> in the coalition's name, to a list
    of one journalist with <script> in the name."""
    dst = td.other_release(env, "hostile")
    coal = os.path.join(env.dir, "coalition.yaml")
    with open(os.path.join(A.source, "lists", "coalition.yaml")) as f:
        text = f.read()
    text = text.replace(
        "  en: Coalition to Free the Kremlin's Political Prisoners",
        "  en: Coalition <script>alert(1)</script> \"><img src=x "
        "onerror=alert(2)>", 1)
    check("<script>" in text, "could not change the coalition's name")
    with open(coal, "w") as f:
        f.write(text)
    path = os.path.join(dst, "release.yaml")
    with open(path) as f:
        rel = f.read()
    rel = re.sub(r"^coalition: .*$", f"coalition: {coal}", rel, count=1,
                 flags=re.M)
    with open(path, "w") as f:
        f.write(rel)
    lst = os.path.join(env.dir, "hostile.yaml")
    with open(lst, "w") as f:
        f.write("journalists:\n"
                "  - name: \"Eve <script>alert(3)</script>\"\n"
                "    email: eve@example.org\n"
                "    language: en\n")
    return dst, lst


def case_hostile():
    with ms.TestCA() as ca:
        # the release and list are made inside the Env's directory: make
        # them in a first Env's place, then deliver
        scratch = td.Env("maildir:{dir}/outbox")
        try:
            rel, lst = hostile_release(scratch)
            w = Web(ca, release=rel, to=lst)
        finally:
            pass
        try:
            path = w.link("eve@example.org")
            before = w.state()
            st, h, text = w.get(path)
            check_page(st, h, text)
            check("&lt;script&gt;alert(1)&lt;/script&gt;" in text and
                  "&lt;script&gt;alert(3)&lt;/script&gt;" in text and
                  "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in text,
                  f"not escaped: {text}")
            # a POST that does not say One-Click: 400, nothing done
            st, h, text = w.post(path, "List-Unsubscribe=Two-Clicks")
            check_page(st, h, text, 400)
            st, h, text = w.post(path, "%zz")
            check_page(st, h, text, 400)
            st, h, text = w.request(
                "POST", path,
                body="--b\r\nContent-Disposition: form-data; "
                     "name=\"List-Unsubscribe\"\r\n\r\nTwo-Click\r\n--b--\r\n",
                headers={"Content-Type": "multipart/form-data; boundary=b"})
            check_page(st, h, text, 400)
            # a body over 4 KiB
            st, h, text = w.post(path, "List-Unsubscribe=One-Click&x=" +
                                 "a" * 5000)
            check(st == 413, f"big body: {st}")
            # headers over 16 KiB: refused (431 or 413) or closed
            try:
                st, h, text = w.request("GET", path,
                                        headers={"X-Big": "b" * 20000})
                check(st in (413, 431, 400), f"big headers: {st}")
            except (ConnectionError, http.client.HTTPException):
                pass
            # path traversal, encoded or not
            for bad in ("/u/../../etc/passwd", "/u/%2e%2e/%2e%2e/etc/passwd",
                        "/u/%2e%2e", "/../etc/passwd", "/u/", "/u",
                        "//healthz", "/healthz/", "/u/" + path[3:] + "/",
                        "/u/" + path[3:] + "/../undo", "/etc/passwd",
                        "/u/%2F..%2F..%2Fetc%2Fpasswd"):
                st, h, text = w.get(bad)
                check(st == 404 and "root:" not in text, f"{bad}: {st}")
            st, h, text = w.request("DELETE", path)
            check(st == 405, f"DELETE: {st}")
            st, h, text = w.get(path + "/undo")
            check(st == 405, f"GET undo: {st}")
            check(w.state() == before, "hostile requests changed the store")
            # and the server is still there
            check(w.get("/healthz")[0] == 200, "herald-web died")
        finally:
            w.close()
            scratch.close()


# ---- accounts and sessions ---------------------------------------------------

PASSWORDS = {"alice": "correct horse battery staple",
             "bob": "Tr0ub4dor&3 is not a passphrase"}
ROLES = {"alice": "operator", "bob": "viewer"}
HASH_RE = re.compile(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$"
                     r"([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)")
COOKIE = "herald_session"


def passwd(pw):
    """herald passwd with pw on a pipe: the hash it prints."""
    r = subprocess.run([A.herald, "passwd"], input=pw.encode() + b"\n",
                       capture_output=True, timeout=60)
    check(r.returncode == 0, f"herald passwd: {r.returncode} {r.stderr}")
    return r.stdout.decode().strip()


def users_yaml(session_idle=None):
    """web: lines for alice (operator) and bob (viewer)."""
    out = "  users:\n"
    for name, pw in PASSWORDS.items():
        out += (f"    - name: {name}\n      role: {ROLES[name]}\n"
                f"      password_hash: '{passwd(pw)}'\n")
    if session_idle is not None:
        out += f"  session_idle: {session_idle}\n"
    return out


def admin_web(ca, session_idle=None):
    return Web(ca, web_extra=users_yaml(session_idle))


def with_cookie(cookie):
    return {"Cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}


def login(w, name, pw, cookie=None):
    body = urllib.parse.urlencode({"name": name, "password": pw})
    return w.request("POST", "/login", body=body,
                     headers=with_cookie(cookie))


def session_cookie(headers):
    """(value, {attribute: value}) of Set-Cookie herald_session."""
    sc = headers.get("Set-Cookie")
    check(sc is not None, f"no Set-Cookie: {headers}")
    parts = [p.strip() for p in sc.split(";")]
    name, _, value = parts[0].partition("=")
    check(name == COOKIE, f"cookie {sc!r}")
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.lower()] = v
    return value, attrs


def logged_in(w, name):
    """Log name in: the session cookie's value."""
    st, h, text = login(w, name, PASSWORDS[name])
    check(st == 303 and h.get("Location") == "/",
          f"login {name}: {st} {h} {text[:300]}")
    value, attrs = session_cookie(h)
    check(re.fullmatch(r"[0-9a-f]{64}", value) is not None,
          f"session id {value!r}")
    check("httponly" in attrs and attrs.get("samesite") == "Strict" and
          attrs.get("path") == "/" and "secure" in attrs,
          f"cookie attributes {attrs}")
    return value


def check_login_redirect(st, h, text, what):
    check(st == 303 and h.get("Location") == "/login",
          f"{what}: {st} {h.get('Location')} {text[:200]}")
    check("report" not in text.lower() and "<td" not in text,
          f"{what}: data in the body: {text[:300]}")


def releases(text):
    """The releases page's rows: [{key: text}]."""
    out = []
    for row in re.findall(r"<tr><td data-k=.*?</tr>", text, re.S):
        cells = dict(re.findall(r'data-k="(\w+)">([^<]*)<', row))
        out.append({k: html.unescape(v) for k, v in cells.items()})
    return out


def csrf_of(text):
    m = re.search(r'<input type="hidden" name="csrf" value="([0-9a-f]{64})">',
                  text)
    check(m is not None, f"no csrf field in {text[:1000]}")
    return m.group(1)


def libargon2():
    name = ctypes.util.find_library("argon2")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.argon2id_verify.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                    ctypes.c_size_t]
    lib.argon2id_verify.restype = ctypes.c_int
    return lib


def case_passwd():
    pw = PASSWORDS["alice"]
    h = passwd(pw)
    m = HASH_RE.fullmatch(h)
    check(m is not None, f"not an encoded argon2id hash: {h!r}")
    mem, t, p = int(m.group(1)), int(m.group(2)), int(m.group(3))
    check(mem >= 19 * 1024 and t >= 2 and p >= 1,
          f"weaker than OWASP's m=19 MiB, t=2, p=1: {h}")
    salt = base64.b64decode(m.group(4) + "=" * (-len(m.group(4)) % 4))
    check(len(salt) == 16, f"salt of {len(salt)} bytes")
    check(passwd(pw) != h, "the same salt twice")
    lib = libargon2()
    if lib is not None:
        check(lib.argon2id_verify(h.encode(), pw.encode(), len(pw)) == 0,
              "libargon2 does not verify the hash")
        check(lib.argon2id_verify(h.encode(), b"wrong", 5) != 0,
              "libargon2 verifies another password")
    else:
        print("libargon2 not found by ctypes: web/login verifies by "
              "logging in")
    # a line end of CR LF is not part of the password
    h2 = passwd(pw + "\r")
    if lib is not None:
        check(lib.argon2id_verify(h2.encode(), pw.encode(), len(pw)) == 0,
              "CR LF: the CR was hashed")
    for bad in (b"", b"\n", b"\r\n"):
        r = subprocess.run([A.herald, "passwd"], input=bad,
                           capture_output=True, timeout=60)
        check(r.returncode == 65 and r.stdout == b"" and
              b"empty" in r.stderr, f"{bad!r}: {r.returncode} {r.stderr}")
    r = subprocess.run([A.herald, "passwd"], input=b"x" * 2000 + b"\n",
                       capture_output=True, timeout=60)
    check(r.returncode == 65 and r.stdout == b"",
          f"a 2000-byte password: {r.returncode} {r.stderr}")
    r = subprocess.run([A.herald, "passwd", "extra"], capture_output=True,
                       timeout=60)
    check(r.returncode == 64, f"an argument: {r.returncode}")


def timed_login(w, name, pw):
    t = time.monotonic()
    st, h, text = login(w, name, pw)
    return st, text, time.monotonic() - t


def case_login():
    with ms.TestCA() as ca:
        w = admin_web(ca)
        try:
            st, h, text = w.get("/login")
            check_page(st, h, text)
            check('<form method="post" action="/login">' in text and
                  'name="password" type="password"' in text, text)
            # a wrong password and an unknown name: the same answer, in
            # about the same time (both check a hash)
            wrong = [timed_login(w, "alice", "not her password")
                     for _ in range(2)]
            unknown = [timed_login(w, "mallory", "not her password")
                       for _ in range(2)]
            for st, text, _ in wrong + unknown:
                check(st == 401 and "Wrong name or password." in text,
                      f"refused login: {st} {text[:300]}")
            check(wrong[0][1] == unknown[0][1], "the pages differ")
            tw = min(x[2] for x in wrong)
            tu = min(x[2] for x in unknown)
            check(tu > tw / 3, f"an unknown name answered in {tu:.3f} s, "
                  f"a wrong password in {tw:.3f} s")
            check("Set-Cookie" not in login(w, "alice", "x")[1],
                  "a cookie for a refused login")
            # the right password: a session
            sid = logged_in(w, "alice")
            st, h, text = w.request("GET", "/", headers=with_cookie(sid))
            check_page(st, h, text)
            check("alice (operator)" in text, "who is logged in")
            rows = releases(text)
            status = [json.loads(x) for x in w.env.herald(
                "status", "--format", "json").stdout.decode().splitlines()]
            check(len(rows) == len(status) == 1, f"{rows} {status}")
            r, s = rows[0], status[0]
            for k in ("id", "name", "state", "sent", "total", "complaints",
                      "unsubscribes", "first_attempt", "last_attempt"):
                check(r[k] == str(s[k]), f"{k}: page {r[k]!r}, status "
                      f"{s[k]!r}")
            for k in ("sent_percent", "rate", "bounce_percent"):
                want = "-" if s[k] is None else f"{s[k]:.1f}"
                check(r[k] == want, f"{k}: page {r[k]!r}, status {s[k]!r}")
            check(s["total"] == SAMPLE and r["sent"] == str(SAMPLE),
                  f"the sample release: {s}")
            # logout revokes the session
            st, h, text = w.request(
                "POST", "/logout", body=f"csrf={csrf_of(text)}",
                headers=with_cookie(sid))
            check(st == 303 and h.get("Location") == "/login",
                  f"logout: {st} {text[:200]}")
            value, attrs = session_cookie(h)
            check(value == "" and attrs.get("max-age") == "0",
                  f"logout does not clear the cookie: {h}")
            st, h, text = w.request("GET", "/", headers=with_cookie(sid))
            check_login_redirect(st, h, text, "the logged-out cookie")
            # a new login, a new id; and an id the browser sends along
            # (planted before login) is not taken over
            sid2 = logged_in(w, "alice")
            check(sid2 != sid, "the same session id twice")
            st, h, text = login(w, "bob", PASSWORDS["bob"], cookie=sid2)
            sid3, _ = session_cookie(h)
            check(st == 303 and sid3 not in (sid, sid2), "id reused")
            st, h, text = w.request("GET", "/", headers=with_cookie(sid2))
            check_login_redirect(st, h, text, "the id a login replaced")
            st, h, text = w.request("GET", "/", headers=with_cookie(sid3))
            check(st == 200 and "bob (viewer)" in text, f"bob: {st}")
            log = w.log_text()
            check("result=ok" in log and "result=refused" in log and
                  PASSWORDS["alice"] not in log and sid3 not in log,
                  f"the log: {log}")
        finally:
            w.close()


def case_session_idle():
    with ms.TestCA() as ca:
        w = admin_web(ca, session_idle="2s")
        try:
            sid = logged_in(w, "bob")
            # requests keep it alive beyond 2 s
            end = time.monotonic() + 3.5
            while time.monotonic() < end:
                st, h, text = w.request("GET", "/",
                                        headers=with_cookie(sid))
                check(st == 200, f"a session in use ended: {st}")
                time.sleep(0.5)
            time.sleep(3)  # the idle time is what is tested
            st, h, text = w.request("GET", "/", headers=with_cookie(sid))
            check_login_redirect(st, h, text, "after 3 s idle")
            # and it stays ended
            st, h, text = w.request("GET", "/", headers=with_cookie(sid))
            check_login_redirect(st, h, text, "after 3 s idle, again")
        finally:
            w.close()


def case_csrf():
    with ms.TestCA() as ca:
        w = admin_web(ca)
        try:
            sid = logged_in(w, "alice")
            other = logged_in(w, "bob")
            st, h, text = w.request("GET", "/", headers=with_cookie(sid))
            token = csrf_of(text)
            st, h, text = w.request("GET", "/", headers=with_cookie(other))
            other_token = csrf_of(text)
            check(token != other_token and token not in (sid, other),
                  "tokens")
            for body in ("", "csrf=", "csrf=" + "0" * 64,
                         "csrf=" + token[:-1] + ("0" if token[-1] != "0"
                                                 else "1"),
                         "csrf=" + other_token, "csrf=" + sid,
                         "csrf=" + token + "0", "csrf=%zz"):
                st, h, text = w.request("POST", "/logout", body=body,
                                        headers=with_cookie(sid))
                check_page(st, h, text, 403)
                check("Set-Cookie" not in h, f"{body}: a cookie")
                st, h, text = w.request("GET", "/",
                                        headers=with_cookie(sid))
                check(st == 200, f"the session ended after {body!r}: {st}")
            # a POST to the releases page with the token: nothing to do
            st, h, text = w.request("POST", "/", body="csrf=" + token,
                                    headers=with_cookie(sid))
            check(st == 405, f"POST /: {st}")
            st, h, text = w.request("POST", "/logout", body="csrf=" + token,
                                    headers=with_cookie(sid))
            check(st == 303 and h.get("Location") == "/login", f"{st}")
            st, h, text = w.request("GET", "/", headers=with_cookie(sid))
            check_login_redirect(st, h, text, "after logout")
            st, h, text = w.request("GET", "/", headers=with_cookie(other))
            check(st == 200, "bob's session ended with alice's")
        finally:
            w.close()


def case_throttle():
    with ms.TestCA() as ca:
        w = admin_web(ca)
        try:
            # the account rule: 5 failures for alice lock her account
            for i in range(5):
                st, h, text = login(w, "alice", f"guess {i}")
                check(st == 401, f"guess {i}: {st}")
            st, h, text = login(w, "alice", PASSWORDS["alice"])
            check(st == 429 and "Too many failed logins" in text and
                  "Set-Cookie" not in h, f"locked: {st} {text[:200]}")
            wait = int(h.get("Retry-After", "0"))
            check(1 <= wait <= 15, f"Retry-After {h.get('Retry-After')}")
            # ... and not the address's: bob logs in from 127.0.0.1 too
            # (5 failures so far from it; it allows 20; a refused 429
            # is not a failure: no password was checked)
            logged_in(w, "bob")
            # after the delay alice logs in
            def alice():
                st, h, text = login(w, "alice", PASSWORDS["alice"])
                check(st in (303, 429), f"alice: {st}")
                return st == 303
            ms.wait_until(alice, wait + 30, "alice's lockout to end")
            # her count was cleared: one more failure is not a lockout
            st, h, text = login(w, "alice", "one typo")
            check(st == 401, f"after a login, a typo: {st}")
            # the address rule: failures from 127.0.0.1 under other names
            # (none of them 5 times) up to 20 (6 so far): every name is
            # refused
            for i in range(20 - 6 - 1):
                st, h, text = login(w, f"nobody{i}", "guess")
                check(st == 401, f"nobody{i}: {st}")
            # the 19th: bob still logs in; the 20th failure locks
            logged_in(w, "bob")
            st, h, text = login(w, "nobody", "guess")
            check(st == 401, f"the 20th failure: {st}")
            st, h, text = login(w, "bob", PASSWORDS["bob"])
            check(st == 429 and "Retry-After" in h,
                  f"the address is not locked: {st}")
            check("result=throttled" in w.log_text(), "not logged")
        finally:
            w.close()


def case_no_session():
    with ms.TestCA() as ca:
        w = admin_web(ca)
        try:
            sid = logged_in(w, "alice")
            st, h, text = w.request("GET", "/", headers=with_cookie(sid))
            check(st == 200 and "report" in text.lower(),
                  "the release is not named on the page (the check below "
                  "would prove nothing)")
            st, h, text = w.request("POST", "/logout",
                                    body="csrf=" + csrf_of(text),
                                    headers=with_cookie(sid))
            check(st == 303, f"logout: {st}")
            cookies = {"no cookie": None,
                       "forged": os.urandom(32).hex(),
                       "malformed": "x",
                       "long": "a" * 300,
                       "logged out": sid}
            for what, cookie in cookies.items():
                for method, path in (("GET", "/"), ("HEAD", "/"),
                                     ("POST", "/"), ("POST", "/logout"),
                                     ("GET", "/logout"),
                                     ("GET", "/?x=1")):
                    body = "csrf=" + "0" * 64 if method == "POST" else None
                    st, h, text = w.request(method, path, body=body,
                                            headers=with_cookie(cookie))
                    check_login_redirect(st, h, text,
                                         f"{method} {path} ({what})")
            st, h, text = w.get("/login")
            check(st == 200 and "report" not in text.lower(), "login page")
        finally:
            w.close()


def config_error(env, users, where, want):
    """web.users text under web:, expecting exit 78 and want at where
    (line:column) from herald config and herald-web."""
    path = os.path.join(env.dir, "users.yaml")
    with open(path, "w") as f:
        f.write("web:\n  listen: 127.0.0.1:0\n" + users)
    r = subprocess.run([A.herald, "config", "--config", path],
                       capture_output=True, timeout=60)
    err = r.stderr.decode()
    check(r.returncode == 78 and f"{path}:{where}: error: " in err and
          want in err and r.stdout == b"",
          f"herald config: {r.returncode} {err}")
    r = run_web(path)
    err = r.stderr.decode()
    check(r.returncode == 78 and f"{path}:{where}: " in err and
          want in err, f"herald-web: {r.returncode} {err}")
    # herald check says where too; it exits 65 for every error in its
    # inputs, herald.yaml's included (tests/data/cli/config-unknown-key)
    r = subprocess.run([A.herald, "check", "templates/report-launch", "--to",
                        "lists/journalists.yaml", "--config", path],
                       cwd=A.source, capture_output=True, timeout=60)
    err = r.stderr.decode()
    check(r.returncode == 65 and f"{path}:{where}: error: " in err and
          want in err, f"herald check: {r.returncode} {err}")


def case_config():
    env = td.Env("maildir:{dir}/outbox")
    try:
        good = passwd("pw")
        config_error(env, "  users:\n    - name: alice\n      role: admin\n"
                     f"      password_hash: '{good}'\n", "5:13",
                     'role "admin" is not viewer or operator')
        for bad in (good.replace("argon2id", "argon2i"),
                    "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0j"
                    "WMUW", "plaintext", good[:-40], good + "$x",
                    good.replace("m=19456", "m=99999999")):
            config_error(env, "  users:\n    - name: alice\n      role: viewer"
                         f"\n      password_hash: '{bad}'\n", "6:22",
                         "password_hash is not an argon2id hash")
        config_error(env, "  users:\n"
                     f"    - {{name: alice, role: viewer, password_hash: "
                     f"'{good}'}}\n"
                     f"    - {{name: alice, role: operator, password_hash: "
                     f"'{good}'}}\n", "5:14",
                     'user "alice" is listed twice')
        config_error(env, "  users:\n"
                     f"    - {{name: alice, role: viewer, password: x}}\n",
                     "4:35", 'unknown field "password"')
        config_error(env, "  users:\n"
                     f"    - {{name: 'a b', role: viewer, password_hash: "
                     f"'{good}'}}\n", "4:14", 'user name "a b"')
        # herald config shows the users, never their hashes
        path = os.path.join(env.dir, "users.yaml")
        with open(path, "w") as f:
            f.write("web:\n  users:\n"
                    f"    - {{name: alice, role: operator, password_hash: "
                    f"'{good}'}}\n"
                    f"    - {{name: bob, role: viewer, password_hash: "
                    f"'{good}'}}\n")
        r = subprocess.run([A.herald, "config", "--config", path],
                           capture_output=True, timeout=60)
        out = r.stdout.decode()
        check(r.returncode == 0 and
              "web.users = [{name: alice, role: operator}, {name: bob, "
              "role: viewer}]\n" in out and "argon2" not in out and
              good.split("$")[-1] not in out,
              f"herald config: {r.returncode} {out} {r.stderr}")
    finally:
        env.close()


def main():
    return td.run_cases(globals(), lambda ap: ap.add_argument(
        "--herald-web", dest="herald_web", required=True))


if __name__ == "__main__":
    sys.exit(main())
