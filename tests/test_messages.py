#!/usr/bin/env python3
"""Every message herald builds for the sample list, judged by independent
parts: Python's email package as the reader's MIME parser, Debian's
python3-dkim as the receiving server's DKIM check (also after a real
Postfix on loopback has relayed the message), and SpamAssassin as the
journalist's spam filter.

Keys are made here with python3-cryptography (RSA-2048 and Ed25519) and
their DNS records computed here too, independently of herald.
"""
import argparse
import base64
import email
import email.header
import email.policy
import email.utils
import os
import re
import subprocess
import sys
import tempfile

import dkim
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers  # noqa: E402

FAILURES = []
DOMAIN = "coalition.example.org"


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg)
    return cond


def make_keys(d):
    """RSA-2048 and Ed25519 keys (PKCS#8 PEM, mode 0600) and the TXT records
    a DNS zone would publish for them."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    records = {}
    for name, key in (("rsa", rsa_key), ("ed", ed_key)):
        path = os.path.join(d, f"{name}.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    spki = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    records[f"rsa2026._domainkey.{DOMAIN}."] = (
        b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki))
    records[f"ed2026._domainkey.{DOMAIN}."] = (
        b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw))
    return records


def dnsfunc_for(records):
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name if name.endswith(".") else name + ".")
    return dnsfunc


def verify_all(raw, dnsfunc):
    """Verify every DKIM-Signature of raw; returns [(d, s, a, ok)]."""
    d = dkim.DKIM(raw)
    sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    out = []
    for i, v in enumerate(sigs):
        tags = dict(t.strip().split("=", 1) for t in
                    re.sub(rb"\s+", b"", v).decode().split(";") if "=" in t)
        try:
            ok = dkim.DKIM(raw).verify(idx=i, dnsfunc=dnsfunc)
        except dkim.ValidationError as e:
            print("  verification error:", e)
            ok = False
        out.append((tags.get("d"), tags.get("s"), tags.get("a"), ok))
    return out


def decode_name(value):
    """A display name decoded as RFC 2047 §6.2 says (whitespace between
    adjacent encoded words ignored). Python's policy.default keeps that
    whitespace in address headers (CPython gh-128110), so names are
    compared through the package's compliant decoder."""
    return str(email.header.make_header(email.header.decode_header(value)))


