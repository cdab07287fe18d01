#!/usr/bin/env python3
"""herald queue as press staff use it: again with journalists added, after
a cancel, with an embargo in the release, with a long list.

`test_queue.py --herald H --heraldd D --source S CASE` runs one case
(ctest: queue/CASE, asan/queue/CASE). The cases use test_delivery's
scratch directory, config and commands (import test_delivery as td) and
Postfix's smtp-sink on 127.0.0.1.

  only_new           the same release queued again is refused, naming
                     --only-new; with --only-new only the journalists
                     added to the list are queued (and sent), and a run
                     with nothing new queues nothing
  resume_cancelled   herald resume of a cancelled release brings its
                     cancelled deliveries back, and heraldd sends them
  embargo_in_release the embargo set in release.yaml (no --at) holds
                     every message until it passes
  embargo_passed     a passed embargo is refused, naming release.yaml's
                     line and column; with --embargo-passed=send the
                     release goes out at once without embargo wording
  long_list          200,000 generated journalists queue in memory that
                     does not grow with the list (peak RSS bound, which
                     holding the list or its YAML tree exceeds), with a
                     progress line on a terminal
"""
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import mailservers as ms  # noqa: E402
import transcript  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import test_delivery as td  # noqa: E402

A = None
MIB = 1024 * 1024
Failure = td.Failure
check = td.check


def store_rows(env, sql):
    return env.store_rows(sql)


def list_with(env, name, extra):
    """The sample list with extra journalists appended, in the scratch
    directory."""
    with open(os.path.join(A.source, "lists", "journalists.yaml")) as f:
        text = f.read()
    if not text.endswith("\n"):
        text += "\n"
    for i, (addr, lang) in enumerate(extra):
        text += (f"  - name: Added Journalist {i}\n"
                 f"    email: {addr}\n"
                 f"    language: {lang}\n")
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def with_embargo(env, name, when_utc):
    """A copy of the sample release named name, embargoed until when_utc
    (a time.struct_time in UTC, to the second)."""
    rel = td.other_release(env, name)
    path = os.path.join(rel, "release.yaml")
    with open(path) as f:
        text = f.read()
    old = ('# embargo:\n#   time: "2019-05-06 10:00"\n'
           '#   zone: Europe/Moscow\n')
    check(text.count(old) == 1, "the sample release's embargo comment "
          "changed: update test_queue.py")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", when_utc)
    text = text.replace(old, f'embargo:\n  time: "{stamp}"\n  zone: UTC\n')
    with open(path, "w") as f:
        f.write(text)
    return rel, path


def case_only_new():
    with ms.SmtpSink() as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            r = env.queue()
            check(b"queued release 1" in r.stdout, r.stdout.decode())
            # the store's absolute path, whatever the config said
            check(f"store: {env.store_shown}".encode()
                  in r.stdout, r.stdout.decode())
            # the same release again: refused, by its name, saying how
            r = env.herald("queue", "templates/report-launch", "--to",
                           "lists/journalists.yaml", check_rc=False)
            err = r.stderr.decode()
            check(r.returncode == 65, f"queued twice: exit {r.returncode}: "
                  f"{err}{r.stdout.decode()}")
            check("--only-new" in err and "report-launch" in err
                  and "release 1" in err, err)
            check("store's problem" not in err, err)
            check(store_rows(env, "SELECT count(*) FROM releases") ==
                  [(1,)], "a second release went into the store")
            # two journalists added to the list: only they are queued
            added = [("added.one@example.net", "de"),
                     ("added.two@example.org", "en")]
            lst = list_with(env, "more.yaml", added)
            r = env.herald("queue", "templates/report-launch", "--to", lst,
                           "--only-new")
            out = r.stdout.decode()
            check("queued release 2 (report-launch): 2 recipients" in out,
                  out)
            check(f"{td.SAMPLE} addresses skipped" in out
                  and "already" in out, out)
            rows = store_rows(env, "SELECT release_id, email FROM "
                              "deliveries WHERE release_id = 2")
            check(sorted(e for _, e in rows) == sorted(a for a, _ in added),
                  f"release 2 holds {rows}")
            # nothing new: nothing queued, and that is not an error
            r = env.herald("queue", "templates/report-launch", "--to", lst,
                           "--only-new")
            out = r.stdout.decode()
            check("nothing to queue" in out and
                  f"{td.SAMPLE + 2} addresses" in out, out)
            check(store_rows(env, "SELECT count(*) FROM releases") ==
                  [(2,)], "an empty release went into the store")
            # heraldd sends both: every address once
            env.drain()
            got = sink.wait_for(td.SAMPLE + 2, timeout=60)
            ids = td.message_ids(got)
            rcpts = sorted(m.recipients[0] for m in got)
            check(len(got) == td.SAMPLE + 2 and len(set(ids)) == len(got)
                  and len(set(rcpts)) == len(got),
                  f"{len(got)} messages to {len(set(rcpts))} addresses")
        finally:
            env.close()


