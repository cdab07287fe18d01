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
"""
import os
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


if __name__ == "__main__":
    sys.exit(td.run_cases(globals()))
