#!/usr/bin/python3
"""DKIM signatures made by herald, checked by an independent verifier.

herald's dkim module signs; Debian's python3-dkim (dkimpy) verifies, with
the key record that herald prints for DNS. Keys are made here with
python3-cryptography (RSA-2048 and Ed25519, PKCS#8 PEM, mode 0600), and
each kind of message herald sends is signed with both and verified:
plain ASCII, a UTF-8 body in quoted-printable, a folded Subject of RFC 2047
encoded words, lines with trailing whitespace, an empty body, a body
without a final CRLF, multipart/alternative.

Then the other side: a flipped body byte, a changed Subject, a second From
or Subject added in transit (what oversigning is for), a wrong key in DNS
must each fail, while changes relaxed canonicalisation ignores (refolding,
whitespace, trailing blank lines, an unsigned header added) must not.

usage: test_dkim_verify.py PATH/TO/dkim_sign
"""
import base64
import email.header
import os
import re
import subprocess
import sys
import tempfile

try:
    import dkim
    import nacl.signing  # noqa: F401  (dkimpy needs it for ed25519)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
except ImportError as e:
    sys.exit("test_dkim_verify: %s: install Debian's python3-dkim, "
             "python3-nacl and python3-cryptography (for /usr/bin/python3)"
             % e)

DOMAIN = "example.org"
SELECTOR = "herald2024"
DNS_NAME = ("%s._domainkey.%s" % (SELECTOR, DOMAIN)).encode()

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % what)
    else:
        failed += 1
        print("FAIL %s" % what)


def write_key(path, key):
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def run(tool, *args, stdin=b""):
    p = subprocess.run([tool, *args], input=stdin, capture_output=True)
    if p.returncode != 0:
        sys.exit("test_dkim_verify: %s %s failed (exit %d):\n%s" %
                 (tool, " ".join(args), p.returncode,
                  p.stderr.decode(errors="replace")))
    if p.stderr:
        sys.exit("test_dkim_verify: %s wrote to stderr:\n%s" %
                 (tool, p.stderr.decode(errors="replace")))
    return p.stdout


def make_keys(tool, tmp, suffix):
    """{algorithm: (key file, DNS record)} for a new RSA-2048 and Ed25519
    key pair, the record as herald prints it."""
    keys = {}
    for alg, key in (("rsa-sha256", rsa.generate_private_key(
                          public_exponent=65537, key_size=2048)),
                     ("ed25519-sha256", ed25519.Ed25519PrivateKey.generate())):
        path = os.path.join(tmp, alg + suffix + ".pem")
        write_key(path, key)
        keys[alg] = (path, run(tool, "--record", path, DOMAIN,
                               SELECTOR).strip())
    return keys


def verify(message, record):
    """(verified, reason) from dkimpy, the key record served as DNS."""
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name)
        return record if name.rstrip(b".") == DNS_NAME else None

    d = dkim.DKIM(message)
    try:
        ok = d.verify(dnsfunc=dnsfunc)
        reason = "" if ok else "signature mismatch"
    except dkim.DKIMException as e:
        ok, reason = False, str(e)
    if ok and [n.rstrip(b".") for n in asked] != [DNS_NAME]:
        return False, "the verifier looked up %r" % asked
    return ok, reason


def crlf(text):
    return text.replace("\n", "\r\n").encode("utf-8")


HEAD = """From: Coalition Press Office <press@example.org>
To: Anna Schmidt <anna@newsroom.example.net>
Subject: Coalition launches the 2024 report
Date: Tue, 05 Mar 2024 09:00:00 +0100
Message-ID: <20240305.1@example.org>
MIME-Version: 1.0
"""

SUBJECT_WORDS = email.header.Header(
    "Коалиция публикует доклад 2024 года о свободе прессы — "
    "Ελευθερία του Τύπου: η έκθεση του 2024", "utf-8",
    header_name="Subject").encode(linesep="\r\n")

MESSAGES = {
    "ascii": crlf(HEAD + """Reply-To: <desk@example.org>
Content-Language: en
List-Unsubscribe: <mailto:unsub-7f3a@example.org>, <https://example.org/u/7f3a>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

Dear Anna,

The coalition publishes its 2024 report today.
.A line starting with a dot.

Press office
"""),
    "utf8-quoted-printable": crlf(HEAD + """Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Sehr geehrte Frau Schmidt,

die Koalition ver=C3=B6ffentlicht heute ihren Bericht =C3=BCber die Presse=
freiheit =E2=80=94 mit Beitr=C3=A4gen aus zw=C3=B6lf L=C3=A4ndern.

Gr=C3=BC=C3=9Fe
"""),
    "folded-encoded-subject":
        crlf(HEAD.replace("Subject: Coalition launches the 2024 report\n",
                          "")) .replace(
            b"MIME-Version: 1.0\r\n",
            b"MIME-Version: 1.0\r\nSubject: " + SUBJECT_WORDS.encode() +
            b"\r\n") + crlf("""Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Доклад опубликован сегодня.
"""),
    "trailing-whitespace": crlf(HEAD + """Content-Type: text/plain

A line with trailing spaces   
A line with a trailing tab\t
  leading spaces and  inner \t runs  stay one space
\t

""") + b"\r\n\r\n",
    "empty-body": crlf(HEAD.replace(
        "To: Anna Schmidt <anna@newsroom.example.net>\n", "") + "\n"),
    "header-only": crlf(HEAD).rstrip(b"\r\n"),
    "no-final-crlf": crlf(HEAD + """Content-Type: text/plain

First line.
The last line has no CRLF.""").rstrip(b"\r\n"),
    "two-to-fields": crlf(HEAD + """To: Ben <ben@newsroom.example.net>
Content-Type: text/plain

Two To fields: each is signed, from the bottom up.
"""),
    "multipart-alternative": crlf(HEAD + """Content-Type: multipart/alternative;
 boundary="=_herald_5f1c"

This is a multi-part message in MIME format.

--=_herald_5f1c
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

The coalition publishes its report =E2=80=94 read it online.

--=_herald_5f1c
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><body><p>The coalition publishes its report =E2=80=94
<a href=3D"https://example.org/r">read it online</a>.</p></body></html>

--=_herald_5f1c--
"""),
}