def case_resume_cancelled():
    with ms.SmtpSink() as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            env.queue()
            r = env.herald("cancel", "report-launch")
            check(f"{td.SAMPLE} deliveries" in r.stdout.decode(),
                  r.stdout.decode())
            r = env.herald("resume", "report-launch", check_rc=False)
            out, err = r.stdout.decode(), r.stderr.decode()
            check(r.returncode == 0, f"resume of a cancelled release: exit "
                  f"{r.returncode}: {err}{out}")
            check(f"{td.SAMPLE} cancelled deliveries due again" in out, out)
            states = store_rows(env, "SELECT state, count(*) FROM "
                                "deliveries GROUP BY state")
            check(states == [("queued", td.SAMPLE)], f"states {states}")
            check(store_rows(env, "SELECT state FROM releases") ==
                  [("active",)], "the release is not active again")
            env.drain()
            got = sink.wait_for(td.SAMPLE, timeout=60)
            check(len(set(td.message_ids(got))) == td.SAMPLE,
                  f"{len(got)} messages")
            # a release that is not cancelled resumes as before
            r = env.herald("resume", "report-launch", check_rc=False)
            check("cancelled deliveries" not in r.stdout.decode(),
                  r.stdout.decode())
        finally:
            env.close()


def case_embargo_in_release():
    """delivery/embargo with the embargo in release.yaml and no --at:
    nothing before it, all after, each saying it is embargoed."""
    with ms.SmtpSink() as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            until = int(time.time()) + 6
            rel, _ = with_embargo(env, "embargoed", time.gmtime(until))
            env.herald("queue", rel, "--to", "lists/journalists.yaml")
            (not_before,) = store_rows(env, "SELECT not_before FROM "
                                       "releases")[0]
            check(not_before == until, f"not_before {not_before}, the "
                  f"embargo {until}")
            p = env.start()
            while time.time() < until - 1:
                check(sink.count() == 0, "a message left before the "
                      "embargo")
                time.sleep(0.2)
            got = sink.wait_for(td.SAMPLE, timeout=30)
            first = min(os.stat(m.path).st_mtime for m in got)
            check(first >= until - 0.02, f"the first message arrived "
                  f"{until - first:.3f} s before the embargo")
            check(len(set(td.message_ids(got))) == td.SAMPLE,
                  "not all delivered")
            check(all(b"EMBARGOED" in m.data or b"=?" in m.data
                      for m in got), "a message without embargo wording")
            p.send_signal(td.signal.SIGTERM)
            check(p.wait(timeout=20) == 0, "heraldd did not stop with 0")
        finally:
            env.close()


def case_embargo_passed():
    with ms.SmtpSink() as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            rel, path = with_embargo(env, "late",
                                     time.gmtime(time.time() - 3600))
            with open(path) as f:
                lines = f.read().splitlines()
            line = next(i for i, l in enumerate(lines, 1)
                        if l.startswith("  time: "))
            r = env.herald("queue", rel, "--to", "lists/journalists.yaml",
                           check_rc=False)
            err = r.stderr.decode()
            check(r.returncode == 65, f"a passed embargo queued: exit "
                  f"{r.returncode}: {err}")
            check(re.search(rf"release\.yaml:{line}:9: error: the embargo "
                            r"\(.*\) has passed", err), err)
            check("--embargo-passed=send" in err, err)
            check(not env.store_exists() or store_rows(
                env, "SELECT count(*) FROM releases") == [(0,)],
                "the release went into the store")
            r = env.herald("queue", rel, "--to", "lists/journalists.yaml",
                           "--embargo-passed=send")
            check(b"queued release 1" in r.stdout, r.stdout.decode())
            check(b"nothing leaves before" not in r.stdout,
                  r.stdout.decode())
            env.drain()
            got = sink.wait_for(td.SAMPLE, timeout=60)
            for m in got:
                text = m.data.decode("utf-8", "replace")
                check("EMBARGO" not in text.upper(),
                      f"{m.recipients[0]}: embargo wording in the message")
                sub = re.search(r"^Subject: .*$", text, re.M).group(0)
                check("=?" in sub or "EMBARGO" not in sub, sub)
            # the English subject as it would read without the embargo
            en = [m for m in got if m.recipients[0] ==
                  "m.holloway@capitol-ledger.test"]
            check(en and b"Subject: Coalition welcomes" in en[0].data,
                  "the English message's subject")
        finally:
            env.close()


