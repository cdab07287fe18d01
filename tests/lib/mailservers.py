"""Real mail servers on loopback for herald's integration tests.

herald's delivery code is tested against the servers it meets in the field,
not against mocks: Postfix's smtp-sink as the receiving server (it dumps
every message to a file and can be told to refuse, delay or drop any SMTP
command, which is how tests inject faults), a private Postfix instance as
the relay in front of it (and as the source of real bounce DSNs), and
SpamAssassin as the journalist's spam filter.

Everything listens on 127.0.0.1 only, and every address a server is told to
deliver to must be a bracketed numeric loopback address: nothing a test
starts may ever reach an address outside 127.0.0.0/8, look up a name in the
DNS or touch the machine's own Postfix (/etc/postfix, port 25).

Tests never sleep to wait: every wait here polls with a deadline
(wait_until) and fails with a message that says what was missing and where
to look. Servers are context managers that stop and clean up also when the
test fails. Set HERALD_KEEP_SERVERS=1 to keep their temporary directories
(dumps, Postfix configuration, queue and log) for a post-mortem.

Standard library only (Python 3.11, Debian 12), except TlsSmtpServer, an
SMTP server with STARTTLS and AUTH built on Debian's python3-aiosmtpd
(imported when one is started), with certificates from a TestCA made by
openssl, and a private Dovecot (Debian's dovecot-imapd) as the IMAP
bounce mailbox.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import pty
import pwd
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Iterable, TypeVar

LOOPBACK = "127.0.0.1"

SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTQUEUE = "/usr/sbin/postqueue"
SPAMASSASSIN = "/usr/bin/spamassassin"
# The rules the Debian package ships. Tests pin them (instead of whatever
# sa-update may have put under /var/lib/spamassassin) so scores are the
# same on every machine.
SPAMASSASSIN_RULES = "/usr/share/spamassassin"
SPAMASSASSIN_SITE = "/etc/spamassassin"  # loads the plugins (*.pre)

# The unprivileged user smtp-sink switches to when started as root.
SINK_USER = "nobody"

KEEP_ENV = "HERALD_KEEP_SERVERS"

T = TypeVar("T")


class HarnessError(RuntimeError):
    """A test server could not be started, used or stopped."""


class DumpFormatError(HarnessError):
    """An smtp-sink dump file is not in the format this module knows."""


# -- helpers -----------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """Poll predicate until it returns a true value; return that value.

    Raises TimeoutError naming `what` after `timeout` seconds. The pause
    between polls grows from 10 ms to 100 ms: this is polling with a
    deadline, not sleeping in the hope that something has happened.
    """
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now.

    Another process may take it before the caller binds it; the servers
    here retry with a new port when their bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def loopback_destination(dest) -> str:
    """Postfix nexthop "[127.0.0.1]:PORT" for a server or a nexthop string.

    Accepts anything with .host and .port (SmtpSink, Postfix) or a string
    "[ADDR]:PORT". Refuses anything that is not a bracketed (so never
    looked up) numeric address in 127.0.0.0/8.
    """
    if hasattr(dest, "host") and hasattr(dest, "port"):
        dest = f"[{dest.host}]:{dest.port}"
    m = re.fullmatch(r"\[([0-9.]+)\]:([0-9]{1,5})", str(dest))
    if not m:
        raise ValueError(f"{dest!r}: want [127.x.y.z]:PORT (bracketed, numeric)")
    if ipaddress.ip_address(m.group(1)) not in ipaddress.ip_network("127.0.0.0/8"):
        raise ValueError(f"{dest!r}: test mail must stay on loopback (127.0.0.0/8)")
    if not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"{dest!r}: bad port")
    return str(dest)


def processes_under(directory: str) -> list[int]:
    """Pids of processes whose working directory or command line is in
    `directory` (a server's temporary directory): what a stopped server
    must not leave behind."""
    directory = os.path.realpath(directory)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            cwd = ""
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode("utf-8", "replace")
        except OSError:
            cmdline = ""
        if not cmdline and not cwd:
            continue  # exited, or a zombie
        if cwd == directory or cwd.startswith(directory + "/") or directory in cmdline:
            found.append(int(entry))
    return found


def _socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process pid has open (needs /proc access)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _listeners(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on port (any IPv4 address)."""
    with open("/proc/net/tcp") as f:
        next(f)
        return {cols[9] for cols in (line.split() for line in f)
                if cols[3] == "0A" and int(cols[1].split(":")[1], 16) == port}


def _listening(pid: int, port: int) -> bool:
    """True when process pid owns a TCP socket listening on port.

    Read from /proc rather than found out by connecting, so that a probe
    connection never shows up in a server's counters or fault injection.
    """
    inodes = _listeners(port)
    try:
        return bool(inodes and inodes & _socket_inodes(pid))
    except FileNotFoundError:
        return False


def _port_taken(port: int) -> bool:
    return bool(_listeners(port))


def _keep() -> bool:
    return os.environ.get(KEEP_ENV, "") not in ("", "0")


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"({path}: {e.strerror})"
    text = data[-limit:].decode("utf-8", "replace")
    return text if text.strip() else "(empty)"


def _make_tmpdir(prefix: str) -> str:
    # 0755, under directories everyone may enter, so that the unprivileged
    # users the servers switch to (nobody, postfix) reach their files.
    base = os.path.realpath(tempfile.gettempdir())
    parent = base
    while True:
        if not os.stat(parent).st_mode & 0o001:
            raise HarnessError(f"{parent} is closed to other users, so smtp-sink and Postfix "
                               f"cannot work in {base}: set TMPDIR=/tmp")
        if parent == "/":
            break
        parent = os.path.dirname(parent)
    path = tempfile.mkdtemp(prefix=prefix, dir=base)
    os.chmod(path, 0o755)
    return path


# -- smtp-sink ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SinkMessage:
    """One mail transaction as smtp-sink dumped it."""

    sender: str  # envelope sender without <>; "" for the null sender
    recipients: list[str]  # accepted RCPT TO addresses without <>, in order
    data: bytes  # the message as the client sent it: CRLF, dot-unstuffed
    mail_args: str  # MAIL FROM arguments as received, "<a@b> BODY=8BITMIME"
    rcpt_args: list[str]  # RCPT TO arguments as received, one per recipient
    helo: str | None  # argument of the last HELO/EHLO, if any
    path: str  # the dump file


def _split_path(args: str) -> tuple[str, str]:
    """Split "<addr> PARAMS" into (addr, params); quotes may hide '>'."""
    args = args.strip()
    if not args.startswith("<"):
        addr, _, rest = args.partition(" ")
        return addr, rest.strip()
    quoted = escaped = False
    for i, ch in enumerate(args[1:], 1):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return args[1:i], args[i + 1 :].strip()
    raise DumpFormatError(f"unterminated <path> in {args!r}")


def parse_dump(raw: bytes, path: str = "") -> SinkMessage:
    """Parse one smtp-sink -d dump file.

    The format (Postfix 3.7): one record per line, LF-terminated --
    X-Client-Addr, X-Client-Proto, X-Helo-Args (if the client said HELO),
    X-Mail-Args, one X-Rcpt-Args per accepted recipient -- then a three-line
    "Received: from ..." header, then the message data with every CR removed
    and leading dots unstuffed, then one LF for the final "." line.

    The data is given back with LF turned into CRLF, so a message sent with
    CRLF line ends comes back byte-identical. Bare CR and LF in what the
    client sent cannot be told from this (smtp-sink drops every CR), and
    non-ASCII in the envelope arrives as "?" (smtp-sink sanitizes commands).
    """
    where = path or "smtp-sink dump"
    pos = 0
    records: list[tuple[str, str]] = []
    while True:
        nl = raw.find(b"\n", pos)
        if nl < 0:
            raise DumpFormatError(f"{where}: no smtp-sink Received header")
        line = raw[pos:nl]
        pos = nl + 1
        if line.startswith(b"Received: from "):
            # "\tby HOST (smtp-sink) with PROTO id ID;" and "\tDATE"
            for _ in range(2):
                nl = raw.find(b"\n", pos)
                if nl < 0 or raw[pos : pos + 1] != b"\t":
                    raise DumpFormatError(f"{where}: short smtp-sink Received header")
                pos = nl + 1
            break
        name, sep, value = line.partition(b": ")
        if not sep or not name.startswith(b"X-"):
            raise DumpFormatError(f"{where}: unexpected record {line[:80]!r}")
        records.append((name.decode("ascii", "replace"), value.decode("utf-8", "replace")))
    body = raw[pos:]
    # The data ends with CRLF before the final ".", so a complete dump ends
    # with two LFs (or is a single LF for an empty message).
    if not (body.endswith(b"\n\n") or body == b"\n"):
        raise DumpFormatError(f"{where}: message data does not end with the final line")
    data = body[:-1].replace(b"\n", b"\r\n")

    mail_args = [v for k, v in records if k == "X-Mail-Args"]
    if len(mail_args) != 1:
        raise DumpFormatError(f"{where}: {len(mail_args)} X-Mail-Args records, want 1")
    rcpt_args = [v for k, v in records if k == "X-Rcpt-Args"]
    helo = [v for k, v in records if k == "X-Helo-Args"]
    return SinkMessage(
        sender=_split_path(mail_args[0])[0],
        recipients=[_split_path(a)[0] for a in rcpt_args],
        data=data,
        mail_args=mail_args[0],
        rcpt_args=rcpt_args,
        helo=helo[-1] if helo else None,
        path=path,
    )


def _commands(value: str | Iterable[str]) -> str:
    names = [value] if isinstance(value, str) else list(value)
    for n in names:
        if not re.fullmatch(r"[A-Za-z.]+", n):
            raise ValueError(f"{n!r} is not an SMTP command name for smtp-sink")
    return ",".join(names)


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:<free port>, dumping every message.

    Fault injection, each for a list of SMTP commands (CONNECT, HELO, EHLO,
    MAIL, RCPT, DATA, ".", RSET, NOOP, QUIT), applied every time:
      hard_reject  -f  reply 500 5.3.0 (or hard_reply)
      soft_reject  -r  reply 450 4.3.0 (or soft_reply)
      reply_421    -Q  reply 421 and disconnect
      disconnect   -q  drop the connection without a reply
      delays       -W  {command: seconds} wait before replying
      data_delay   -w  seconds to wait before replying to DATA
    Note that smtp-sink writes the dump before it answers ".", so a message
    refused at "." (hard_reject=["."]) is still in messages().

    port: listen on this port instead of a free one (a server that comes
    back where a client expects it). backlog is listen()'s backlog; max_connections (-m) bounds the sessions
    served at once (more wait in the kernel queue). extra_args go to
    smtp-sink as they are (not -d, -D, -S or -u, which this class owns).
    """

    def __init__(
        self,
        *,
        hard_reject: Iterable[str] = (),
        soft_reject: Iterable[str] = (),
        reply_421: Iterable[str] = (),
        disconnect: Iterable[str] = (),
        delays: dict[str, int] | None = None,
        data_delay: int = 0,
        hard_reply: str | None = None,
        soft_reply: str | None = None,
        backlog: int = 128,
        max_connections: int | None = None,
        hostname: str = "sink.herald.test",
        extra_args: Iterable[str] = (),
        start_timeout: float = 10,
        port: int = 0,
    ):
        self.host = LOOPBACK
        self.port = 0
        # a fixed port: a server that comes back where a client expects it
        self._fixed_port = int(port)
        self.directory = ""
        self._proc: subprocess.Popen | None = None
        self._start_timeout = start_timeout
        extra = list(extra_args)
        for a in extra:
            if a[:2] in ("-d", "-D", "-S", "-u"):
                raise ValueError(f"smtp-sink option {a} is set by SmtpSink itself")
        flags = ["-h", hostname]
        for opt, cmds in (("-f", hard_reject), ("-r", soft_reject),
                          ("-Q", reply_421), ("-q", disconnect)):
            if cmds:
                flags += [opt, _commands(cmds)]
        for cmd, seconds in (delays or {}).items():
            flags += ["-W", f"{_commands(cmd)}:{int(seconds)}"]
        if data_delay:
            flags += ["-w", str(int(data_delay))]
        if hard_reply:
            flags += ["-B", hard_reply]
        if soft_reply:
            flags += ["-b", soft_reply]
        if max_connections:
            flags += ["-m", str(int(max_connections))]
        self._flags = flags + extra
        self._backlog = int(backlog)

    # life cycle

    def __enter__(self) -> "SmtpSink":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def dump_dir(self) -> str:
        return os.path.join(self.directory, "dump")

    @property
    def log_path(self) -> str:
        """smtp-sink's stdout and stderr."""
        return os.path.join(self.directory, "smtp-sink.log")

    def start(self) -> None:
        if not os.access(SMTP_SINK, os.X_OK):
            raise HarnessError(f"{SMTP_SINK} not found: install the Debian package postfix")
        self.directory = _make_tmpdir("herald-sink-")
        try:
            os.mkdir(self.dump_dir, 0o755)
            user = []
            if os.geteuid() == 0:
                # smtp-sink refuses to run as root; it writes the dumps as SINK_USER.
                pw = pwd.getpwnam(SINK_USER)
                os.chown(self.dump_dir, pw.pw_uid, pw.pw_gid)
                user = ["-u", SINK_USER]
            template = self.dump_dir.replace("%", "%%") + "/msg."
            for _attempt in range(5):
                self.port = self._fixed_port or free_port()
                argv = [SMTP_SINK, *user, "-d", template, *self._flags,
                        f"{self.host}:{self.port}", str(self._backlog)]
                with open(self.log_path, "ab") as log:
                    self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                                  stdout=log, stderr=log)
                if self._wait_listening():
                    return
                if "in use" not in _tail(self.log_path):
                    break  # not a port taken in between: do not retry
                if self._fixed_port:
                    time.sleep(0.5)  # the previous server's port frees
            raise HarnessError(f"smtp-sink did not start: {' '.join(argv)}\n"
                               f"{self.log_path}:\n{_tail(self.log_path)}")
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self) -> bool:
        proc = self._proc

        def ready():
            if proc.poll() is not None:
                return "exited"
            return "ready" if _listening(proc.pid, self.port) else None

        return wait_until(ready, self._start_timeout, f"smtp-sink on port {self.port}") == "ready"

    def stop(self) -> None:
        """Stop smtp-sink and remove its directory; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.directory:
            if _keep():
                print(f"mailservers: kept smtp-sink files in {self.directory}", file=sys.stderr)
            else:
                shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def check_running(self) -> None:
        """Raise HarnessError when smtp-sink has died."""
        if self._proc is None or self._proc.poll() is not None:
            raise HarnessError(f"smtp-sink on port {self.port} is not running\n"
                               f"{self.log_path}:\n{_tail(self.log_path)}")

    # messages

    def _complete_dumps(self) -> list[str]:
        """Dump files smtp-sink has finished writing, oldest first.

        smtp-sink opens a dump at MAIL, writes it as the transaction goes,
        closes it at the final "." and deletes it when the transaction is
        aborted; so a dump it does not hold open is complete. The directory
        is listed before the open files are, so a dump is never taken for
        complete while it is still being written.
        """
        names = os.listdir(self.dump_dir)
        open_now: set[str] = set()
        if self._proc is not None and self._proc.poll() is None:
            fd_dir = f"/proc/{self._proc.pid}/fd"
            try:
                fds = os.listdir(fd_dir)
            except FileNotFoundError:
                fds = []
            except PermissionError as e:
                raise HarnessError(f"cannot see which dumps smtp-sink is writing: {e}") from e
            for fd in fds:
                try:
                    open_now.add(os.readlink(f"{fd_dir}/{fd}"))
                except OSError:
                    pass
        done = []
        for name in names:
            path = os.path.join(self.dump_dir, name)
            if path in open_now:
                continue
            try:
                done.append((os.stat(path).st_mtime_ns, name, path))
            except FileNotFoundError:
                continue  # an aborted transaction, deleted just now
        return [path for _, _, path in sorted(done)]

    def count(self) -> int:
        """Number of complete messages received so far (cheap: no parsing)."""
        return len(self._complete_dumps())

    def messages(self) -> list[SinkMessage]:
        """Every complete message received so far, oldest first."""
        out = []
        for path in self._complete_dumps():
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                continue  # removed by clear() in between
            out.append(parse_dump(raw, path))
        return out

    def wait_for(self, n: int, timeout: float = 30) -> list[SinkMessage]:
        """Poll until at least n messages are complete; return them all.

        Raises TimeoutError with the count and smtp-sink's log otherwise,
        and HarnessError at once if smtp-sink dies.
        """
        def enough():
            self.check_running()
            return self.count() >= n

        try:
            wait_until(enough, timeout, f"{n} message(s) at smtp-sink port {self.port}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; it has {self.count()}\n"
                               f"{self.log_path}:\n{_tail(self.log_path)}") from None
        return self.messages()

    def clear(self) -> None:
        """Forget the messages received so far."""
        for path in self._complete_dumps():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


# -- Postfix -----------------------------------------------------------------

# One service per line; chroot is off everywhere ("n" in the fifth column)
# because the instance lives in a temporary directory with nothing to chroot
# into. No local, virtual, lmtp or pipe delivery exists at all; tlsmgr is
# absent because TLS is off.
_MASTER_CF = """\
# herald test relay: generated by tests/lib/mailservers.py
{listen} inet n - n - - smtpd
pickup    unix  n  -  n  60     1  pickup
cleanup   unix  n  -  n  -      0  cleanup
qmgr      unix  n  -  n  300    1  qmgr
rewrite   unix  -  -  n  -      -  trivial-rewrite
bounce    unix  -  -  n  -      0  bounce
defer     unix  -  -  n  -      0  bounce
trace     unix  -  -  n  -      0  bounce
verify    unix  -  -  n  -      1  verify
flush     unix  n  -  n  1000?  0  flush
proxymap  unix  -  -  n  -      -  proxymap
proxywrite unix -  -  n  -      1  proxymap
smtp      unix  -  -  n  -      -  smtp
relay     unix  -  -  n  -      -  smtp
showq     unix  n  -  n  -      -  showq
error     unix  -  -  n  -      -  error
retry     unix  -  -  n  -      -  error
discard   unix  -  -  n  -      -  discard
anvil     unix  -  -  n  -      1  anvil
scache    unix  -  -  n  -      1  scache
postlog   unix-dgram n - n - 1 postlogd
"""


class Postfix:
    """A private Postfix instance relaying everything to `relayhost`.

    It lives in a temporary directory (configuration in etc/, queue in
    spool/, data in data/, log in maillog), listens on 127.0.0.1:<free
    port> only, accepts mail from 127.0.0.0/8 for any domain, delivers
    nothing locally, makes no DNS lookups, speaks no TLS and no SMTPUTF8,
    and relays every message to relayhost ("[127.0.0.1]:PORT" or an
    SmtpSink). It leaves headers as they came (no rewriting, no added
    Message-ID or Date) apart from its own Received header.

    Bounces: a recipient the relay refuses with 5xx (or one still deferred
    after maximal_queue_lifetime) makes Postfix send a DSN from <> to the
    sender. With bounce_to (a second SmtpSink, or "[127.0.0.1]:PORT") every
    message from <> -- bounces, delay notices -- goes there instead of to
    relayhost. maximal_queue_lifetime and bounce_queue_lifetime (for
    undeliverable bounces; default: the same) take Postfix time values ("0" =
    one delivery attempt only). settings adds or overrides main.cf
    parameters; main_cf() shows them all.

    With maildir=True the instance delivers every recipient, of any
    domain, into one Maildir of its own (the `virtual` delivery agent,
    owned by the unprivileged SINK_USER) instead of relaying: read it with
    maildir_messages(). relayhost is then only used for bounces.

    Postfix needs root. Starting runs "postfix -c DIR check" (which
    creates the queue directories with the right owners) and then the master
    daemon as "postfix start" would, plus -e lifetime: should the test
    process be killed before it can stop the instance, the master exits by
    itself after `lifetime` seconds and its children follow.
    """

    def __init__(
        self,
        relayhost,
        *,
        bounce_to=None,
        maximal_queue_lifetime: str = "1d",
        bounce_queue_lifetime: str | None = None,
        settings: dict[str, str] | None = None,
        myhostname: str = "relay.herald.test",
        lifetime: int = 900,
        start_timeout: float = 30,
        maildir: bool = False,
    ):
        self.maildir = maildir
        self.relayhost = loopback_destination(relayhost)
        self.bounce_to = loopback_destination(bounce_to) if bounce_to is not None else None
        self.maximal_queue_lifetime = maximal_queue_lifetime
        # Postfix caps bounce_queue_lifetime at maximal_queue_lifetime (with
        # a warning in the log); by default they are the same.
        self.bounce_queue_lifetime = bounce_queue_lifetime or maximal_queue_lifetime
        self.settings = dict(settings or {})
        self.myhostname = myhostname
        self.lifetime = int(lifetime)
        self.start_timeout = start_timeout
        self.host = LOOPBACK
        self.port = 0
        self.directory = ""
        self._master_pid: int | None = None

    # paths

    @property
    def config_dir(self) -> str:
        return os.path.join(self.directory, "etc")

    @property
    def queue_dir(self) -> str:
        return os.path.join(self.directory, "spool")

    @property
    def data_dir(self) -> str:
        return os.path.join(self.directory, "data")

    @property
    def maildir_path(self) -> str:
        """The Maildir every recipient's mail goes to (maildir=True)."""
        return os.path.join(self.directory, "mailboxes", "all")

    def maildir_messages(self) -> list[bytes]:
        """The messages delivered into maildir_path so far (new/)."""
        new = os.path.join(self.maildir_path, "new")
        if not os.path.isdir(new):
            return []
        out = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "maillog")

    # configuration

    def main_cf(self) -> dict[str, str]:
        """The main.cf parameters of this instance, in order."""
        cf = {
            "compatibility_level": "3.6",
            # Everything of this instance in its own directory; the
            # programs and postfix-files come from the Debian package.
            "config_directory": self.config_dir,
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": "herald-relay",
            "maillog_file": self.log_path,
            "maillog_file_prefixes": self.directory,
            # Who we are: never the machine's name, never looked up.
            "myhostname": self.myhostname,
            "mydomain": "herald.test",
            "myorigin": "$myhostname",
            "smtpd_banner": "$myhostname ESMTP herald test relay",
            "biff": "no",
            "readme_directory": "no",
            # Loopback only, IPv4 only.
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtp_bind_address": LOOPBACK,
            # Accept from loopback for any domain, relay everything to
            # relayhost; no local delivery of anything.
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "local_transport": "error:5.1.1 local delivery disabled in herald test relay",
            "relayhost": self.relayhost,
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject",
            # No DNS: bracketed numeric nexthops need no lookup, and the
            # client's name is not looked up either.
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            # No TLS, no SMTPUTF8, no 8-bit to quoted-printable conversion:
            # relay the bytes as they came.
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "smtputf8_enable": "no",
            "disable_mime_output_conversion": "yes",
            # Headers stay as the client wrote them.
            "local_header_rewrite_clients": "",
            "append_dot_mydomain": "no",
            # Mail leaves at once and deferred mail is retried every second.
            "in_flow_delay": "0s",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtpd_error_sleep_time": "0s",
            "smtp_connect_timeout": "10s",
            "delay_warning_time": "0h",
            "maximal_queue_lifetime": self.maximal_queue_lifetime,
            "bounce_queue_lifetime": self.bounce_queue_lifetime,
        }
        if self.bounce_to:
            # Mail from the null sender (what Postfix sends bounces and
            # delay notices as) goes to bounce_to.
            # (inline: wants "key=value" without spaces around "=".)
            cf["sender_dependent_relayhost_maps"] = "inline:{ <>=%s }" % self.bounce_to
        if self.maildir:
            # Every domain is a virtual mailbox domain and every address
            # maps to the one Maildir ("all/": the trailing slash asks for
            # Maildir format), owned by the unprivileged user.
            pw = pwd.getpwnam(SINK_USER)
            cf.update({
                "virtual_mailbox_domains": "regexp:" + os.path.join(
                    self.config_dir, "all-domains.re"),
                "virtual_mailbox_base": os.path.join(self.directory,
                                                     "mailboxes"),
                "virtual_mailbox_maps": "static:all/",
                "virtual_uid_maps": f"static:{pw.pw_uid}",
                "virtual_gid_maps": f"static:{pw.pw_gid}",
                "virtual_minimum_uid": str(min(pw.pw_uid, 100)),
                "virtual_transport": "virtual",
            })
        cf.update(self.settings)
        for k, v in cf.items():
            if "\n" in k or "\n" in v or "\r" in v:
                raise ValueError(f"main.cf {k}: line break in parameter")
        return cf

    def _write_config(self) -> None:
        os.mkdir(self.config_dir, 0o755)
        # "postfix check" creates what goes inside the queue directory,
        # with the owners and modes postfix-files gives, but not the
        # directory itself.
        os.mkdir(self.queue_dir, 0o755)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write("# herald test relay: generated by tests/lib/mailservers.py\n")
            for k, v in self.main_cf().items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(_MASTER_CF.format(listen=f"{self.host}:{self.port}"))
            if self.maildir:
                f.write("virtual   unix  -  n  n  -      -  virtual\n")
        if self.maildir:
            with open(os.path.join(self.config_dir, "all-domains.re"), "w") as f:
                f.write("/./ OK\n")
            base = os.path.join(self.directory, "mailboxes")
            os.mkdir(base, 0o755)
            pw = pwd.getpwnam(SINK_USER)
            os.chown(base, pw.pw_uid, pw.pw_gid)
        # Postfix waits (up to 2 s, in every program) for a table file
        # modified within the last second to settle; these are complete.
        past = time.time() - 60
        for name in ("main.cf", "master.cf") + (("all-domains.re",) if self.maildir else ()):
            os.utime(os.path.join(self.config_dir, name), (past, past))

    # life cycle

    def __enter__(self) -> "Postfix":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop(quiet=exc[0] is not None)

    def _run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        env = dict(os.environ, MAIL_CONFIG=self.config_dir, LANG="C")
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              env=env, timeout=timeout)

    def _fail(self, what: str, result: subprocess.CompletedProcess | None = None) -> HarnessError:
        out = ""
        if result is not None:
            out = (result.stdout + result.stderr).decode("utf-8", "replace")
            if not out.strip() and result.args[0] in (POSTFIX, POSTCONF):
                out = self._diagnose(result.args)
        return HarnessError(f"{what}\n{out}maillog {self.log_path}:\n{_tail(self.log_path)}")

    def _diagnose(self, argv: list[str]) -> str:
        """Run argv again with a terminal as stderr, for its complaint.

        A Postfix program that fails before it has read main.cf (so before
        it knows maillog_file) reports to syslog, which a test machine may
        not have, and to stderr only when that is a terminal.
        """
        env = dict(os.environ, MAIL_CONFIG=self.config_dir, LANG="C")
        controller, terminal = pty.openpty()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=terminal,
                                    stderr=terminal, env=env, start_new_session=True)
        finally:
            os.close(terminal)
        out = bytearray()
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([controller], [], [], 0.5)
                if not ready:
                    continue
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: the program and its children have exited
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(controller)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        return out.decode("utf-8", "replace").replace("\r\n", "\n")

    def start(self) -> None:
        if os.geteuid() != 0:
            raise HarnessError("a private Postfix instance needs root")
        if not os.access(POSTFIX, os.X_OK):
            raise HarnessError(f"{POSTFIX} not found: install the Debian package postfix")
        self.directory = _make_tmpdir("herald-postfix-")
        try:
            for _attempt in range(5):
                self.port = free_port()
                self._write_config()
                if self._start_master():
                    return
                # The port was taken in between: start over on another one.
                self.stop(quiet=True)
                self.directory = _make_tmpdir("herald-postfix-")
            raise HarnessError("Postfix found no free port in 5 attempts")
        except BaseException:
            self.stop(quiet=True)
            raise

    def _start_master(self) -> bool:
        """Start the master daemon; False when its port was taken."""
        r = self._run([POSTFIX, "-c", self.config_dir, "check"])
        if r.returncode != 0:
            raise self._fail(f"postfix -c {self.config_dir} check failed", r)
        master = self._postconf("daemon_directory") + "/master"
        # -w: return once the daemon has initialized, with its status.
        r = self._run([master, "-c", self.config_dir, "-w", "-e", str(self.lifetime)])
        if r.returncode == 0:
            self._master_pid = self._read_master_pid()
            try:
                wait_until(lambda: self._master_alive() and _listening(self._master_pid, self.port),
                           self.start_timeout, f"Postfix listening on port {self.port}")
                return True
            except TimeoutError:
                pass
        if _port_taken(self.port):
            return False
        # The master reports trouble before postlogd runs to syslog only.
        raise self._fail(
            f"Postfix master did not start. It reports early trouble to syslog only: "
            f"run {master} -c {self.config_dir} -d by hand, with {KEEP_ENV}=1 "
            f"to keep that directory", r)

    def _postconf(self, name: str) -> str:
        r = self._run([POSTCONF, "-c", self.config_dir, "-h", name])
        if r.returncode != 0:
            raise self._fail(f"postconf {name} failed", r)
        return r.stdout.decode().strip()

    def _read_master_pid(self) -> int | None:
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _master_alive(self) -> bool:
        if self._master_pid is None:
            return False
        try:
            with open(f"/proc/{self._master_pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    def stop(self, quiet: bool = False) -> None:
        """Stop the instance and remove its directory; safe to call twice.

        "postfix stop", then poll until the master and every process
        working in the instance's directory is gone; stragglers are killed.
        Raises HarnessError when something had to be killed (unless quiet,
        used while another exception is on its way).
        """
        if not self.directory:
            return
        problem = ""
        if self._master_alive() or self._read_master_pid():
            try:
                r = self._run([POSTFIX, "-c", self.config_dir, "stop"], timeout=30)
                if r.returncode != 0 and self._master_alive():
                    out = (r.stdout + r.stderr).decode("utf-8", "replace")
                    problem = f"postfix stop failed: {out}"
            except subprocess.TimeoutExpired:
                problem = "postfix stop did not return in 30 s; "
        try:
            wait_until(lambda: not self._master_alive() and not processes_under(self.directory),
                       15, f"Postfix in {self.directory} to exit")
        except TimeoutError as e:
            left = processes_under(self.directory)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            problem += f"{e}; killed {left}"
        self._master_pid = None
        directory, self.directory = self.directory, ""
        if problem and not quiet:
            raise HarnessError(f"{problem}\nmaillog {directory}/maillog:\n"
                               f"{_tail(os.path.join(directory, 'maillog'))}")
        if _keep() or problem:
            print(f"mailservers: kept Postfix files in {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)

    # use

    def send(self, sender: str, recipients: Iterable[str], message: bytes,
             timeout: float = 30) -> str:
        """Submit message over SMTP; return the Postfix queue id.

        Raises smtplib.SMTPException if any command is refused.
        """
        recipients = [recipients] if isinstance(recipients, str) else list(recipients)
        with smtplib.SMTP(self.host, self.port, local_hostname="client.herald.test",
                          timeout=timeout) as smtp:
            smtp.ehlo()
            code, reply = smtp.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
            code, reply = smtp.data(message)
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        m = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
        return m.group(1).decode() if m else ""

    def queue(self) -> list[dict]:
        """The messages in the queue, as "postqueue -j" describes them."""
        r = self._run([POSTQUEUE, "-c", self.config_dir, "-j"])
        if r.returncode != 0:
            raise self._fail("postqueue -j failed", r)
        return [json.loads(line) for line in r.stdout.decode("utf-8", "replace").splitlines()
                if line.strip()]

    def wait_queue_empty(self, timeout: float = 30) -> None:
        """Poll until the queue is empty (every message delivered or bounced)."""
        try:
            wait_until(lambda: not self.queue(), timeout,
                       f"Postfix queue in {self.queue_dir} to empty")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; still queued: {self.queue()}\n"
                               f"maillog {self.log_path}:\n{_tail(self.log_path)}") from None

    def log(self) -> str:
        """The instance's maillog so far."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 30) -> re.Match:
        """Poll until the maillog has a line matching regex pattern."""
        rx = re.compile(pattern, re.M)
        try:
            return wait_until(lambda: rx.search(self.log()), timeout, f"maillog line /{pattern}/")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\nmaillog {self.log_path}:\n{_tail(self.log_path)}") from None


# -- SpamAssassin ------------------------------------------------------------

# No network, no learning: -L turns off the network tests, these (given as
# --cf, so with the site configuration's authority) make sure nothing (DNS,
# Razor, Pyzor, Bayes, auto-learning) reaches out or writes.
_SA_SETTINGS = [
    "dns_available no",
    "skip_rbl_checks 1",
    "use_bayes 0",
    "bayes_auto_learn 0",
    "use_razor2 0",
    "use_pyzor 0",
]


def spamassassin_score(message: bytes, timeout: float = 120) -> tuple[float, list[str]]:
    """SpamAssassin's score for message and the names of the rules that hit.

    Runs "spamassassin -L -t" with the rules of the Debian package
    (SPAMASSASSIN_RULES, no sa-update), local tests only, Bayes and
    auto-learning off, with a temporary HOME so nothing is learned or
    written anywhere else. DNS-based rules, and DKIM verification (it needs
    the key from the DNS), do not run. Raises HarnessError when the rules
    are missing or the output has no X-Spam-Status header.
    """
    if not os.access(SPAMASSASSIN, os.X_OK):
        raise HarnessError(f"{SPAMASSASSIN} not found: install the Debian package spamassassin")
    if not os.path.isfile(os.path.join(SPAMASSASSIN_RULES, "50_scores.cf")):
        raise HarnessError(f"SpamAssassin rules missing from {SPAMASSASSIN_RULES}: "
                           "the Debian package spamassassin ships them there")
    with tempfile.TemporaryDirectory(prefix="herald-sa-") as home:
        # An empty user_prefs of our own, so that no one's preferences count.
        prefs = os.path.join(home, "user_prefs")
        open(prefs, "w").close()
        argv = [SPAMASSASSIN, "-L", "-t", "-x", "-p", prefs,
                f"--configpath={SPAMASSASSIN_RULES}",
                f"--siteconfigpath={SPAMASSASSIN_SITE}"]
        argv += [f"--cf={s}" for s in _SA_SETTINGS]
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C"}
        r = subprocess.run(argv, input=message, capture_output=True, env=env,
                           timeout=timeout, cwd=home)
    header = _header_block(r.stdout)
    m = re.search(r"^X-Spam-Status:(.*(?:\n[ \t].*)*)", header, re.M | re.I)
    if r.returncode != 0 or not m:
        raise HarnessError(f"spamassassin exited {r.returncode} without an X-Spam-Status header:\n"
                           + r.stderr.decode("utf-8", "replace")[-4000:])
    status = re.sub(r"\s+", " ", m.group(1))
    score = re.search(r"\bscore=(-?[0-9.]+)", status)
    tests = re.search(r"\btests=(.*?)(?: autolearn=| version=|$)", status)
    if not score or not tests:
        raise HarnessError(f"cannot read X-Spam-Status: {status}")
    rules = [t.strip() for t in tests.group(1).split(",")]
    return float(score.group(1)), [t for t in rules if t and t != "none"]


def _header_block(message: bytes) -> str:
    text = message.decode("utf-8", "replace").replace("\r\n", "\n")
    return text.split("\n\n", 1)[0]


# -- TLS: a test CA, and an SMTP server with STARTTLS and AUTH ----------------

OPENSSL = "/usr/bin/openssl"


class TestCA:
    """A certificate authority made with openssl for one test.

    Lives in a temporary directory (removed on exit, kept with
    HERALD_KEEP_SERVERS=1). cert_path is the CA certificate (PEM): what a
    client is given to trust. issue() makes a server certificate signed by
    this CA, for an IP address (default 127.0.0.1) and optionally a DNS
    name, as subjectAltName. Keys are P-256; certificates are valid for two
    days from now.
    """

    __test__ = False  # not a unittest case, whatever the name says

    def __init__(self, name: str = "herald test CA"):
        if "/" in name or "\n" in name:
            raise ValueError(f"{name!r}: not usable as a certificate subject")
        self.name = name
        self.directory = ""
        self.cert_path = ""
        self.key_path = ""
        self._serial = 0

    def __enter__(self) -> "TestCA":
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def _openssl(self, *args: str) -> None:
        if not os.access(OPENSSL, os.X_OK):
            raise HarnessError(f"{OPENSSL} not found: install the Debian package openssl")
        r = subprocess.run([OPENSSL, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           cwd=self.directory, timeout=60)
        if r.returncode != 0:
            raise HarnessError(f"openssl {' '.join(args)} failed:\n"
                               + (r.stdout + r.stderr).decode("utf-8", "replace"))

    def create(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="herald-ca-")
        self.cert_path = os.path.join(self.directory, "ca.pem")
        self.key_path = os.path.join(self.directory, "ca.key")
        try:
            self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.key_path,
                          "-out", self.cert_path, "-days", "2", "-subj", f"/CN={self.name}",
                          "-addext", "basicConstraints=critical,CA:TRUE",
                          "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        except BaseException:
            self.remove()
            raise

    def issue(self, ip: str = LOOPBACK, dns: str | None = None) -> tuple[str, str]:
        """A server certificate and key signed by this CA: (cert_path, key_path)."""
        ipaddress.ip_address(ip)  # ValueError for anything else
        if dns is not None and not re.fullmatch(r"[A-Za-z0-9.-]+", dns):
            raise ValueError(f"{dns!r}: not a DNS name")
        self._serial += 1
        base = os.path.join(self.directory, f"server{self._serial}")
        san = f"IP:{ip}" + (f",DNS:{dns}" if dns else "")
        with open(base + ".ext", "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", base + ".key", "-out", base + ".csr",
                      "-subj", f"/CN={dns or ip}")
        self._openssl("x509", "-req", "-in", base + ".csr", "-CA", self.cert_path,
                      "-CAkey", self.key_path, "-set_serial", str(1000 + self._serial),
                      "-days", "2", "-extfile", base + ".ext", "-out", base + ".pem")
        return base + ".pem", base + ".key"

    def remove(self) -> None:
        if not self.directory:
            return
        if _keep():
            print(f"mailservers: kept test CA files in {self.directory}", file=sys.stderr)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = ""


@dataclasses.dataclass(frozen=True)
class TlsMessage:
    """One message as TlsSmtpServer accepted it."""

    sender: str  # envelope sender without <>
    recipients: list[str]
    data: bytes  # as the client sent it, dot-unstuffed, CRLF line ends
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    auth_user: str | None  # who authenticated, if anyone
    auth_mechanism: str | None  # PLAIN, LOGIN, ...


class TlsSmtpServer:
    """An SMTP server with TLS and AUTH on 127.0.0.1:<free port>: the kind
    of submission relay herald authenticates to. Debian's python3-aiosmtpd,
    running in a thread of the test process.

    tls: "starttls" offers STARTTLS and refuses MAIL before it
    (require_starttls); "implicit" speaks TLS from the first byte (smtps);
    "none" offers no TLS at all. cert and key: the server certificate
    (TestCA.issue). users {user: password}: AUTH is offered, after TLS only,
    and required before MAIL. mechanisms: the ones offered, of PLAIN and
    LOGIN. Every accepted message is kept (messages()) and answered
    "250 2.0.0 Ok: queued as T<n>". auth_failures() counts refused AUTH
    attempts.
    """

    def __init__(self, *, cert: str | None = None, key: str | None = None,
                 tls: str = "starttls", users: dict[str, str] | None = None,
                 mechanisms: Iterable[str] = ("PLAIN", "LOGIN"),
                 hostname: str = "relay.herald.test"):
        if tls not in ("starttls", "implicit", "none"):
            raise ValueError(f"tls={tls!r}: want starttls, implicit or none")
        if tls != "none" and not (cert and key):
            raise ValueError("TLS needs cert and key")
        self.tls = tls
        self.cert, self.key = cert, key
        self.users = dict(users or {})
        self.mechanisms = [m.upper() for m in mechanisms]
        for m in self.mechanisms:
            if m not in ("PLAIN", "LOGIN"):
                raise ValueError(f"AUTH {m}: want PLAIN or LOGIN")
        self.hostname = hostname
        self.host = LOOPBACK
        self.port = 0
        self._controller = None
        self._messages: list[TlsMessage] = []
        self._auth_failures = 0
        self._queue_ids = 0

    def __enter__(self) -> "TlsSmtpServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _ssl_context(self):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword
        ok = False
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            ok = user in self.users and self.users[user] == password
            if ok:
                session.herald_auth = (user, mechanism)
        if not ok:
            self._auth_failures += 1
        # handled=False: aiosmtpd answers 535 itself
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as e:
            raise HarnessError("aiosmtpd not found: install the Debian package "
                               "python3-aiosmtpd and run Debian's /usr/bin/python3") from e
        # aiosmtpd logs "Session.login_data is deprecated" on every AUTH,
        # about its own use of it.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                user, mech = getattr(session, "herald_auth", (None, None))
                tls = server.transport.get_extra_info("ssl_object") is not None
                outer._queue_ids += 1
                outer._messages.append(TlsMessage(
                    sender=envelope.mail_from, recipients=list(envelope.rcpt_tos),
                    data=envelope.original_content, tls=tls, auth_user=user,
                    auth_mechanism=mech))
                return f"250 2.0.0 Ok: queued as T{outer._queue_ids}"

        kwargs = dict(hostname=self.host, server_hostname=self.hostname,
                      auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN")
                                              if m not in self.mechanisms])
        if self.tls == "starttls":
            kwargs.update(tls_context=self._ssl_context(), require_starttls=True)
        elif self.tls == "implicit":
            kwargs.update(ssl_context=self._ssl_context())
        if self.users:
            kwargs.update(authenticator=self._authenticator, auth_required=True,
                          auth_require_tls=self.tls != "none")
        last = None
        for _attempt in range(5):
            self.port = free_port()
            controller = Controller(Handler(), port=self.port, **kwargs)
            try:
                controller.start()
            except OSError as e:  # the port was taken in between
                last = e
                continue
            self._controller = controller
            # The controller's own readiness probe is not a client's message.
            self._messages.clear()
            return
        raise HarnessError(f"aiosmtpd found no free port in 5 attempts: {last}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def messages(self) -> list[TlsMessage]:
        return list(self._messages)

    def auth_failures(self) -> int:
        return self._auth_failures


# -- Dovecot -----------------------------------------------------------------

DOVECOT = "/usr/sbin/dovecot"

_DOVECOT_CONF = """\
# herald test IMAP server: generated by tests/lib/mailservers.py
instance_name = {instance}
base_dir = {dir}/run
state_dir = {dir}/state
listen = {host}
protocols = imap
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "
auth_verbose = yes
auth_mechanisms = plain login
{ssl_conf}default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{maildir}
mail_fsync = never
imap_idle_notify_interval = {idle_notify}
{capability_conf}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
{imaps_listener}}}
service anvil {{
  chroot =
}}
"""

# ssl = "required" (or "yes"): TLS, and no LOGIN before STARTTLS (Dovecot
# takes a client from the server's own address, 127.0.0.1 to 127.0.0.1, as
# secure without it)
_DOVECOT_TLS = """\
disable_plaintext_auth = yes
ssl = {ssl}
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
"""
_DOVECOT_IMAPS = """\
  inet_listener imaps {{
    address = {host}
    port = {ssl_port}
    ssl = yes
  }}