def wire_checks(name, raw):
    check(b"\n" not in raw.replace(b"\r\n", b""), f"{name}: bare LF")
    check(b"\r" not in raw.replace(b"\r\n", b""), f"{name}: bare CR")
    check(all(b < 0x80 for b in raw), f"{name}: 8-bit bytes")
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        check(len(line) <= 78, f"{name}: header line of {len(line)}: "
              f"{line[:50]!r}")
    for word in re.findall(rb"=\?[^?]+\?[BbQq]\?[^?]*\?=", head):
        check(len(word) <= 75, f"{name}: encoded word of {len(word)}")
    for line in body.split(b"\r\n"):
        check(len(line) <= 998, f"{name}: body line of {len(line)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    src = a.source
    rel = yaml.safe_load(open(os.path.join(
        src, "templates/report-launch/release.yaml"), encoding="utf-8"))
    people = yaml.safe_load(open(os.path.join(
        src, "lists/journalists.yaml"), encoding="utf-8"))["journalists"]

    with tempfile.TemporaryDirectory(prefix="herald-msg-") as tmp:
        records = make_keys(tmp)
        dnsfunc = dnsfunc_for(records)
        cfg = os.path.join(tmp, "herald.yaml")
        with open(cfg, "w") as f:
            f.write(f"dkim:\n"
                    f"  - {{domain: {DOMAIN}, selector: rsa2026, key: rsa.pem}}\n"
                    f"  - {{domain: {DOMAIN}, selector: ed2026, key: ed.pem}}\n")
        out = os.path.join(tmp, "out")
        r = subprocess.run([a.herald, "preview", "templates/report-launch",
                            "--to", "lists/journalists.yaml", "--config", cfg,
                            "--out", out], cwd=src, capture_output=True,
                           timeout=300)
        if r.returncode != 0:
            raise SystemExit(f"herald preview failed ({r.returncode}): "
                             f"{r.stderr.decode()}")
        # herald check with the same keys: signed, aligned, sizes shown
        r = subprocess.run([a.herald, "check", "templates/report-launch",
                            "--to", "lists/journalists.yaml", "--config",
                            cfg], cwd=src, capture_output=True, timeout=300)
        check(r.returncode == 0 and b"signing: 2 DKIM keys" in r.stdout
              and b"does not match the From domain" not in r.stderr,
              f"check with aligned keys: {r.returncode} {r.stderr!r}")
        check(re.search(rb"ru +\d+ recipients +message \d+ bytes",
                        r.stdout) is not None, "check shows no message size")
        other = os.path.join(tmp, "other.yaml")
        with open(other, "w") as f:
            f.write("dkim:\n  - {domain: other.example.net, selector: s1, "
                    "key: rsa.pem}\n")
        r = subprocess.run([a.herald, "check", "templates/report-launch",
                            "--to", "lists/journalists.yaml", "--config",
                            other], cwd=src, capture_output=True, timeout=300)
        check(r.returncode == 0 and
              b"DKIM domain other.example.net does not match the From "
              b"domain coalition.example.org" in r.stderr,
              f"check with a foreign key did not warn: {r.stderr!r}")
        files = sorted(os.listdir(out))
        check(len(files) == len(people),
              f"{len(files)} messages for {len(people)} journalists")
        att_spec = rel["attachments"][0]
        att_bytes = open(os.path.join(src, "templates/report-launch",
                                      att_spec["file"]), "rb").read()
        one_per_lang = {}
        for p in people:
            path = os.path.join(out, p["email"] + ".eml")
            if not check(os.path.exists(path), f"no message for {p['email']}"):
                continue
            raw = open(path, "rb").read()
            name = p["email"]
            wire_checks(name, raw)
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            for part in msg.walk():
                check(not part.defects,
                      f"{name}: defects in {part.get_content_type()}: "
                      f"{part.defects}")
            lang = str(msg["Content-Language"])
            check(lang in rel["languages"], f"{name}: language {lang}")
            want_subject = re.sub(r"\{\{#release\.embargo\}\}.*?"
                                  r"\{\{/release\.embargo\}\}", "",
                                  rel["subject"][lang])
            check(str(msg["Subject"]) == want_subject,
                  f"{name}: Subject {str(msg['Subject'])!r}")
            compat = email.message_from_bytes(raw,
                                              policy=email.policy.compat32)
            for field, want_name, want_addr in (
                    ("From", rel["from"]["name"][lang], rel["from"]["email"]),
                    ("To", p["name"], p["email"]),
                    ("Reply-To", rel["reply_to"]["name"][lang],
                     rel["reply_to"]["email"])):
                addrs = msg[field].addresses
                check(len(addrs) == 1 and addrs[0].addr_spec == want_addr,
                      f"{name}: {field} address {addrs}")
                dn, addr = email.utils.parseaddr(compat[field])
                got = decode_name(dn)
                check(got == want_name and addr == want_addr,
                      f"{name}: {field} name {got!r}, expected {want_name!r}")
                # policy.default: the same, but for the spaces it keeps
                # between encoded words
                check(addrs[0].display_name.replace(" ", "") ==
                      want_name.replace(" ", ""),
                      f"{name}: {field} display name "
                      f"{addrs[0].display_name!r}")
            mid = str(msg["Message-ID"])
            check(re.fullmatch(r"<[0-9a-f]{32}@" + re.escape(DOMAIN) + ">",
                               mid) is not None, f"{name}: Message-ID {mid}")
            check(str(msg["Precedence"]) == "bulk", f"{name}: Precedence")
            check(str(msg["X-Auto-Response-Suppress"]) == "OOF, AutoReply",
                  f"{name}: X-Auto-Response-Suppress")
            check(msg["Date"] is not None and msg["Date"].datetime is not None,
                  f"{name}: Date")
            types = [q.get_content_type() for q in msg.walk()]
            check(types[:4] == ["multipart/mixed", "multipart/alternative",
                                "text/plain", "text/html"],
                  f"{name}: structure {types}")
            for q in msg.walk():
                if q.get_content_maintype() == "text" and \
                        q.get_content_disposition() != "attachment":
                    check(q.get_content_charset() == "utf-8",
                          f"{name}: {q.get_content_type()} charset")
                    check(q["Content-Transfer-Encoding"] ==
                          "quoted-printable", f"{name}: not QP")
                    body = q.as_bytes().partition(b"\n\n")[2]
                    for line in body.split(b"\n"):
                        check(len(line.rstrip(b"\r")) <= 76,
                              f"{name}: QP line of {len(line)}")
            atts = [q for q in msg.walk()
                    if q.get_content_disposition() == "attachment"]
            if check(len(atts) == 1, f"{name}: {len(atts)} attachments"):
                check(atts[0].get_content() == att_bytes.decode("utf-8")
                      or atts[0].get_payload(decode=True) == att_bytes,
                      f"{name}: attachment differs")
                check(atts[0].get_payload(decode=True) == att_bytes,
                      f"{name}: attachment bytes differ")
                check(atts[0].get_filename() == att_spec["name"][lang],
                      f"{name}: file name {atts[0].get_filename()!r}")
            sigs = verify_all(raw, dnsfunc)
            algs = sorted(s[2] for s in sigs)
            check(algs == ["ed25519-sha256", "rsa-sha256"],
                  f"{name}: signatures {algs}")
            for d_, s_, a_, ok in sigs:
                check(ok and d_ == DOMAIN, f"{name}: {a_} s={s_} did not "
                      "verify")
            if lang not in one_per_lang and p["language"] == lang:
                one_per_lang[lang] = (name, raw)

        # the text part is exactly what `herald render` shows
        for lang, (name, raw) in one_per_lang.items():
            r = subprocess.run([a.herald, "render", "templates/report-launch",
                                "--to", "lists/journalists.yaml",
                                "--recipient", name], cwd=src,
                               capture_output=True, timeout=60)
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            # line ends are CRLF on the wire (RFC 2045 canonical form)
            text = msg.get_body(("plain",)).get_content().replace("\r\n",
                                                                  "\n")
            check(text == r.stdout.decode("utf-8"),
                  f"{lang}: text part differs from herald render")

        # one changed body byte breaks both signatures
        name, raw = one_per_lang["ru"]
        i = raw.index(b"\r\n\r\n") + 200
        flipped = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:]
        check(not any(ok for *_, ok in verify_all(flipped, dnsfunc)),
              "a flipped body byte still verifies")
        # and a changed Subject too
        changed = raw.replace(b"Subject: ", b"Subject: X", 1)
        check(not any(ok for *_, ok in verify_all(changed, dnsfunc)),
              "a changed Subject still verifies")

        # relayed by a real Postfix, the signatures still verify
        with mailservers.SmtpSink() as sink, \
                mailservers.Postfix(relayhost=sink) as relay:
            for lang, (name, raw) in one_per_lang.items():
                relay.send("bounces@" + DOMAIN, [name], raw)
            got = sink.wait_for(len(one_per_lang), timeout=60)
            for m in got:
                check(m.data.startswith(b"Received: ") or
                      b"\r\nReceived: " in m.data.partition(b"\r\n\r\n")[0],
                      f"{m.recipients}: Postfix added no Received header")
                sigs = verify_all(m.data, dnsfunc)
                check(len(sigs) == 2 and all(ok for *_, ok in sigs),
                      f"{m.recipients}: after Postfix: {sigs}")
                print(f"relayed by Postfix and verified: {m.recipients[0]} "
                      f"({', '.join(s[2] for s in sigs)})")

        # the journalist's spam filter
        for lang, (name, raw) in sorted(one_per_lang.items()):
            score, rules = mailservers.spamassassin_score(raw)
            print(f"spamassassin {lang}: {score:.1f} {','.join(rules)}")
            check(score < 2.0, f"{lang}: SpamAssassin score {score} "
                  f"({', '.join(rules)})")

    print(f"checked {len(people)} messages")
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("messages: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
