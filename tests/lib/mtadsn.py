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
        os.unlink(conf.name)  # the mount keeps it
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
    the current (private) network namespace, in a process group of its
    own. Subclasses say how: prepare() writes what does not depend on the
    port, command() what does and returns the argv, log() reads the
    MTA's log."""

    name = ""
    package = ""

    def __init__(self, root: str, hop: ms.SmtpSink, bounces: ms.SmtpSink):
        self.root = os.path.realpath(root)
        self.hop, self.bounces = hop, bounces
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def chroot(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["chroot", self.root, *argv], capture_output=True,
                              text=True, errors="replace")

    def prepare(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def log(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        """Start the MTA on a free port; return once it listens. Its
        output goes to stdout.log in the tree."""
        _write(f"{self.root}/etc/resolv.conf", "nameserver 127.0.0.1\n")
        self.prepare()
        for _attempt in range(5):
            self.port = ms.free_port()
            argv = self.command()
            with open(f"{self.root}/var/log/herald-mtadsn.out", "wb") as out:
                self.proc = subprocess.Popen(
                    ["chroot", self.root, *argv], stdin=subprocess.DEVNULL,
                    stdout=out, stderr=out, start_new_session=True)
            proc = self.proc

            def ready():
                if proc.poll() is not None:
                    return "exited"
                # whichever of its processes listens: in the private
                # network namespace nothing else takes the port
                return "ready" if ms._port_taken(self.port) else None

            if ms.wait_until(ready, 30, f"{self.name} on port {self.port}") == "ready":
                return
            self.stop()
            if "in use" not in self.log():
                break
        raise HarnessError(f"{self.name} did not start:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """Stop the MTA and every process of its group."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        ms.wait_until(lambda: not _group_alive(proc.pid), 10,
                      f"{self.name}'s processes (group {proc.pid}) to exit")

    def send(self, sender: str, rcpt: str, message: bytes) -> None:
        import smtplib
        with smtplib.SMTP(ms.LOOPBACK, self.port, local_hostname="client.herald.test",
                          timeout=30) as smtp:
            smtp.sendmail(sender, [rcpt], message)


def _group_alive(pgid: int) -> bool:
    """True while a process of group pgid runs (zombies do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


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
        mta.start()
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


# Exim 4 as Debian ships it, with a configuration of its own in place of
# Debian's generated one: mail for the press office's domain goes to the
# bounce collector, the domain that does not exist is looked up in the DNS
# (the dnslookup router of Debian's own configuration for remote mail), and
# everything else goes to the next hop. A temporary refusal is retried
# every second and given up after three (a retry rule, as an operator's
# "F,3d,15m" ends after three days).
_EXIM_CONF = """\
# herald mtadsn: generated by tests/lib/mtadsn.py
primary_hostname = mx.exim.herald.test
qualify_domain = herald.test
local_interfaces = <; 127.0.0.1
disable_ipv6 = true
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_check_rcpt
never_users = root
log_file_path = /var/log/exim4/%slog
log_selector = +smtp_confirmation +deliver_time
keep_environment =
tls_advertise_hosts =

begin acl
acl_check_rcpt:
  accept hosts = 127.0.0.1
  deny message = relay not permitted

begin routers
press_office:
  driver = manualroute
  domains = {sender_domain}
  route_list = * 127.0.0.1
  self = send
  transport = to_bounces
dnslookup:
  driver = dnslookup
  domains = {nowhere}
  transport = remote_smtp
  no_more
next_hop:
  driver = manualroute
  route_list = * 127.0.0.1
  self = send
  transport = to_next_hop

begin transports
to_next_hop:
  driver = smtp
  port = {hop_port}
  allow_localhost
  hosts_avoid_tls = *
to_bounces:
  driver = smtp
  port = {bounce_port}
  allow_localhost
  hosts_avoid_tls = *
remote_smtp:
  driver = smtp
  hosts_avoid_tls = *

begin retry
*  *  F,3s,1s
"""


class Exim(ChrootMta):
    """Exim 4 (Debian's exim4-daemon-light) in the tree at root: the
    daemon in the foreground, a queue run every second."""

    name = "exim"
    package = "exim4-daemon-light"

    def prepare(self) -> None:
        r = self.root
        # no queue, retry data or log of an earlier run
        for sub in ("input", "msglog", "db"):
            shutil.rmtree(f"{r}/var/spool/exim4/{sub}", ignore_errors=True)
        for name in ("mainlog", "rejectlog", "paniclog"):
            if os.path.exists(f"{r}/var/log/exim4/{name}"):
                os.unlink(f"{r}/var/log/exim4/{name}")
        _write(f"{r}/etc/exim4/exim4.conf", _EXIM_CONF.format(
            sender_domain=SENDER_DOMAIN, nowhere=NOWHERE,
            hop_port=self.hop.port, bounce_port=self.bounces.port))
        check = self.chroot("/usr/sbin/exim4", "-bV")
        if check.returncode != 0:
            raise HarnessError(f"exim4 -bV: {check.stdout}{check.stderr}")

    def command(self) -> list[str]:
        return ["/usr/sbin/exim4", "-bdf", "-q1s", "-oX", str(self.port)]

    def log(self) -> str:
        out = ""
        for name in ("mainlog", "paniclog"):
            try:
                with open(f"{self.root}/var/log/exim4/{name}", errors="replace") as f:
                    out += f.read()
            except FileNotFoundError:
                pass
        return out


# OpenSMTPD as Debian ships it: the press office's domain to the bounce
# collector, the domain that does not exist by its MX (the resolver of the
# tree, so the stub), everything else to the next hop. A temporary refusal
# is given up after the queue's time to live, three seconds here (the
# default is four days).
_OPENSMTPD_CONF = """\
# herald mtadsn: generated by tests/lib/mtadsn.py
queue ttl 12s
listen on 127.0.0.1 port {port}
action "bounces" relay host smtp://127.0.0.1:{bounce_port}
action "mx" relay
action "hop" relay host smtp://127.0.0.1:{hop_port}
match from any for domain "{sender_domain}" action "bounces"
match from any for domain "{nowhere}" action "mx"
match from any for any action "hop"
"""


class OpenSmtpd(ChrootMta):
    """OpenSMTPD (Debian's opensmtpd) in the tree at root, in the
    foreground (-d), logging to its output."""

    name = "opensmtpd"
    package = "opensmtpd"
    HOSTNAME = "mx.opensmtpd.herald.test"

    def prepare(self) -> None:
        # the name it gives itself (else the machine's)
        _write(f"{self.root}/etc/mailname", self.HOSTNAME + "\n")
        shutil.rmtree(f"{self.root}/var/spool/smtpd", ignore_errors=True)

    def command(self) -> list[str]:
        _write(f"{self.root}/etc/smtpd.conf", _OPENSMTPD_CONF.format(
            port=self.port, sender_domain=SENDER_DOMAIN, nowhere=NOWHERE,
            hop_port=self.hop.port, bounce_port=self.bounces.port))
        check = self.chroot("/usr/sbin/smtpd", "-n", "-f", "/etc/smtpd.conf")
        if check.returncode != 0:
            raise HarnessError(f"smtpd -n: {check.stdout}{check.stderr}")
        return ["/usr/sbin/smtpd", "-d", "-v", "-f", "/etc/smtpd.conf"]

    def log(self) -> str:
        try:
            with open(f"{self.root}/var/log/herald-mtadsn.out", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


CHROOT_MTAS = {"exim": Exim, "opensmtpd": OpenSmtpd}


def make_samples(mta: str, root: str, out: str, kinds=None) -> None:
    """Write the DSN the MTA in the tree at root makes for each kind to
    out/<kind>.eml (LF line ends, as a mailbox file keeps them), and its
    log to out/<kind>.log beside them when HERALD_MTADSN_LOGS is set."""
    isolate()
    os.makedirs(out, exist_ok=True)
    for name in kinds or KINDS:
        started = time.monotonic()
        data, log = chroot_dsn(CHROOT_MTAS[mta], root, KINDS[name])
        with open(os.path.join(out, f"{name}.eml"), "wb") as f:
            f.write(data.replace(b"\r\n", b"\n"))
        if os.environ.get("HERALD_MTADSN_LOGS"):
            with open(os.path.join(out, f"{name}.log"), "w") as f:
                f.write(log)
        print(f"mtadsn: {mta} {name}: {time.monotonic() - started:.1f} s", flush=True)


def main(argv: list[str]) -> int:
    import argparse
    ap = argparse.ArgumentParser(
        description="make the DSNs of an MTA in a Debian tree "
        "(scripts/make-dsn-samples runs this)")
    ap.add_argument("--mta", required=True, choices=sorted(CHROOT_MTAS))
    ap.add_argument("--root", required=True, help="the tree with the MTA installed")
    ap.add_argument("--out", required=True, help="where <kind>.eml go")
    ap.add_argument("kinds", nargs="*", help=f"of {', '.join(KINDS)} (all)")
    a = ap.parse_args(argv)
    for k in a.kinds:
        if k not in KINDS:
            ap.error(f"{k}: not a kind ({', '.join(KINDS)})")
    make_samples(a.mta, a.root, a.out, a.kinds or None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
