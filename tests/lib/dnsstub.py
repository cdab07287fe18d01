"""A DNS server on loopback that knows no names: every query gets NXDOMAIN.

For tests in which a mail server must find that a recipient's domain does
not exist, and so write the bounce that a real name error makes ("Host or
domain name not found", "Unrouteable address"), without any lookup leaving
the machine. The mail server is pointed at it by a resolv.conf naming
127.0.0.1 (tests/lib/mtadsn.py does that inside a private network and
mount namespace, where the machine's own resolver is out of reach).

Only what a stub resolver sends is understood: one question per query, over
UDP. The answer is authoritative, echoes the question and has rcode 3
(NXDOMAIN) with an SOA record of the zone in the authority section, as a
real server's negative answer has (RFC 2308), so resolvers treat it as a
name that does not exist, not as a failure to try again. Every question is
recorded (queries()), so a test can check that the lookup it meant to
cause reached this server. Standard library only.
"""
from __future__ import annotations

import socket
import struct
import threading

NXDOMAIN = 3
NOTIMP = 4
FORMERR = 1


def _read_name(packet: bytes, pos: int) -> tuple[str, int]:
    """The (uncompressed) name at pos, and the position after it."""
    labels = []
    while True:
        if pos >= len(packet):
            raise ValueError("name runs past the packet")
        n = packet[pos]
        pos += 1
        if n == 0:
            return ".".join(labels), pos
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(packet[pos:pos + n].decode("ascii", "replace"))
        pos += n


def _name(name: str) -> bytes:
    out = b""
    for label in filter(None, name.split(".")):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def answer(query: bytes, zone: str = "invalid") -> tuple[bytes, tuple | None]:
    """The NXDOMAIN reply to query and its (name, qtype), or a FORMERR /
    NOTIMP reply and None for a query this stub does not understand."""
    if len(query) < 12:
        return b"", None
    qid, flags, qd, _an, _ns, _ar = struct.unpack("!6H", query[:12])
    opcode = (flags >> 11) & 0xF
    rd = flags & 0x0100
    if opcode != 0 or qd != 1:
        rflags = 0x8000 | (opcode << 11) | rd | (NOTIMP if opcode else FORMERR)
        return struct.pack("!6H", qid, rflags, 0, 0, 0, 0), None
    try:
        name, pos = _read_name(query, 12)
    except ValueError:
        return struct.pack("!6H", qid, 0x8000 | rd | FORMERR, 0, 0, 0, 0), None
    if pos + 4 > len(query):
        return struct.pack("!6H", qid, 0x8000 | rd | FORMERR, 0, 0, 0, 0), None
    qtype, qclass = struct.unpack("!2H", query[pos:pos + 4])
    question = query[12:pos + 4]
    # QR, AA, the client's RD, RA; rcode NXDOMAIN
    rflags = 0x8000 | 0x0400 | rd | 0x0080 | NXDOMAIN
    soa_rdata = (_name("ns." + zone) + _name("hostmaster." + zone)
                 + struct.pack("!5I", 1, 3600, 600, 86400, 60))
    soa = (_name(zone) + struct.pack("!HHIH", 6, 1, 60, len(soa_rdata))
           + soa_rdata)
    return (struct.pack("!6H", qid, rflags, 1, 0, 1, 0) + question + soa,
            (name.lower(), qtype))


class NxDomainDns:
    """NXDOMAIN for every name, over UDP on host:53 (needs root, or a
    private network namespace where the caller is root), in a thread of
    the test process. A context manager; queries() lists the (name,
    qtype) pairs asked so far, qtype as a number (1 A, 15 MX, 28 AAAA)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 53,
                 zone: str = "invalid"):
        self.host, self.port, self.zone = host, port, zone
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._queries: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "NxDomainDns":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.host, self.port))
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock = self._sock
        while self._sock is sock:
            try:
                query, peer = sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply, q = answer(query, self.zone)
            if q is not None:
                with self._lock:
                    self._queries.append(q)
            if reply:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def queries(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._queries)