"""
# ssl = "no": no TLS at all (no STARTTLS offered, no imaps port), LOGIN in
# clear text allowed
_DOVECOT_PLAIN = """\
disable_plaintext_auth = no
ssl = no
"""


class Dovecot:
    """A private Dovecot IMAP server on 127.0.0.1: the bounce mailbox
    herald reads over IMAP.

    It lives in a temporary directory (dovecot.conf, run/, state/, the
    mail in mail/ as a Maildir, the log in dovecot.log), listens on two
    free ports of 127.0.0.1 only: `port` (imap, STARTTLS offered and
    required before LOGIN) and `ssl_port` (imaps, TLS from the first
    byte), with cert and key (TestCA.issue). One user, `user` with
    `password`, from a passwd-file; its mail belongs to SINK_USER. The
    machine's own Dovecot (/etc/dovecot, its service) is neither used nor
    needed: the master runs in the foreground with -c and its own
    base_dir.

    maildir: use this Maildir (e.g. Postfix(maildir=True).maildir_path,
    owned by SINK_USER) instead of one of its own. append() puts a
    message into a folder over IMAP (what a delivery would do), messages()
    and count() read a folder, log() is the server's log. kill() stops
    every process of the instance at once (SIGKILL: a server gone mid-
    session) and start() brings it back on the same ports with the same
    mail. Needs root (the mail user switch).

    What it offers, for tests of a client's fallbacks: capability, when
    given, is Dovecot's imap_capability, the whole list the server
    announces after LOGIN (e.g. "IMAP4rev1 UIDPLUS" for a server with
    neither MOVE nor IDLE); ssl="no" makes a server without TLS (no
    STARTTLS, no imaps port: ssl_port is 0, cert and key may be None,
    LOGIN in clear text allowed), on which the test's own client uses
    plain imap.
    """

    def __init__(self, cert: str | None, key: str | None, *, ca: str | None = None,
                 user: str = "herald", password: str = "imap-Pa55-for-herald-tests",
                 maildir: str | None = None, idle_notify: str = "2 mins",
                 start_timeout: float = 30, capability: str | None = None,
                 ssl: str = "required"):
        if ssl not in ("required", "yes", "no"):
            raise ValueError(f"ssl must be required, yes or no, not {ssl!r}")
        if ssl != "no" and not (cert and key):
            raise ValueError("a Dovecot with TLS needs cert and key")
        if capability is not None and not re.fullmatch(r"[A-Za-z0-9 =+.-]+", capability):
            raise ValueError(f"capability {capability!r} is not a capability list")
        self.cert, self.key = cert, key
        self.capability, self.ssl = capability, ssl
        self.ca = ca  # for the test's own client (append, messages)
        self.user, self.password = user, password
        if any(c in password for c in ":\n\r") or not re.fullmatch(r"[a-z0-9_-]+", user):
            raise ValueError("user or password not usable in a passwd-file")
        self._maildir = maildir
        self.idle_notify = idle_notify
        self.start_timeout = start_timeout
        self.host = LOOPBACK
        self.port = 0
        self.ssl_port = 0
        self.directory = ""
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "Dovecot":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "dovecot.log")

    @property
    def maildir(self) -> str:
        return self._maildir or os.path.join(self.directory, "mail", self.user)

    def url(self, tls: str = "imaps", folder: str = "INBOX") -> str:
        """herald's bounces.mailbox for this server: tls "imaps" or "imap"."""
        port = self.ssl_port if tls == "imaps" else self.port
        return f"{tls}://{self.user}@{self.host}:{port}/{folder}"

    def _write_config(self) -> None:
        pw = pwd.getpwnam(SINK_USER)
        for sub in ("run", "state", "home", os.path.join("home", self.user)):
            path = os.path.join(self.directory, sub)
            os.makedirs(path, 0o755, exist_ok=True)
        os.chown(os.path.join(self.directory, "home", self.user), pw.pw_uid, pw.pw_gid)
        if not self._maildir:
            base = os.path.join(self.directory, "mail")
            os.makedirs(self.maildir, 0o700, exist_ok=True)
            for path in (base, self.maildir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            for sub in ("new", "cur", "tmp"):
                p = os.path.join(self.maildir, sub)
                os.makedirs(p, 0o700, exist_ok=True)
                os.chown(p, pw.pw_uid, pw.pw_gid)
        with open(os.path.join(self.directory, "passwd"), "w") as f:
            f.write(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        # read by the auth process, which runs as the internal user
        internal = pwd.getpwnam(self._internal_user())
        os.chown(os.path.join(self.directory, "passwd"), internal.pw_uid, internal.pw_gid)
        os.chmod(os.path.join(self.directory, "passwd"), 0o600)
        plain = self.ssl == "no"
        conf = _DOVECOT_CONF.format(
            instance=os.path.basename(self.directory), dir=self.directory, host=self.host,
            ssl_conf=_DOVECOT_PLAIN if plain else _DOVECOT_TLS.format(
                ssl=self.ssl, cert=self.cert, key=self.key),
            imaps_listener="" if plain else _DOVECOT_IMAPS.format(
                host=self.host, ssl_port=self.ssl_port),
            capability_conf="" if self.capability is None else
            f"imap_capability = {self.capability}\n",
            maildir=self.maildir, uid=pw.pw_uid, gid=pw.pw_gid,
            port=self.port, idle_notify=self.idle_notify,
            internal=self._internal_user(),
            login="dovenull" if _user_exists("dovenull") else SINK_USER)
        with open(os.path.join(self.directory, "dovecot.conf"), "w") as f:
            f.write(conf)

    @staticmethod
    def _internal_user() -> str:
        return "dovecot" if _user_exists("dovecot") else SINK_USER

    def start(self) -> None:
        """Start the instance; after kill(), on the same ports and with
        the same mail."""
        if os.geteuid() != 0:
            raise HarnessError("a private Dovecot instance needs root")
        if not os.access(DOVECOT, os.X_OK):
            raise HarnessError(f"{DOVECOT} not found: install the Debian package dovecot-imapd")
        fixed = bool(self.directory)
        if not self.directory:
            self.directory = _make_tmpdir("herald-dovecot-")
        try:
            for _attempt in range(5):
                if not fixed:
                    self.port = free_port()
                    self.ssl_port = 0 if self.ssl == "no" else free_port()
                    if self.port == self.ssl_port:
                        continue
                self._write_config()
                with open(os.path.join(self.directory, "master.out"), "ab") as out:
                    self._proc = subprocess.Popen(
                        [DOVECOT, "-F", "-c", os.path.join(self.directory, "dovecot.conf")],
                        stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                        start_new_session=True)
                proc = self._proc

                def ready():
                    if proc.poll() is not None:
                        return "exited"
                    # the master opens the listeners for imap-login
                    return "ready" if (_listening(proc.pid, self.port) and
                                       (not self.ssl_port or
                                        _listening(proc.pid, self.ssl_port))) else None

                try:
                    state = wait_until(ready, self.start_timeout,
                                       f"Dovecot on ports {self.port}, {self.ssl_port}")
                except TimeoutError:
                    state = "timeout"
                if state == "ready":
                    return
                self._kill_all()
                out = _tail(os.path.join(self.directory, "master.out")) + _tail(self.log_path)
                if fixed and "in use" in out:
                    time.sleep(0.5)  # the killed server's ports free
                    continue
                if "in use" not in out or fixed:
                    raise HarnessError(f"Dovecot did not start ({state}):\n{out}")
            raise HarnessError("Dovecot found no free ports in 5 attempts")
        except BaseException:
            self.stop()
            raise

    def _kill_all(self) -> None:
        proc, self._proc = self._proc, None
        pids = set(processes_under(self.directory)) if self.directory else set()
        if proc is not None and proc.poll() is None:
            pids.add(proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc is not None:
            proc.wait()
        if self.directory:
            wait_until(lambda: not processes_under(self.directory), 15,
                       f"Dovecot processes in {self.directory} to exit")

    def kill(self) -> None:
        """Every process of the instance killed at once (a server gone in
        the middle of a session); the files stay for start()."""
        self._kill_all()

    def stop(self) -> None:
        """Stop the instance and remove its directory; safe to call twice."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        if self.directory:
            self._kill_all()
            if _keep():
                print(f"mailservers: kept Dovecot files in {self.directory}", file=sys.stderr)
            else:
                shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""
        self._proc = None

    def check_running(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise HarnessError(f"Dovecot is not running\n{self.log_path}:\n{_tail(self.log_path)}")

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # a client of its own (imaplib over TLS, the test CA trusted)

    def client(self):
        """A logged-in imaplib client over imaps, or plain imap on a
        server without TLS (the caller logs out)."""
        import imaplib
        import ssl
        if self.ssl == "no":
            c = imaplib.IMAP4(self.host, self.port, timeout=30)
            c.login(self.user, self.password)
            return c
        ctx = ssl.create_default_context(cafile=self.ca) if self.ca else \
            ssl._create_unverified_context()
        c = imaplib.IMAP4_SSL(self.host, self.ssl_port, ssl_context=ctx, timeout=30)
        c.login(self.user, self.password)
        return c

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Put messages into folder, in order, over one connection."""
        c = self.client()
        try:
            for message in messages:
                typ, data = c.append(folder, None, None, message)
                if typ != "OK":
                    raise HarnessError(f"APPEND to {folder}: {typ} {data}")
        finally:
            c.logout()

    def messages(self, folder: str = "INBOX") -> list[tuple[int, bytes, list[str]]]:
        """(UID, message, flags) of every message in folder, by UID; []
        when the folder does not exist."""
        c = self.client()
        try:
            typ, _ = c.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            out = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head = item[0].decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                flags = re.search(r"FLAGS \(([^)]*)\)", head)
                out.append((uid, item[1], flags.group(1).split() if flags else []))
            return sorted(out)
        finally:
            c.logout()

    def count(self, folder: str = "INBOX") -> int:
        return len(self.messages(folder))


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
