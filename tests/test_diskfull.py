#!/usr/bin/env python3
"""The store's disk fills up: herald says so, and loses and invents nothing.

`test_diskfull.py --herald H --heraldd D --source S diskfull` (ctest:
reliability/diskfull). The store lives on a tmpfs the test mounts with a
small size under a temporary directory (root only, as CI runs; unmounted
in a finally). SQLite's -wal and -shm files are next to the store, on the
same small file system.

queue: `herald queue` of the sample release into a tmpfs too small for it
(64 KiB: not even the schema fits; 128 KiB: the schema fits, the release
does not) fails with exit 73/75 and a message that says the disk is full
and that nothing was queued; the store then holds no release (`herald
status`, PRAGMA integrity_check ok); once the file system is made larger
the same queue succeeds.

daemon: 5,000 recipients are queued onto a 32 MiB tmpfs; heraldd delivers
them to smtp-sink; after the first few hundred the test fills the file
system with a filler file. heraldd must keep running, must not spin (CPU
time is measured while the disk is full), must log the disk-full
condition, and must stop sending what it cannot record. The filler is
deleted; heraldd finishes. Every recipient is at the sink, nothing is
recorded sent that the sink did not receive, the store says sent exactly
where the sink has the message, and the duplicates are within the
in-flight bound (what is on the connections plus one grouped commit; see
test_crashkill.py). heraldd's log says only what the store holds: while the
disk is full no result= line appears for an attempt that is not recorded,
and at the end the log's result lines are the attempt rows, one for one.
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # tests/ stays clean
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers as ms  # noqa: E402
from test_crashkill import (Failure, Scratch, SinkReader,  # noqa: E402
                            check, deliver_batch_records, write_list)
import test_crashkill  # noqa: E402

A = None


class SmallFs(Scratch):
    """A tmpfs of the given size mounted under a fresh temporary directory;
    holds the store. Unmounted (and its processes' files closed) by
    close(). config(), herald(), sql() and integrity() are Scratch's."""

    def __init__(self, size):  # its own directories, not Scratch's
        check(os.geteuid() == 0, "mounting a tmpfs needs root")
        self.top = tempfile.mkdtemp(prefix="herald-full-")
        os.chmod(self.top, 0o755)
        self.mnt = os.path.join(self.top, "fs")
        os.mkdir(self.mnt)
        self.mounted = False
        self.mount(size)
        self.store = os.path.join(self.mnt, "herald.db")
        self.cfg = os.path.join(self.top, "herald.yaml")
        self.list = os.path.join(self.top, "journalists.yaml")
        self.env = dict(os.environ, TMPDIR=self.top, COLUMNS="250")

    def mount(self, size):
        if self.mounted:
            argv = ["mount", "-o", f"remount,size={size}", self.mnt]
        else:
            argv = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                    "herald-test", self.mnt]
        r = subprocess.run(argv, capture_output=True)
        check(r.returncode == 0, f"{' '.join(argv)}: {r.stderr.decode()}")
        self.mounted = True

    def free(self):
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize

    def close(self):
        if self.mounted:
            r = subprocess.run(["umount", self.mnt], capture_output=True)
            if r.returncode != 0:
                print(f"umount {self.mnt}: {r.stderr.decode()}")
            else:
                self.mounted = False
        if os.environ.get(ms.KEEP_ENV) or self.mounted:
            print("kept", self.top)
        else:
            shutil.rmtree(self.top, ignore_errors=True)