def sig_field(signed):
    """The DKIM-Signature field herald put on top, with its folds."""
    m = re.match(rb"DKIM-Signature:.*?\r\n(?=[^ \t])", signed, re.S)
    return m.group(0)[:-2]


def tag(field, name):
    value = re.sub(rb"\s+", b"", field.split(b":", 1)[1])
    for t in value.split(b";"):
        k, _, v = t.partition(b"=")
        if k == name:
            return v
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tool = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="herald-dkim-") as tmp:
        keys = make_keys(tool, tmp, "")
        # A second key of each kind, to publish by mistake.
        wrong = {alg: rec for alg, (_, rec) in
                 make_keys(tool, tmp, "-other").items()}

        for alg, (path, record) in keys.items():
            k = b"rsa" if alg.startswith("rsa") else b"ed25519"
            check(record.startswith(b"v=DKIM1; k=" + k + b"; p="),
                  "%s: DNS record %s..." % (alg, record[:40].decode()))
            if k == b"ed25519":
                raw = base64.b64decode(record.split(b"p=")[1])
                check(len(raw) == 32, "%s: p= is the raw 32-byte key" % alg)

            for name, msg in MESSAGES.items():
                signed = run(tool, path, DOMAIN, SELECTOR, stdin=msg)
                field = sig_field(signed)
                what = "%s %s" % (alg, name)
                check(signed == field + b"\r\n" + msg,
                      "%s: output is the field, CRLF, the message" % what)
                check(tag(field, b"a") == alg.encode(),
                      "%s: a=%s" % (what, alg))
                long_lines = [ln for ln in field.split(b"\r\n")
                              if len(ln.expandtabs(8)) > 78]
                check(not long_lines, "%s: no line over 78 (%d lines)" %
                      (what, field.count(b"\r\n") + 1))
                ok, why = verify(signed, record)
                check(ok, "%s: verified by dkimpy %s" % (what, why))
                if not msg.endswith(b"\r\n") and b"\r\n\r\n" in msg:
                    # SMTP ends the body with CRLF; still valid after.
                    ok, why = verify(signed + b"\r\n", record)
                    check(ok, "%s: verified with the CRLF SMTP adds %s" %
                          (what, why))

                # The checks that must fail.
                ok, _ = verify(signed, wrong[alg])
                check(not ok, "%s: fails with another key in DNS" % what)
                ok, _ = verify(signed, record.replace(
                    b"k=" + k, b"k=ed25519" if k == b"rsa" else b"k=rsa"))
                check(not ok, "%s: fails with the wrong k= in DNS" % what)
                if b"\r\n\r\n" in msg and len(msg.split(b"\r\n\r\n", 1)[1]):
                    i = signed.index(b"\r\n\r\n") + 4
                    body = signed[i:]
                    j = next(n for n, c in enumerate(body) if c > 32)
                    flipped = (signed[:i + j] + bytes([body[j] ^ 0x01]) +
                               signed[i + j + 1:])
                    ok, why = verify(flipped, record)
                    check(not ok, "%s: fails with one body byte flipped" %
                          what)
                changed = re.sub(rb"\r\nSubject: ", b"\r\nSubject: Re: ",
                                 signed, count=1)
                ok, _ = verify(changed, record)
                check(changed != signed and not ok,
                      "%s: fails with the Subject changed" % what)
                # Fields added in transit go right below the signature.
                top, below = field + b"\r\n", signed[len(field) + 2:]
                for extra in (b"From: Someone Else <ceo@example.org>",
                              b"Subject: Urgent: wire the money",
                              b"To: everyone@example.com"):
                    ok, _ = verify(top + extra + b"\r\n" + below, record)
                    check(not ok, "%s: fails with another %s added" %
                          (what, extra.split(b":")[0].decode()))

                # Changes relaxed canonicalisation ignores.
                ok, why = verify(top + b"Received: from relay.example.net"
                                 b"\r\n" + below, record)
                check(ok, "%s: still valid with a Received field added %s"
                      % (what, why))
                head, sep, rest = signed.partition(b"\r\n\r\n")
                h2 = head.replace(b"\r\nSubject: ", b"\r\nSubject:  \r\n\t ",
                                  1)
                b2 = rest.replace(b" ", b" \t ", 1)
                if sep:
                    if b2 and not b2.endswith(b"\r\n"):
                        b2 += b"\r\n"
                    b2 += b" \t\r\n\r\n"
                loose = h2 + sep + b2
                ok, why = verify(loose, record)
                check(ok, "%s: still valid refolded, with whitespace and "
                      "blank lines added at the end %s" % (what, why))

        # The checks above can fail: a verifier that said yes to anything
        # would have failed them. Make sure it says yes to a message signed
        # for the right key and no to one for another, once more, plainly.
        path, record = keys["rsa-sha256"]
        signed = run(tool, path, DOMAIN, SELECTOR, stdin=MESSAGES["ascii"])
        check(verify(signed, record)[0] and
              not verify(signed, wrong["rsa-sha256"])[0],
              "control: right key verifies, wrong key does not")

    print("dkim verify: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
