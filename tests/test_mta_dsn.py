#!/usr/bin/env python3
"""herald's verdict on the bounces real MTAs write (ctest group mtadsn).

One case per (MTA, failure kind): herald's bounce parser (the bounce_corpus
tool) must find a bounce, the one journalist whose delivery failed, and the
verdict of tests/lib/mtadsn.py's KINDS: userunknown and hostunknown
suppress the address (hard 1), mailboxfull and mesgtoobig count toward the
soft limit (0), norelaying says nothing about the address (-1).

postfix_<kind>: a private Postfix makes the DSN in the run itself, in a
private network namespace (mtadsn.isolate), relaying to an smtp-sink on
127.0.0.1 that refuses the way a real receiving server does, or looking up
a domain a DNS stub says does not exist. Needs root.

<mta>_<kind> for the MTAs that cannot be installed beside Postfix (exim,
opensmtpd): the DSNs they made the same way, committed under
tests/data/bounces/made/<mta>/<kind>.eml by scripts/make-dsn-samples (the
README there says when, and with which package versions).

Run as test_delivery.py's cases are:
`test_mta_dsn.py --herald H --heraldd D --source S --tool BOUNCE_CORPUS
CASE`. HERALD_MTADSN_KEEP=DIR keeps the DSNs made live in DIR.
"""
import email
import email.policy
import functools
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import mtadsn  # noqa: E402
import test_delivery as td  # noqa: E402

A = None
check = td.check
# The MTAs whose DSNs are committed samples, with the kinds they have.
SAMPLE_MTAS = ("exim", "opensmtpd")
MADE = os.path.join("tests", "data", "bounces", "made")
# A sample that cannot carry its kind's verdict, with the verdict it can.
# OpenSMTPD 6.8 (Debian 12) reports an envelope that expired after 4xx
# replies as delayed (Action: delayed, Status: 4.4.7, "Envelope expired"),
# though it has dropped the message, and leaves out the last reply, so
# nothing in it says the mailbox was full: the expiry is all herald can
# read, and an expiry is soft.
ODD = {
    ("opensmtpd", "mailboxfull_4xx"): {"action": "delayed",
                                       "reason": "expired", "hard": 0},
}


def dsn_fields(data: bytes, kind, action: str = "failed") -> dict:
    """The MTA's own report, read with Python's email package: a
    message/delivery-status part (in multipart/report, or multipart/mixed
    as OpenSMTPD sends it) with `action` for the journalist, so that a
    case fails as the harness's fault, not herald's, when the MTA did not
    write what the case needs."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    check(any(p.get_content_type() == "message/delivery-status"
              for p in msg.walk()),
          f"the MTA's DSN ({msg.get_content_type()}) has no "
          f"message/delivery-status part")
    text = re.sub(r"\r?\n(?=[ \t])", "", data.decode("utf-8", "replace"))
    fields = {}
    for k, v in re.findall(r"^(Final-Recipient|Action|Status|Diagnostic-Code)"
                           r":[ \t]*(.*?)\r?$", text, re.M | re.I):
        fields.setdefault(k.title(), " ".join(v.split()))
    final = fields.get("Final-Recipient", "")
    check(final.lower().endswith(kind.rcpt.lower()),
          f"the MTA's DSN names {final!r}, not {kind.rcpt}")
    check(fields.get("Action", "").lower() == action,
          f"the MTA's DSN has Action {fields.get('Action')!r}, not {action}")
    return fields


def judge(mta: str, kind, path: str) -> None:
    """bounce_corpus on the DSN at path must give kind's verdict (or the
    MTA's own, in ODD)."""
    odd = ODD.get((mta, kind.name), {})
    with open(path, "rb") as f:
        fields = dsn_fields(f.read(), kind, odd.get("action", "failed"))
    r = subprocess.run([A.tool, path], capture_output=True, text=True,
                       errors="replace", timeout=60)
    check(r.returncode == 0, f"bounce_corpus exited {r.returncode} on {path}:"
          f"\n{r.stderr[-2000:]}")
    lines = r.stdout.splitlines()
    check(len(lines) == 1, f"bounce_corpus printed {len(lines)} lines")
    got = json.loads(lines[0])
    want = {"bounce": True, "recipients": [kind.rcpt.lower()],
            "reason": odd.get("reason", kind.reason),
            "hard": odd.get("hard", kind.hard)}
    have = {"bounce": got["bounce"],
            "recipients": [a.lower() for a in got["recipients"]],
            "reason": got["reason"], "hard": got["hard"]}
    wrong = [f"{k} {have[k]!r} (want {want[k]!r})" for k in want
             if have[k] != want[k]]
    check(not wrong, f"herald misreads {mta}'s {kind.name} DSN "
          f"(MTA wrote Status {fields.get('Status')!r}, Diagnostic-Code "
          f"{fields.get('Diagnostic-Code')!r}): " + "; ".join(wrong)
          + f"\nbounce_corpus: {lines[0]}")


def live_postfix(name: str) -> None:
    """A private Postfix makes the DSN now; herald must read it right."""
    mtadsn.isolate()  # this case again, in its own network namespace
    kind = mtadsn.KINDS[name]
    data, log = mtadsn.postfix_dsn(kind)
    keep = os.environ.get("HERALD_MTADSN_KEEP")
    if keep:
        os.makedirs(os.path.join(keep, "postfix"), exist_ok=True)
        path = os.path.join(keep, "postfix", f"{name}.eml")
        with open(path, "wb") as f:
            f.write(data)
        judge("postfix", kind, path)
        return
    with tempfile.NamedTemporaryFile(prefix=f"herald-dsn-{name}-",
                                     suffix=".eml") as f:
        f.write(data)
        f.flush()
        try:
            judge("postfix", kind, f.name)
        except td.Failure as e:
            raise td.Failure(f"{e}\nPostfix's maillog:\n{log[-3000:]}") from None


def committed(mta: str, name: str) -> None:
    """A DSN the MTA made earlier (scripts/make-dsn-samples)."""
    kind = mtadsn.KINDS[name]
    path = os.path.join(A.source, MADE, mta, f"{name}.eml")
    check(os.path.isfile(path), f"{path} is missing: scripts/make-dsn-samples "
          f"makes it")
    judge(mta, kind, path)


for _name in mtadsn.KINDS:
    globals()[f"case_postfix_{_name}"] = functools.partial(live_postfix, _name)
    for _mta in SAMPLE_MTAS:
        globals()[f"case_{_mta}_{_name}"] = functools.partial(committed, _mta,
                                                              _name)


def main():
    return td.run_cases(globals(), lambda ap: ap.add_argument(
        "--tool", required=True, help="the bounce_corpus tool"))


if __name__ == "__main__":
    sys.exit(main())
