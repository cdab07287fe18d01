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
"""
import base64
import email
import email.policy
import hashlib
import hmac
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
                 to="lists/journalists.yaml"):
        self.port = ms.free_port()
        cert, key = ca.issue()
        self.ca = ca
        self.env = td.Env(
            "maildir:{dir}/outbox",
            relay_extra=f"bounces:\n  domain: {DOM}\n"
            f"  secret_file: bounce.secret\n"
            f"  unsubscribe_url: https://127.0.0.1:{self.port}/u/{{token}}\n"
            f"web:\n  listen: 127.0.0.1:{self.port}\n"
            f"  tls_cert: {cert}\n  tls_key: {key}\n")
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


def main():
    return td.run_cases(globals(), lambda ap: ap.add_argument(
        "--herald-web", dest="herald_web", required=True))


if __name__ == "__main__":
    sys.exit(main())
