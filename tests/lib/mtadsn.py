"""Delivery-status notifications made by real mail servers, on loopback.

herald reads the bounces that journalists' and relays' mail servers send
back. Its parser is tested here on DSNs that real MTAs write, for the
failures a press office meets: an address that is gone, a full mailbox, a
message too large, a relay that refuses, a domain that does not exist.

Each failure kind (KINDS) is one message to one journalist whose next hop,
a Postfix smtp-sink on 127.0.0.1, refuses it with the reply a real
receiving server gives (Postfix's own wording, and Dovecot's quota-status
for a full mailbox); for the domain that does not exist, a DNS stub
(tests/lib/dnsstub.py) answers NXDOMAIN. The MTA under test relays the
message, gets the refusal, gives up and sends its DSN to the sender, which
a second smtp-sink collects.

isolate() runs the caller in a private network namespace with only a
loopback interface and a resolv.conf naming 127.0.0.1, so that nothing a
test starts can reach the machine's resolver or any address outside
127.0.0.0/8, whatever the MTA does. postfix_dsn() makes a DSN with a
private Postfix (tests/lib/mailservers.py); exim_dsn() and opensmtpd_dsn()
with Exim 4 and OpenSMTPD installed in a Debian tree (a chroot) that
scripts/make-dsn-samples builds, since neither can be installed beside
Postfix.
"""
from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsstub  # noqa: E402
import mailservers as ms  # noqa: E402

# The sender of every test message: the press office's return path, where
# the DSNs go.
SENDER = "press-bounces@coalition.example.org"
SENDER_DOMAIN = "coalition.example.org"
# A domain that resolves nowhere (".invalid" is reserved, RFC 2606).
NOWHERE = "closed-gazette.invalid"
ISOLATED_ENV = "HERALD_MTADSN_ISOLATED"


@dataclasses.dataclass(frozen=True)
class Kind:
    """One failure: the journalist's address, where and how the next hop
    refuses it (command "RCPT" or "." for the end of data; None when the
    domain does not resolve, so there is no next hop), whether the
    refusal is temporary (the MTA must give up on it), and the verdict
    herald must reach: reason and hard (1 suppress the address, 0 soft,
    -1 says nothing about it)."""

    name: str
    rcpt: str
    command: str | None
    reply: str
    reason: str
    hard: int
    temporary: bool = False

    def reply_for(self) -> str:
        return self.reply.format(rcpt=self.rcpt)


KINDS = {k.name: k for k in (
    # Postfix's smtpd at the next hop, recipient not in its local table.
    Kind("userunknown", "gone.reporter@gazette.example.net", "RCPT",
         "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in "
         "local recipient table", "userunknown", 1),
    # Dovecot's quota-status policy service behind Postfix's smtpd, with
    # its default permanent reply, and with the temporary one many sites
    # configure (the MTA gives up after its queue lifetime).
    Kind("mailboxfull", "busy.editor@gazette.example.net", "RCPT",
         "552 5.2.2 <{rcpt}>: Recipient address rejected: Mailbox is full",
         "mailboxfull", 0),
    Kind("mailboxfull_4xx", "busy.editor@gazette.example.net", "RCPT",
         "452 4.2.2 <{rcpt}>: Recipient address rejected: Mailbox is full",
         "mailboxfull", 0, temporary=True),
    # Postfix's smtpd over its message_size_limit, after the data.
    Kind("mesgtoobig", "photo.desk@gazette.example.net", ".",
         "552 5.3.4 Message size exceeds fixed limit", "mesgtoobig", 0),
    # Postfix's smtpd for a domain it does not serve.
    Kind("norelaying", "news.desk@gazette.example.net", "RCPT",
         "554 5.7.1 <{rcpt}>: Relay access denied", "norelaying", -1),
    # The journalist's domain does not exist (NXDOMAIN).
    Kind("hostunknown", f"news.desk@{NOWHERE}", None, "",
         "hostunknown", 1),
)}


class HarnessError(ms.HarnessError):
    pass


def release_message(rcpt: str) -> bytes:
    """A press release to rcpt, as herald sends one."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Coalition Press Office <press@coalition.example.org>"
    msg["To"] = f"<{rcpt}>"
    msg["Subject"] = "Coalition opens a new reading room"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain="coalition.example.org")
    msg.set_content(
        "Dear editor,\n\nthe coalition opens its new reading room on "
        "Monday.\n\nBest regards,\nPress Office\n")
    return msg.as_bytes()


# -- a private network -------------------------------------------------------

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def isolate() -> None:
    """Run this process again (same argv) in new network and mount
    namespaces: only a loopback interface, and /etc/resolv.conf replaced
    (for this process and its children only) by one naming 127.0.0.1,
    where NxDomainDns answers. Returns in the new process; the old one
    exits with its status. Needs root."""
    if os.environ.get(ISOLATED_ENV) == "1":
        _loopback_up()
        conf = tempfile.NamedTemporaryFile("w", prefix="herald-resolv-",
                                           suffix=".conf", delete=False)
        conf.write("# herald mtadsn: the DNS stub on loopback\n"
                   "nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
        conf.close()
        os.chmod(conf.name, 0o644)
        r = subprocess.run(["mount", "--bind", conf.name, "/etc/resolv.conf"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise HarnessError(f"cannot put a private resolv.conf in place: "
                               f"{r.stderr.strip()}")
        return
    if os.geteuid() != 0:
        raise HarnessError("the mtadsn tests need root (a private network "
                           "namespace, Postfix)")
    env = dict(os.environ, **{ISOLATED_ENV: "1"})
    argv = ["unshare", "--net", "--mount", "--propagation", "private", "--",
            sys.executable, *sys.argv]
    sys.stdout.flush()
    r = subprocess.run(argv, env=env)
    sys.exit(r.returncode)


def check_isolated() -> None:
    """Refuse to go on outside isolate()'s namespace: no interface but
    loopback, and the stub as the only name server."""
    names = [n for _, n in socket.if_nameindex()]
    if names != ["lo"]:
        raise HarnessError(f"not in a private network namespace: interfaces {names}")
    with open("/etc/resolv.conf") as f:
        servers = [line.split()[1] for line in f
                   if line.startswith("nameserver") and len(line.split()) > 1]
    if servers != ["127.0.0.1"]:
        raise HarnessError(f"resolv.conf names {servers}, not the stub")


# -- Postfix -----------------------------------------------------------------

def next_hop(kind: Kind) -> ms.SmtpSink:
    """smtp-sink refusing kind's recipient the way kind says."""
    if kind.command is None:
        return ms.SmtpSink()
    if kind.temporary:
        return ms.SmtpSink(soft_reject=[kind.command], soft_reply=kind.reply_for())
    return ms.SmtpSink(hard_reject=[kind.command], hard_reply=kind.reply_for())


