#!/usr/bin/env python3
"""bench/deliver — heraldd delivering personalised ~3 KB messages to
Postfix's smtp-sink on loopback, side by side in the same run with
Postfix's smtp-source (the same number of reused sessions) and a Python
smtplib loop over one connection. Prints messages per second, the
ratios, and peak memory; also `herald queue` of a large list (seconds,
peak memory), heraldd's peak memory for a small and a large release, and
heraldd against smtp-source through a relay slow to answer the dot.
Ratios, not absolute times: these machines are shared and noisy.

  bench/deliver.py BUILD_DIR [COUNT] [QUEUE_COUNT]
"""
import os
import smtplib
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import mailservers as ms  # noqa: E402

CONNS = 8


def hwm_kib(pid):
    """The process's own peak resident memory (VmHWM), in KiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(argv, **kw):
    """Run argv; return (seconds, peak RSS in MiB, returncode). The peak
    is read from /proc while the command runs (getrusage would count the
    memory of this Python process that forked it)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, **kw)
    peak = 0
    while p.poll() is None:
        peak = max(peak, hwm_kib(p.pid))
        time.sleep(0.02)
    return time.monotonic() - t0, peak / 1024, p.returncode


def journalists(path, n):
    with open(path, "w") as f:
        f.write("journalists:\n")
        for i in range(n):
            f.write(f"  - name: Journalist Number {i}\n"
                    f"    email: j{i}@news{i % 97}.example.org\n"
                    f"    language: en\n"
                    f"    outlet: Outlet {i % 500}\n")


def herald_env(tmp, name, n, relay):
    """A list of n journalists, a store and a config, named by name (the
    runs must not share a store: a release is queued once per store)."""
    lst = os.path.join(tmp, f"list-{name}.yaml")
    journalists(lst, n)
    store = os.path.join(tmp, f"store-{name}.db")
    cfg = os.path.join(tmp, f"herald-{name}.yaml")
    with open(cfg, "w") as f:
        f.write(f"store: {store}\nrelay: {{url: {relay}, max_connections: "
                f"{CONNS}, max_per_connection: 1000}}\n"
                f"daemon: {{batch: 256}}\n")
    return lst, cfg


def smtp_source(sample, count, port):
    """Postfix's smtp-source: count copies of the message in file sample
    over CONNS sessions to the sink on port; the seconds it took."""
    secs, _, rc = run(["/usr/sbin/smtp-source", "-s", str(CONNS),
                       "-m", str(count), "-d", "-F", sample,
                       "-f", "press@coalition.example.org",
                       "-t", "j@news.example.org", f"127.0.0.1:{port}"])
    assert rc == 0, "smtp-source failed"
    return secs


def slow_relay(tmp, herald, heraldd, rel, count):
    """A relay that takes a second to answer each final dot (a content
    filter, say): heraldd over CONNS sessions against smtp-source over as
    many. libcurl 7.88 waits for a dot's reply blocking every other
    transfer of its multi handle, so heraldd's sessions take turns there;
    smtp-source's do not. Returns (heraldd msg/s, smtp-source msg/s)."""
    with ms.SmtpSink(backlog=256, delays={".": 1}) as sink:
        relay = f"smtp://127.0.0.1:{sink.port}"
        lst, cfg = herald_env(tmp, "slow", count, relay)
        _, _, rc = run([herald, "queue", rel, "--to", lst, "--config", cfg],
                       stdout=subprocess.DEVNULL)
        assert rc == 0, "herald queue failed"
        d_s, _, rc = run([heraldd, "--config", cfg, "--drain"],
                         stderr=subprocess.DEVNULL)
        assert rc == 0, "heraldd failed"
        got = sink.wait_for(count, timeout=300)
        sink.clear()
        sample = os.path.join(tmp, "slow-sample.eml")
        with open(sample, "wb") as f:
            f.write(got[0].data)
        s_s = smtp_source(sample, count, sink.port)
        sink.wait_for(count, timeout=300)
    return count / d_s, count / s_s


