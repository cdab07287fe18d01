"""What the test suite printed, kept so that one last test can look for
secrets in it (tests/test_secrets.py, case transcripts).

Tests call record() with everything a herald command or heraldd printed
and secret() with every password, key or token they hand to herald. Both
append under $HERALD_TRANSCRIPTS (set by tests/CMakeLists.txt for every
test); without it they do nothing, so a test run by hand is unaffected.
"""
import os

DIR = os.environ.get("HERALD_TRANSCRIPTS")


def _append(name, data):
    if not DIR:
        return
    os.makedirs(DIR, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(DIR, name), "ab") as f:
        f.write(data)
        if not data.endswith(b"\n"):
            f.write(b"\n")


def record(what, data):
    """Keep output of a command (what names it) for the secrets test."""
    if data:
        _append(f"out-{os.getpid()}.log", f"--- {what}\n".encode() + (
            data if isinstance(data, bytes) else data.encode(
                "utf-8", "surrogateescape")))


def secret(value):
    """Register a secret the suite's output must never show."""
    if isinstance(value, str):
        value = value.encode()
    value = value.strip()
    if len(value) >= 8:
        _append(f"secrets-{os.getpid()}.hex", value.hex())
