"""A programmable SMTP server for herald's fault tests, on 127.0.0.1.

A small hand-written asyncio server (not aiosmtpd): it must be able to stop
answering in the middle of a command, close the connection after the final
dot but before its reply, and say exactly when the client went away.

What it does at each command is decided by `FaultPlan.decide(key, attempt,
command)`, a pure function of the plan's seed, a key (the recipient's
address for RCPT, DATA and the end of data; the envelope sender for MAIL,
which with herald's signed return paths names one delivery; the connection
number for EHLO/HELO, RSET and QUIT, which belong to no recipient), the
attempt number (how many times the server has seen that key at that
command, from 1) and the command. A test computes the same function to know
what every recipient must end as. Actions:

  ok     the normal answer
  4xx    a temporary refusal (code, enhanced status and text in the reply)
  5xx    a permanent refusal
  hang   read nothing more and answer nothing; the server records when the
         hang began and when the client closed the connection
  close  close the connection instead of answering; after the final dot
         the message is kept first (accepted, but the client never sees
         the 250: the one case where a retry duplicates a message)
  slow   the normal answer, after a delay below the client's timeout

Everything done is recorded: `ledger` (one entry per decision that was not
`ok`, and per accepted message), `accepted` (the messages kept, with their
Message-ID) and `hangs` (start, client's disconnect).
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field

COMMANDS = ("EHLO", "MAIL", "RCPT", "DATA", "DOT", "RSET", "QUIT")
ACTIONS = ("4xx", "5xx", "hang", "close", "slow")
# Commands a recipient's own plan can name; the others are decided per
# connection (EHLO, RSET, QUIT) or per envelope sender (MAIL).
RCPT_COMMANDS = ("RCPT", "DATA", "DOT")

# Replies of the refusals, per command: (code, enhanced status, text).
REPLIES = {
    ("4xx", "EHLO"): (451, "4.3.2", "faultsmtp: EHLO deferred, system busy"),
    ("5xx", "EHLO"): (554, "5.3.2", "faultsmtp: EHLO refused"),
    ("4xx", "MAIL"): (451, "4.3.0", "faultsmtp: sender deferred"),
    ("5xx", "MAIL"): (553, "5.7.1", "faultsmtp: sender refused"),
    ("4xx", "RCPT"): (450, "4.2.1", "<{rcpt}>: mailbox temporarily "
                      "unavailable (faultsmtp attempt {n})"),
    ("5xx", "RCPT"): (550, "5.1.1", "<{rcpt}>: Recipient address rejected: "
                      "User unknown in faultsmtp"),
    ("4xx", "DATA"): (451, "4.3.1", "<{rcpt}>: DATA deferred, "
                      "faultsmtp attempt {n}"),
    ("5xx", "DATA"): (554, "5.7.1", "<{rcpt}>: DATA refused by faultsmtp "
                      "policy"),
    ("4xx", "DOT"): (452, "4.3.1", "<{rcpt}>: insufficient storage, "
                     "faultsmtp attempt {n}"),
    ("5xx", "DOT"): (554, "5.6.0", "<{rcpt}>: message content rejected by "
                     "faultsmtp"),
    ("4xx", "RSET"): (451, "4.3.0", "faultsmtp: RSET deferred"),
    ("5xx", "RSET"): (554, "5.5.1", "faultsmtp: RSET refused"),
    ("4xx", "QUIT"): (451, "4.3.0", "faultsmtp: QUIT deferred"),
    ("5xx", "QUIT"): (554, "5.5.1", "faultsmtp: QUIT refused"),
}


def reply_for(action: str, command: str, rcpt: str = "", n: int = 0):
    """(code, "code status text") of a refusal, as the server sends it."""
    code, status, text = REPLIES[(action, command)]
    return code, status, text.format(rcpt=rcpt, n=n)


def _unit(seed: int, *parts) -> float:
    """A number in [0, 1) fixed by the seed and the parts."""
    h = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


@dataclass
class Plan:
    """What one key gets: an action at one command, on some attempts."""
    action: str = "ok"
    command: str = ""
    attempts: tuple = ()  # attempt numbers the action applies to
    forever: bool = False  # every attempt (a 4xx that never clears)


@dataclass
class FaultPlan:
    """The rule behind every decision. rate: the share of recipients that
    get each fault kind (so 5 kinds x 10% = half the recipients);
    conn_rate: the same per connection (EHLO, RSET, QUIT) and per envelope
    sender (MAIL); forever_share: the share of 4xx recipients whose 4xx
    never clears; slow: the delay range of a slow answer, in seconds."""
    seed: int = 1
    rate: float = 0.10
    conn_rate: float = 0.02
    forever_share: float = 0.25
    slow: tuple = (0.5, 1.2)

    def recipient_plan(self, rcpt: str) -> Plan:
        """The one fault (or none) a recipient gets at RCPT, DATA or the
        end of data."""
        u = _unit(self.seed, "kind", rcpt.lower())
        i = int(u / self.rate) if self.rate > 0 else len(ACTIONS)
        if i >= len(ACTIONS):
            return Plan()
        action = ACTIONS[i]
        cmd = RCPT_COMMANDS[int(_unit(self.seed, "cmd", rcpt.lower()) *
                                len(RCPT_COMMANDS))]
        if action == "4xx":
            forever = _unit(self.seed, "forever", rcpt.lower()) < \
                self.forever_share
            # transient ones clear after one or two attempts
            k = 1 + int(_unit(self.seed, "k", rcpt.lower()) * 2)
            return Plan(action, cmd, tuple(range(1, k + 1)), forever)
        # a permanent refusal is given every time (as "user unknown"
        # is); a hang, a closed connection or a slow answer once
        return Plan(action, cmd, (1,), action == "5xx")

    def key_plan(self, key: str, command: str) -> Plan:
        """A connection's (EHLO, RSET, QUIT) or a sender's (MAIL) fault:
        first attempt only, so it always clears."""
        u = _unit(self.seed, "key", command, key)
        i = int(u / self.conn_rate) if self.conn_rate > 0 else len(ACTIONS)
        if i >= len(ACTIONS):
            return Plan()
        return Plan(ACTIONS[i], command, (1,))

    def decide(self, key: str, attempt: int, command: str) -> str:
        """The action at `command` for `key` on its `attempt`-th time."""
        if command in RCPT_COMMANDS:
            p = self.recipient_plan(key)
        else:
            p = self.key_plan(key, command)
        if p.command != command:
            return "ok"
        if p.forever or attempt in p.attempts:
            return p.action
        return "ok"

    def slow_delay(self, key: str, attempt: int, command: str) -> float:
        lo, hi = self.slow
        return lo + (hi - lo) * _unit(self.seed, "slow", key, attempt,
                                      command)


@dataclass
class Accepted:
    rcpt: str
    sender: str
    message_id: str | None
    at: float
    size: int
    closed_before_reply: bool  # kept, but the 250 was never sent


@dataclass
class Hang:
    command: str
    key: str
    attempt: int
    start: float
    end: float | None = None  # when the client closed; None: never


@dataclass
class Event:
    at: float
    conn: int
    command: str
    key: str
    attempt: int
    action: str
    reply: str = ""


MSGID_RE = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.M | re.I)


class _Hangup(Exception):
    pass


class FaultSmtp:
    """The server: `with FaultSmtp(FaultPlan(seed=7)) as s: s.port`."""

    # a hang the client never ends is given up after this long, and shows
    # as a hang without an end
    HANG_GIVE_UP = 120.0

    def __init__(self, plan: FaultPlan, host: str = "127.0.0.1"):
        self.plan = plan
        self.host = host
        self.port = 0
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.accepted: list[Accepted] = []
        self.hangs: list[Hang] = []
        self.counts: dict[tuple, int] = {}  # (command, key) -> attempts
        self.sender_rcpt: dict[str, str] = {}
        self.connections = 0
        self.commands = 0
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()
        self._tasks: set = set()

    # ---- running ----------------------------------------------------------

    def __enter__(self) -> "FaultSmtp":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("faultsmtp did not start")

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)

        async def main():
            self._server = await asyncio.start_server(
                self._client, self.host, 0, limit=1 << 20)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            async with self._server:
                await self._server.serve_forever()

        try:
            self._loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    def stop(self) -> None:
        if self._loop is None or self._loop.is_closed():
            return

        def cancel():
            for t in list(self._tasks):
                t.cancel()
            if self._server is not None:
                self._server.close()
            for t in asyncio.all_tasks(self._loop):
                t.cancel()
        self._loop.call_soon_threadsafe(cancel)
        self._thread.join(10)

    # ---- the dialogue -----------------------------------------------------

    def _attempt(self, command: str, key: str) -> int:
        with self.lock:
            n = self.counts.get((command, key), 0) + 1
            self.counts[(command, key)] = n
            return n

    def _record(self, conn, command, key, attempt, action, reply=""):
        with self.lock:
            self.events.append(Event(time.monotonic(), conn, command, key,
                                     attempt, action, reply))

    async def _client(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        with self.lock:
            self.connections += 1
            conn = self.connections
        try:
            await self._session(conn, reader, writer)
        except (_Hangup, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            try:
                writer.transport.abort()
            except Exception:
                pass

    async def _hang(self, reader, command, key, attempt):
        """Answer nothing; wait for the client to close."""
        h = Hang(command, key, attempt, time.monotonic())
        with self.lock:
            self.hangs.append(h)
        try:
            deadline = h.start + self.HANG_GIVE_UP
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                data = await asyncio.wait_for(reader.read(65536), left)
                if not data:
                    h.end = time.monotonic()
                    break
        except (ConnectionError, asyncio.TimeoutError):
            if h.end is None and time.monotonic() < h.start + \
                    self.HANG_GIVE_UP:
                h.end = time.monotonic()
        raise _Hangup()

    async def _answer(self, reader, writer, conn, command, key, attempt,
                      ok_reply: str, rcpt: str = "") -> bool:
        """Apply the decision for (key, attempt, command); True when the
        normal answer was sent (the dialogue goes on)."""
        action = self.plan.decide(key, attempt, command)
        if action == "ok":
            writer.write(ok_reply.encode() + b"\r\n")
            await writer.drain()
            return True
        if action == "slow":
            d = self.plan.slow_delay(key, attempt, command)
            self._record(conn, command, key, attempt, action, f"{d:.3f}")
            await asyncio.sleep(d)
            writer.write(ok_reply.encode() + b"\r\n")
            await writer.drain()
            return True
        if action in ("4xx", "5xx"):
            code, status, text = reply_for(action, command, rcpt, attempt)
            line = f"{code} {status} {text}"
            self._record(conn, command, key, attempt, action, line)
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            return False
        self._record(conn, command, key, attempt, action)
        if action == "close":
            writer.close()
            raise _Hangup()
        await self._hang(reader, command, key, attempt)
        return False

    async def _session(self, conn, reader, writer) -> None:
        writer.write(b"220 faultsmtp.test ESMTP faultsmtp\r\n")
        await writer.drain()
        ckey = f"conn{conn}"
        sender = None
        rcpt = None
        rcpt_n = 0
        while True:
            line = await reader.readline()
            if not line:
                return
            with self.lock:
                self.commands += 1
            cmd = line.decode("ascii", "replace").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                ok = ("250-faultsmtp.test\r\n250-ENHANCEDSTATUSCODES\r\n"
                      "250 SIZE 104857600") if verb == "EHLO" \
                    else "250 faultsmtp.test"
                n = self._attempt("EHLO", ckey)
                await self._answer(reader, writer, conn, "EHLO", ckey, n, ok)
            elif verb == "MAIL":
                m = re.match(r"MAIL FROM:<([^>]*)>", cmd, re.I)
                s = m.group(1) if m else ""
                n = self._attempt("MAIL", s)
                if await self._answer(reader, writer, conn, "MAIL", s, n,
                                      "250 2.1.0 Ok"):
                    sender, rcpt = s, None
            elif verb == "RCPT":
                m = re.match(r"RCPT TO:<([^>]*)>", cmd, re.I)
                r = m.group(1).lower() if m else ""
                if sender is None:
                    writer.write(b"503 5.5.1 Error: need MAIL command\r\n")
                    await writer.drain()
                    continue
                n = self._attempt("RCPT", r)
                with self.lock:
                    self.sender_rcpt[sender] = r
                if await self._answer(reader, writer, conn, "RCPT", r, n,
                                      "250 2.1.5 Ok", r):
                    rcpt, rcpt_n = r, n
            elif verb == "DATA":
                if rcpt is None:
                    writer.write(b"503 5.5.1 Error: need RCPT command\r\n")
                    await writer.drain()
                    continue
                if not await self._answer(reader, writer, conn, "DATA",
                                          rcpt, rcpt_n,
                                          "354 End data with <CR><LF>.<CR><LF>",
                                          rcpt):
                    sender = rcpt = None
                    continue
                body = await self._read_body(reader)
                await self._end_of_data(reader, writer, conn, sender, rcpt,
                                        rcpt_n, body)
                sender = rcpt = None
            elif verb == "RSET":
                n = self._attempt("RSET", ckey)
                sender = rcpt = None
                await self._answer(reader, writer, conn, "RSET", ckey, n,
                                   "250 2.0.0 Ok")
            elif verb == "QUIT":
                n = self._attempt("QUIT", ckey)
                await self._answer(reader, writer, conn, "QUIT", ckey, n,
                                   "221 2.0.0 Bye")
                writer.close()
                return
            elif verb == "NOOP":
                writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
                await writer.drain()

    async def _read_body(self, reader) -> bytes:
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                raise _Hangup()
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)
        return b"".join(lines)

    async def _end_of_data(self, reader, writer, conn, sender, rcpt, n,
                           body) -> None:
        action = self.plan.decide(rcpt, n, "DOT")
        hit = MSGID_RE.search(body)
        msgid = hit.group(1).decode() if hit else None

        def keep(closed):
            with self.lock:
                self.accepted.append(Accepted(rcpt, sender, msgid,
                                              time.monotonic(), len(body),
                                              closed))
        if action == "close":
            keep(True)  # taken, but the client never hears of it
        queue_id = hashlib.sha1(f"{conn}/{rcpt}/{n}".encode()).hexdigest()
        ok = f"250 2.0.0 Ok: queued as {queue_id[:12].upper()}"
        if await self._answer(reader, writer, conn, "DOT", rcpt, n, ok,
                              rcpt):
            keep(False)

    # ---- what happened ----------------------------------------------------

    def closed_hangs(self, timeout: float = 10.0) -> list[Hang]:
        """Every hang so far, once the server has seen each one's client
        close (or after timeout: a hang still without an end was never
        closed). A client that has exited closed its connections, but the
        server's loop may read that close a moment later, longer on a busy
        machine."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                hangs = list(self.hangs)
            if all(h.end is not None for h in hangs) or \
                    time.monotonic() >= deadline:
                return hangs
            time.sleep(0.05)

    def ledger(self) -> dict[str, list[Event]]:
        """Per recipient, every fault done to it (MAIL faults through the
        envelope sender that named it) and every copy accepted (as events
        with command "ACCEPTED"); connection faults under "conn<N>"."""
        out: dict[str, list[Event]] = {}
        with self.lock:
            for e in self.events:
                key = self.sender_rcpt.get(e.key, e.key) \
                    if e.command == "MAIL" else e.key
                out.setdefault(key, []).append(e)
            for a in self.accepted:
                out.setdefault(a.rcpt, []).append(
                    Event(a.at, 0, "ACCEPTED", a.rcpt, 0,
                          "close" if a.closed_before_reply else "ok",
                          a.message_id or ""))
        return out

    def injected(self) -> dict[tuple, int]:
        """(action, command) -> how many times it was done."""
        out: dict[tuple, int] = {}
        with self.lock:
            for e in self.events:
                out[(e.action, e.command)] = out.get((e.action,
                                                      e.command), 0) + 1
        return out