def main():
    build = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    qcount = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    herald = os.path.join(build, "herald")
    heraldd = os.path.join(build, "heraldd")
    rel = os.path.join(ROOT, "bench", "short-release")
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        os.chmod(tmp, 0o755)
        with ms.SmtpSink(backlog=256) as sink:
            relay = f"smtp://127.0.0.1:{sink.port}"
            lst, cfg = herald_env(tmp, "drain", count, relay)
            q_s, q_mb, rc = run([herald, "queue", rel, "--to", lst,
                                 "--config", cfg], stdout=subprocess.DEVNULL)
            assert rc == 0, "herald queue failed"
            d_s, d_mb, rc = run([heraldd, "--config", cfg, "--drain"],
                                stderr=subprocess.DEVNULL)
            assert rc == 0, "heraldd failed"
            got = sink.wait_for(count, timeout=120)
            size = sum(len(m.data) for m in got[:100]) // min(100, len(got))
            sink.clear()
            # smtp-source: the same count over the same number of sessions
            sample = os.path.join(tmp, "sample.eml")
            with open(sample, "wb") as f:
                f.write(got[0].data if got else b"Subject: x\r\n\r\nx\r\n")
            s_s = smtp_source(sample, count, sink.port)
            sink.wait_for(count, timeout=120)
            sink.clear()
            # Python smtplib over one connection
            data = open(sample, "rb").read()
            t0 = time.monotonic()
            with smtplib.SMTP("127.0.0.1", sink.port) as c:
                for i in range(count):
                    c.sendmail("press@coalition.example.org",
                               [f"j{i}@news.example.org"], data)
            p_s = time.monotonic() - t0
            sink.wait_for(count, timeout=120)
            sink.clear()
            # heraldd memory: a small release against a large one
            small, scfg = herald_env(tmp, "small", 1000, relay)
            run([herald, "queue", rel, "--to", small, "--config", scfg],
                stdout=subprocess.DEVNULL)
            _, small_mb, _ = run([heraldd, "--config", scfg, "--drain"],
                                 stderr=subprocess.DEVNULL)
            sink.wait_for(1000, timeout=60)
            sink.clear()
            big, bcfg = herald_env(tmp, "big", qcount, relay)
            bq_s, bq_mb, rc = run([herald, "queue", rel, "--to", big,
                                   "--config", bcfg],
                                  stdout=subprocess.DEVNULL)
            assert rc == 0, "herald queue (large) failed"
            bd_s, big_mb, _ = run([heraldd, "--config", bcfg, "--drain"],
                                  stderr=subprocess.DEVNULL)
        slow_count = CONNS * 8
        slow_h, slow_s = slow_relay(tmp, herald, heraldd, rel, slow_count)
        rate = count / d_s
        print(f"messages: {count}, about {size} bytes each, {CONNS} sessions")
        print(f"heraldd --drain: {rate:8.0f} msg/s  (queue took {q_s:.1f} s)")
        print(f"smtp-source:     {count / s_s:8.0f} msg/s  -> heraldd is "
              f"{rate / (count / s_s):.2f} of smtp-source")
        print(f"python smtplib:  {count / p_s:8.0f} msg/s  -> heraldd is "
              f"{rate / (count / p_s):.2f}x the Python loop")
        print(f"heraldd peak RSS: {small_mb:.1f} MiB for 1,000 recipients, "
              f"{big_mb:.1f} MiB for {qcount:,} ({qcount / bd_s:.0f} msg/s)")
        print(f"herald queue of {qcount:,}: {bq_s:.1f} s, peak RSS "
              f"{bq_mb:.1f} MiB")
        print(f"a relay answering each dot after 1 s, {slow_count} messages, "
              f"{CONNS} sessions: heraldd {slow_h:.2f} msg/s, smtp-source "
              f"{slow_s:.2f} msg/s -> heraldd is {slow_h / slow_s:.2f} of "
              f"smtp-source")


if __name__ == "__main__":
    main()