def fill(path):
    """Write a filler file until the file system has no byte left."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            while True:
                try:
                    f.write(block)
                except OSError:
                    break


# An attempt's line in heraldd's log (heraldd(8)): its delivery and result.
RESULT_RE = re.compile(r" delivery=(\d+) .* result=(\S+) ")


def logged_results(text):
    """(delivery, result) of every attempt line in heraldd's log, counted;
    result as the log writes it (relay-deferred: not charged)."""
    out = collections.Counter()
    for line in text.splitlines():
        m = RESULT_RE.search(line)
        if m:
            out[(int(m.group(1)), m.group(2))] += 1
    return out


def stored_results(fs):
    """The same for every attempt row in the store."""
    out = collections.Counter()
    for d, result, counts in fs.sql("SELECT delivery_id, result, counts "
                                    "FROM attempts"):
        out[(d, result if counts else "relay-deferred")] += 1
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def part_queue():
    for size in ("64k", "128k"):
        fs = SmallFs(size)
        try:
            fs.config("relay:\n  url: smtp://127.0.0.1:9\n")
            r = fs.herald("queue", "templates/report-launch", "--to",
                          "lists/journalists.yaml", check_rc=False)
            err = r.stderr.decode()
            print(f"queue onto a {size} tmpfs: exit {r.returncode}\n  "
                  + err.strip().replace("\n", "\n  "))
            check(r.returncode in (73, 75), f"exit {r.returncode}")
            check(re.search(r"disk is full", err),
                  f"the message does not say the disk is full: {err}")
            check(re.search(r"nothing was queued", err),
                  f"the message does not say nothing was queued: {err}")
            check(b"queued release" not in r.stdout, r.stdout.decode())
            tables = fs.sql("SELECT name FROM sqlite_master "
                            "WHERE name = 'releases'")
            if tables:
                fs.integrity()
                check(fs.sql("SELECT count(*) FROM releases") == [(0,)] and
                      fs.sql("SELECT count(*) FROM deliveries") == [(0,)],
                      "a part of the release is in the store")
                st = fs.herald("status").stdout.decode()
                check("report-launch" not in st, f"herald status: {st}")
            else:
                fs.integrity()
            # room again: the same release queues, whole
            fs.mount("4m")
            r = fs.herald("queue", "templates/report-launch", "--to",
                          "lists/journalists.yaml")
            check(b"queued release 1 " in r.stdout, r.stdout.decode())
            fs.integrity()
            check(fs.sql("SELECT count(*) FROM deliveries") == [(47,)],
                  "not 47 deliveries after the disk had room")
        finally:
            fs.close()


def part_daemon():
    n, max_conn, batch, lease = 5000, 4, 32, 3
    records = deliver_batch_records()
    bound = max_conn + records
    fs = SmallFs("32m")
    p = None
    try:
        with ms.SmtpSink() as sink:
            addrs = write_list(fs.list, n)
            fs.config(f"daemon: {{lease: {lease}s, grace: 5s, "
                      f"batch: {batch}}}\n"
                      "retry: {min_backoff: 1s, max_backoff: 2s, "
                      "relay_min_backoff: 1s, relay_max_backoff: 2s}\n"
                      f"relay:\n  url: smtp://127.0.0.1:{sink.port}\n"
                      f"  max_connections: {max_conn}\n"
                      "  connect_timeout: 30s\n  reply_timeout: 30s\n"
                      "  dot_timeout: 30s\n")
            r = fs.herald("queue", "templates/report-launch", "--to",
                          fs.list)
            check(f"{n} recipients".encode() in r.stdout, r.stdout.decode())
            logpath = os.path.join(fs.top, "heraldd.log")
            log = open(logpath, "ab")

            def logtext():
                with open(logpath, "rb") as f:
                    return f.read().decode("utf-8", "replace")

            p = subprocess.Popen([A.heraldd, "--config", fs.cfg],
                                 cwd=A.source, stdout=log, stderr=log,
                                 env=fs.env)
            t0 = time.monotonic()
            ms.wait_until(lambda: sink.count() >= 300 or p.poll() is not None,
                          60, "300 messages at the sink")
            filler = os.path.join(fs.mnt, "filler")
            fill(filler)
            at_fill = sink.count()
            print(f"filled the store's file system at {at_fill} messages "
                  f"({fs.free()} bytes free)")
            ms.wait_until(lambda: "disk is full" in logtext() or
                          p.poll() is not None, 60,
                          "heraldd to log that the disk is full")
            check(p.poll() is None, f"heraldd exited {p.returncode}: "
                  f"{logtext()[-2000:]}")
            # while the disk stays full: alive, idle, not sending
            c0, m0, w0 = cpu_seconds(p.pid), sink.count(), time.monotonic()
            ms.wait_until(lambda: time.monotonic() - w0 >= 4 or
                          p.poll() is not None, 10, "four seconds")
            check(p.poll() is None, f"heraldd exited {p.returncode} with "
                  f"the disk full: {logtext()[-2000:]}")
            cpu = (cpu_seconds(p.pid) - c0) / (time.monotonic() - w0)
            m1 = sink.count()
            lines = logtext().count("\n")
            print(f"disk full for 4 s: heraldd used {cpu:.0%} of a CPU, "
                  f"{m1 - m0} messages reached the sink meanwhile, "
                  f"{m1} in all; log {lines} lines")
            check(cpu < 0.25, f"heraldd spins while the disk is full: "
                  f"{cpu:.0%} of a CPU")
            check(m1 - m0 <= bound, f"heraldd went on sending ({m1 - m0} "
                  "messages in 4 s) what it could not record")
            held = {m.strip("<>") for (m,) in fs.sql(
                "SELECT message_id FROM deliveries WHERE state = 'sent'")}
            # the log first, then the store: a line written after its
            # commit is in the store read after it
            logged = logged_results(logtext())
            stored = stored_results(fs)
            unrecorded = logged - stored
            print(f"disk full: {sum(logged.values())} result lines logged, "
                  f"{sum(stored.values())} attempts recorded")
            check(not unrecorded, f"{sum(unrecorded.values())} result lines "
                  f"for attempts the store does not hold, e.g. "
                  f"{list(unrecorded)[:3]}")
            os.unlink(filler)
            print(f"filler deleted ({fs.free()} bytes free)")
            ms.wait_until(
                lambda: fs.sql("SELECT count(*) FROM deliveries WHERE "
                               "state = 'sent'")[0][0] >= n or
                p.poll() is not None, 120, f"{n} deliveries sent")
            check(p.poll() is None, f"heraldd exited {p.returncode}")
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=30)
            p = None
            check(rc == 0, f"heraldd stopped with {rc}")
            took = time.monotonic() - t0
            reader = SinkReader(sink)
            ms.wait_until(reader.settled, 10, "smtp-sink settled")
            got = reader.read()
            copies = collections.Counter(i for i, _ in got)
            dup = len(got) - len(copies)
            print(f"{n} recipients, the disk full once: {len(got)} "
                  f"messages at the sink, {len(copies)} distinct, {dup} "
                  f"duplicates (bound {bound}: {max_conn} connections + "
                  f"{records} results awaiting commit), {took:.1f} s")
            text = logtext()
            for line in text.splitlines():
                if "disk is full" in line or "store" in line and \
                        "started" not in line:
                    print("  log:", line[:200])
            check(len(copies) == n and {r for _, r in got} == set(addrs),
                  f"lost: {n - len(copies)} recipients")
            check(dup <= bound, f"{dup} duplicates > {bound}")
            check(held <= set(copies),
                  f"{len(held - set(copies))} recorded sent before the "
                  "refill without being at the sink")
            fs.integrity()
            logged, stored = logged_results(text), stored_results(fs)
            check(logged == stored,
                  f"the log and the store disagree: {sum(logged.values())} "
                  f"result lines, {sum(stored.values())} attempt rows; "
                  f"only logged {list((logged - stored).items())[:3]}, "
                  f"only stored {list((stored - logged).items())[:3]}")
            states = dict(fs.sql("SELECT state, count(*) FROM deliveries "
                                 "GROUP BY state"))
            check(states == {"sent": n}, f"states: {states}")
            sent_rows = fs.sql("SELECT count(*), count(DISTINCT "
                               "delivery_id) FROM attempts "
                               "WHERE result = 'sent'")[0]
            check(sent_rows == (n, n), f"sent attempts recorded: "
                  f"{sent_rows[0]} for {sent_rows[1]} deliveries")
            st = fs.herald("status").stdout.decode()
            m = re.search(r"^1\s+report-launch\s+\S+\s+\S+\s+(\d+)\s+(\d+)",
                          st, re.M)
            check(m and int(m.group(1)) == n and
                  int(m.group(2)) == len(copies),
                  f"herald status disagrees with the sink: {st}")
            log.close()
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        fs.close()


def case_diskfull():
    part_queue()
    part_daemon()


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--heraldd", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    A = ap.parse_args()
    test_crashkill.A = A
    try:
        CASES[A.case]()
    except Failure as e:
        print("FAIL:", e)
        return 1
    print("ok:", A.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