def postfix_dsn(kind: Kind, timeout: float = 60) -> tuple[bytes, str]:
    """Postfix relays a release to kind's journalist and gives up; the DSN
    it sends back (as received by smtp-sink: CRLF line ends) and its
    maillog. Every message goes to the next hop except the unresolvable
    domain, which Postfix looks up in the DNS (the stub) for its MX."""
    check_isolated()
    settings = {}
    if kind.command is None:
        settings = {
            "smtp_dns_support_level": "enabled",
            "smtp_host_lookup": "dns",
            "transport_maps": "inline:{ %s=smtp:%s }" % (NOWHERE, NOWHERE),
        }
    with dnsstub.NxDomainDns() as dns, next_hop(kind) as hop, \
            ms.SmtpSink() as bounces, \
            ms.Postfix(relayhost=hop, bounce_to=bounces, settings=settings,
                       maximal_queue_lifetime="0" if kind.temporary else "1d") as pf:
        pf.send(SENDER, [kind.rcpt], release_message(kind.rcpt))
        try:
            msgs = bounces.wait_for(1, timeout=timeout)
        except TimeoutError as e:
            raise HarnessError(f"Postfix sent no DSN for {kind.name}: {e}\n"
                               f"maillog:\n{pf.log()[-4000:]}") from None
        log = pf.log()
        if kind.command is None and (NOWHERE, 15) not in dns.queries():
            raise HarnessError(f"the DNS stub was not asked for {NOWHERE}'s MX: "
                               f"{dns.queries()}\nmaillog:\n{log[-4000:]}")
        # (smtp-sink keeps a message it refuses at the end of data)
        if kind.command == "RCPT" and hop.messages():
            raise HarnessError(f"the next hop accepted the message ({kind.name})")
    if len(msgs) != 1 or msgs[0].sender != "" or msgs[0].recipients != [SENDER]:
        raise HarnessError(f"want one DSN from <> to {SENDER}, got "
                           f"{[(m.sender, m.recipients) for m in msgs]}")
    return msgs[0].data, log


# -- MTAs in a Debian tree ---------------------------------------------------

class ChrootMta:
    """An MTA of a Debian tree at root, started by chroot on 127.0.0.1 in
    the current (private) network namespace. Subclasses write the config
    and know how to start and stop it."""

    name = ""
    package = ""

    def __init__(self, root: str, hop: ms.SmtpSink, bounces: ms.SmtpSink):
        self.root = os.path.realpath(root)
        self.hop, self.bounces = hop, bounces
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def chroot(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["chroot", self.root, *argv], capture_output=True,
                              text=True, errors="replace", **kw)

    def version(self) -> str:
        r = self.chroot("dpkg-query", "-W", "-f", "${Version}", self.package)
        return r.stdout.strip()

    def send(self, sender: str, rcpt: str, message: bytes) -> None:
        import smtplib
        with smtplib.SMTP(ms.LOOPBACK, self.port, local_hostname="client.herald.test",
                          timeout=30) as smtp:
            smtp.sendmail(sender, [rcpt], message)


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def chroot_dsn(mta_class, root: str, kind: Kind, timeout: float = 90) -> tuple[bytes, str]:
    """The DSN mta_class (Exim, OpenSMTPD) in the tree at root sends for
    kind, and the MTA's log."""
    check_isolated()
    with dnsstub.NxDomainDns() as dns, next_hop(kind) as hop, \
            ms.SmtpSink() as bounces:
        mta = mta_class(root, hop, bounces)
        mta.start(kind)
        try:
            mta.send(SENDER, kind.rcpt, release_message(kind.rcpt))
            try:
                msgs = bounces.wait_for(1, timeout=timeout)
            except TimeoutError as e:
                raise HarnessError(f"{mta.name} sent no DSN for {kind.name}: {e}\n"
                                   f"log:\n{mta.log()[-4000:]}") from None
            log = mta.log()
        finally:
            mta.stop()
        if kind.command is None and not any(n == NOWHERE for n, _ in dns.queries()):
            raise HarnessError(f"the DNS stub was not asked for {NOWHERE}: "
                               f"{dns.queries()}\nlog:\n{log[-4000:]}")
        # (smtp-sink keeps a message it refuses at the end of data)
        if kind.command == "RCPT" and hop.messages():
            raise HarnessError(f"the next hop accepted the message ({kind.name})")
    if len(msgs) != 1 or msgs[0].recipients != [SENDER]:
        raise HarnessError(f"want one DSN to {SENDER}, got "
                           f"{[(m.sender, m.recipients) for m in msgs]}")
    return msgs[0].data, log
