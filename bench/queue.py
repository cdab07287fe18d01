#!/usr/bin/env python3
"""bench/queue — `herald queue` of the sample release (six languages, the
vCard attachment) to generated journalist lists of several sizes, each
run under /usr/bin/time -v into a fresh store. Prints, size by size: the
list's size, wall seconds, CPU user and system seconds, what of the wall
time the CPU does not account for (waiting: disk, fsync, the scheduler of
a shared machine), peak resident memory and recipients per second. Memory
must stay flat as the list grows; a run whose user time is far below its
wall time is bound by the disk, not by herald.

  bench/queue.py BUILD_DIR [SIZE...]     (default: 10000 100000 400000
                                          1000000)

BUILD_DIR holds the herald binary (an optimised build: `cmake -S . -B
build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench`).
The lists and stores go to a temporary directory (TMPDIR), removed after.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "templates", "report-launch")
LANGS = ["en", "ru", "uk", "de", "cs", "et", "de-AT", "be"]
ZONES = ["Europe/Berlin", "America/New_York", "Europe/Moscow",
         "Europe/Kyiv"]


def journalists(path, n):
    """n journalists in the shape of lists/journalists.yaml: every
    language of the release, regional tags and a fallback among them;
    about 130 bytes an entry, as the lists that were measured."""
    with open(path, "w", buffering=1 << 20) as f:
        f.write("journalists:\n")
        for i in range(n):
            f.write(f"  - name: Journalist Number {i}\n"
                    f"    email: j{i}@news{i % 97}.example.org\n"
                    f"    language: {LANGS[i % len(LANGS)]}\n"
                    f"    outlet: Outlet {i % 500}\n"
                    f"    timezone: {ZONES[i % len(ZONES)]}\n")


def timed(argv, cwd):
    """Run argv under /usr/bin/time -v; its figures and exit status."""
    r = subprocess.run(["/usr/bin/time", "-v", *argv], cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = r.stderr.decode("utf-8", "replace")

    def field(name, conv=float):
        m = re.search(rf"^\s*{re.escape(name)}: (.+)$", err, re.M)
        return conv(m.group(1)) if m else None

    def wall(text):
        parts = [float(p) for p in text.split(":")]
        secs = 0.0
        for p in parts:
            secs = secs * 60 + p
        return secs

    return {
        "rc": r.returncode,
        "wall": field("Elapsed (wall clock) time (h:mm:ss or m:ss)", wall),
        "user": field("User time (seconds)"),
        "sys": field("System time (seconds)"),
        "rss": field("Maximum resident set size (kbytes)", int),
        "out": field("File system outputs", int),
        "err": err,
    }


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    herald = os.path.join(sys.argv[1], "herald")
    sizes = [int(s) for s in sys.argv[2:]] or [10000, 100000, 400000,
                                                 1000000]
    print(f"herald queue of {os.path.relpath(RELEASE, ROOT)} "
          f"({os.cpu_count()} CPUs)")
    print(f"{'recipients':>10} {'list MB':>8} {'wall s':>7} {'user s':>7} "
          f"{'sys s':>6} {'waiting':>8} {'peak MiB':>9} {'rcpt/s':>8}")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="herald-bench-queue-") as tmp:
        for n in sizes:
            lst = os.path.join(tmp, f"list-{n}.yaml")
            store = os.path.join(tmp, f"store-{n}.db")
            cfg = os.path.join(tmp, f"herald-{n}.yaml")
            journalists(lst, n)
            with open(cfg, "w") as f:
                f.write(f"store: {store}\n")
            r = timed([herald, "queue", RELEASE, "--to", lst, "--config",
                       cfg], ROOT)
            mb = os.path.getsize(lst) / 1e6
            if r["rc"] != 0 or r["wall"] is None:
                failed += 1
                lines = [l for l in r["err"].splitlines()
                         if "error" in l or "nothing" in l][:2]
                print(f"{n:>10} {mb:8.1f} failed (exit {r['rc']}): "
                      + " | ".join(lines))
                continue
            cpu = r["user"] + r["sys"]
            wait = max(0.0, r["wall"] - cpu)
            print(f"{n:>10} {mb:8.1f} {r['wall']:7.1f} {r['user']:7.1f} "
                  f"{r['sys']:6.1f} {wait:7.1f}s {r['rss'] / 1024:9.1f} "
                  f"{n / max(r['wall'], 0.01):8.0f}")
            for p in (lst, store, store + "-wal", store + "-shm"):
                if os.path.exists(p):
                    os.remove(p)
    print("waiting: wall time not spent on herald's CPU (disk, fsync, "
          "other processes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