def journalists(path, n):
    langs = ["en", "ru", "uk", "de", "cs", "et", "de-AT", "be"]
    with open(path, "w", buffering=1 << 20) as f:
        f.write("journalists:\n")
        for i in range(n):
            f.write(f"  - name: Journalist Number {i}\n"
                    f"    email: j{i}@news{i % 97}.example.org\n"
                    f"    language: {langs[i % len(langs)]}\n"
                    f"    outlet: Outlet {i % 500}\n")


def case_long_list():
    n = A.size
    env = td.Env("smtp://127.0.0.1:9")
    try:
        lst = os.path.join(env.dir, "long.yaml")
        journalists(lst, n)
        mb = os.path.getsize(lst) / 1e6
        # stderr on a terminal, for the progress line
        master, slave = pty.openpty()
        env_vars = dict(os.environ)
        if "ASAN_OPTIONS" in env_vars:
            # AddressSanitizer keeps 256 MiB of freed memory by default;
            # the bound is about what herald holds, not that
            env_vars["ASAN_OPTIONS"] += ":quarantine_size_mb=8"
        t0 = time.monotonic()
        with tempfile.TemporaryFile() as out:
            p = subprocess.Popen([A.herald, "queue",
                                  "templates/report-launch", "--to", lst,
                                  "--config", env.cfg],
                                 cwd=A.source, stdout=out, stderr=slave,
                                 stdin=subprocess.DEVNULL, env=env_vars)
            os.close(slave)
            tty = b""
            while True:
                r, _, _ = select.select([master], [], [], 0.5)
                if r:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    tty += chunk
                elif p.poll() is not None:
                    break
            _, status, ru = os.wait4(p.pid, 0)
            os.close(master)
            secs = time.monotonic() - t0
            out.seek(0)
            stdout = out.read()
        transcript.record("herald queue (long list)", stdout + tty)
        rc = os.waitstatus_to_exitcode(status)
        rss = ru.ru_maxrss * 1024
        print(f"queue of {n:,} journalists ({mb:.1f} MB): {secs:.1f} s, "
              f"peak RSS {rss / MIB:.1f} MiB (bound {A.rss_mib} MiB)")
        check(rc == 0, f"exit {rc}: {tty.decode('utf-8', 'replace')[-800:]}")
        check(f"{n} recipients".encode() in stdout, stdout.decode())
        check(store_rows(env, "SELECT count(*) FROM deliveries") == [(n,)],
              "not every journalist is in the store")
        check(rss < A.rss_mib * MIB,
              f"peak RSS {rss / MIB:.1f} MiB for {n:,} journalists: the "
              f"list is held in memory (bound {A.rss_mib} MiB)")
        # the progress line: on the terminal, over a few seconds
        text = tty.decode("utf-8", "replace")
        if secs > 4:
            check(re.search(r"herald queue: (reading .*long\.yaml: \d+ "
                            r"recipients|writing to the store: \d+ of "
                            r"\d+) \(\d+%\)", text),
                  f"no progress line on the terminal in {secs:.1f} s: "
                  f"{text[-500:]!r}")
        check(text.count("\r") == 0 or text.rstrip().endswith("\x1b[K")
              or "\x1b[K" in text, "a progress line left unfinished")
    finally:
        env.close()


def queue_args(ap):
    ap.add_argument("--size", type=int, default=200000,
                    help="long_list: journalists in the list")
    ap.add_argument("--rss-mib", type=int, default=100,
                    help="long_list: the peak RSS bound")


if __name__ == "__main__":
    sys.exit(td.run_cases(globals(), queue_args))
