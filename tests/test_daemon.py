#!/usr/bin/env python3
"""heraldd's own behaviour, end to end against smtp-sink on 127.0.0.1.

`test_daemon.py --herald H --heraldd D --source S CASE` (ctest runs each as
daemon/CASE, and as asan/daemon/CASE with the sanitized binaries):

  relay_rate        relay.rate: 8: the arrivals at the sink are no closer
                    than the limit allows, and --drain delivers every
                    recipient (it does not stop while work waits only for
                    the rate limit) and exits 0
  domain_rate       limits.domain_per_minute: 60: the same per recipient
                    domain (the sample list has 9 at example.org)
  drain_left        --drain with work no run can do now: a paused release,
                    an embargoed one (--at), recipients whose retry is
                    later: it delivers the rest, says what is left and why
                    with counts, exits 75; nothing left: exits 0
  drain_relay_pause --drain waits out a relay pause shorter than the work
                    can wait (the relay comes back: all delivered, exit
                    0), and stops at once, 75, when the relay is paused
                    past the work's lifetime
  reload            SIGHUP with a larger daemon.batch and new rate limits:
                    the log line says the rates apply and the batch waits
                    for a restart; the rates hold at once, and deliveries
                    go on without a crash (under ASan too)
  lease_renewal     a 2 s lease and a relay that answers the final dot
                    after 4 s: each claim is renewed while in flight, so
                    one copy and one attempt per recipient
  log_lines         every line starts with time= (ISO 8601, UTC); no epoch
                    numbers; relay= is the relay's URL; a relay that fails
                    one way, then another, is reported with the last
                    reason, in the log and in the attempts

Each case reuses test_delivery.py's scratch directory and commands (Env).
Times are judged by the minimum spacing a limit implies, with generous
slack; nothing here asserts that heraldd is fast.
"""
import collections
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # tests/ stays clean
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import mailservers as ms  # noqa: E402
import test_delivery as td  # noqa: E402
from test_crashkill import write_list  # noqa: E402

A = None
SAMPLE = td.SAMPLE
check = td.check
Failure = td.Failure

# What a limit may lose to the way heraldd and the sink measure: a message
# is paced when it is claimed and timed when its dump is closed, and a
# connection may hold it a little. Far below what the limits add up to.
SLACK = 1.0

TIME_RE = re.compile(r"^time=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) ")


def arrivals(sink):
    """(mtime, recipient) of every message at the sink, oldest first."""
    out = []
    for m in sink.messages():
        out.append((os.stat(m.path).st_mtime, m.recipients[0]))
    return sorted(out)


def check_spacing(times, per_second, burst, what):
    """times (sorted) hold no more messages in any stretch than a token
    bucket of per_second with burst allows: k messages in a row span at
    least (k - burst) / per_second, less SLACK. Returns the whole span."""
    n = len(times)
    worst = None
    for i in range(n):
        for j in range(i + 1, n):
            k = j - i + 1
            need = (k - burst) / per_second - SLACK
            if need <= 0:
                continue
            got = times[j] - times[i]
            if got < need and (worst is None or need - got > worst[0]):
                worst = (need - got, k, got, need)
    check(worst is None,
          f"{what}: {worst[1]} messages within {worst[2]:.2f} s; the limit "
          f"allows that many only over {worst[3] + SLACK:.2f} s "
          f"(less {SLACK} s slack)" if worst else "")
    return times[-1] - times[0] if n else 0.0


def drain_rc(env, *extra, timeout=180):
    p = env.start("--drain", *extra)
    return p.wait(timeout=timeout)


def drain_all(env, sink):
    """--drain to its end: it must exit 0 with every recipient at the sink
    once. Their arrivals, as arrivals() gives them."""
    rc = drain_rc(env)
    check(rc == 0, f"--drain exited {rc}: {env.log_text()[-2000:]}")
    got = arrivals(sink)
    check(len(got) == SAMPLE and len({r for _, r in got}) == SAMPLE,
          f"--drain delivered {len(got)} of {SAMPLE}: "
          f"{env.log_text()[-2000:]}")
    return got


def log_lines(env):
    return env.log_text().splitlines()


def check_no_sanitizer_report(env):
    text = env.log_text()
    check("ERROR: AddressSanitizer" not in text and
          "runtime error:" not in text, f"sanitizer report:\n{text[-3000:]}")


# ---- cases ------------------------------------------------------------------


def case_relay_rate():
    rate = 8
    with ms.SmtpSink() as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}",
                     relay_extra=f"  rate: {rate}\n")
        try:
            env.queue()
            got = drain_all(env, sink)
            span = check_spacing([t for t, _ in got], rate, rate,
                                 f"relay.rate {rate}")
            least = (SAMPLE - rate) / rate
            print(f"relay.rate {rate}: {SAMPLE} messages over {span:.2f} s "
                  f"(the limit allows no less than {least:.2f} s)")
            rows = env.attempts()
            check(len(rows) == SAMPLE and
                  all(r["result"] == "sent" for r in rows),
                  f"{len(rows)} attempts: {collections.Counter(r['result'] for r in rows)}")
            check_no_sanitizer_report(env)
        finally:
            env.close()


def case_domain_rate():
    per_minute = 60
    with ms.SmtpSink() as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}",
                     relay_extra=f"limits:\n  domain_per_minute: "
                     f"{per_minute}\n")
        try:
            env.queue()
            got = drain_all(env, sink)
            by_domain = collections.defaultdict(list)
            for t, r in got:
                by_domain[r.rsplit("@", 1)[1].lower()].append(t)
            busiest = max(by_domain, key=lambda k: len(by_domain[k]))
            check(len(by_domain[busiest]) >= 5,
                  f"the sample list has no domain with 5 recipients: "
                  f"{ {k: len(v) for k, v in by_domain.items()} }")
            for dom, times in sorted(by_domain.items()):
                span = check_spacing(times, per_minute / 60, 1,
                                     f"domain_per_minute {per_minute} at "
                                     f"{dom}")
                if len(times) >= 5:
                    print(f"{dom}: {len(times)} messages over {span:.2f} s "
                          f"(the limit allows no less than "
                          f"{(len(times) - 1) * 60 / per_minute:.2f} s)")
            check_no_sanitizer_report(env)
        finally:
            env.close()


def drain_summary(env):
    """The --drain line that says what was left."""
    lines = [l for l in log_lines(env) if " drain: " in l]
    check(lines, f"no drain: line: {env.log_text()[-2000:]}")
    return lines[-1]


def case_drain_left():
    with ms.SmtpSink() as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}")
        try:
            paused = td.other_release(env, "paused-one")
            later = td.other_release(env, "embargoed-one")
            env.herald("queue", paused, "--to", "lists/journalists.yaml")
            env.herald("pause", "paused-one")
            env.herald("queue", later, "--to", "lists/journalists.yaml",
                       "--at", "+2h")
            env.queue()  # report-launch, due now
            rc = drain_rc(env)
            line = drain_summary(env)
            print(line)
            check(rc == 75, f"--drain exited {rc} with work left: {line}")
            check(sink.count() == SAMPLE, f"{sink.count()} delivered, not "
                  f"the {SAMPLE} of the release that was due")
            for key, n in (("left", 2 * SAMPLE), ("paused", SAMPLE),
                           ("embargoed", SAMPLE), ("deferred", 0),
                           ("relay_paused", 0)):
                check(f" {key}={n} " in line + " ",
                      f"{key}={n} missing: {line}")
            check("herald resume" in line and "embargoed until 20" in line,
                  f"the reasons are not said: {line}")
            # the paused one resumed, the embargoed one cancelled: all
            # delivered, nothing left
            env.herald("resume", "paused-one")
            env.herald("cancel", "embargoed-one")
            rc = drain_rc(env)
            line = drain_summary(env)
            print(line)
            check(rc == 0, f"--drain exited {rc} with nothing left: {line}")
            check("nothing left" in line, line)
            check(sink.count() == 2 * SAMPLE, f"{sink.count()} delivered")
        finally:
            env.close()
    # a recipient's retry later than now: stop, 75, deferred counted
    with ms.SmtpSink(soft_reject=["RCPT"]) as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}",
                     retry="{min_backoff: 1h, max_backoff: 2h}")
        try:
            env.queue()
            rc = drain_rc(env)
            line = drain_summary(env)
            print(line)
            check(rc == 75, f"--drain exited {rc} with deferred work: {line}")
            check(f" deferred={SAMPLE} " in line and
                  "waiting for their retry" in line, line)
        finally:
            env.close()


def case_drain_relay_pause():
    # the relay is down for a moment: --drain waits for it
    port = ms.free_port()
    env = td.Env(f"smtp://127.0.0.1:{port}")
    sink = None
    try:
        env.queue()
        p = env.start("--drain")
        ms.wait_until(lambda: " paused until " in env.log_text() or
                      p.poll() is not None, 30, "the relay paused")
        check(p.poll() is None,
              f"--drain exited {p.returncode} while the relay was paused "
              f"for a second: {env.log_text()[-2000:]}")
        sink = ms.SmtpSink(port=port)
        sink.start()
        rc = p.wait(timeout=120)
        check(rc == 0, f"--drain exited {rc}: {env.log_text()[-2000:]}")
        check(sink.count() == SAMPLE and
              len(set(td.message_ids(sink.messages()))) == SAMPLE,
              f"{sink.count()} delivered once the relay was back")
    finally:
        if sink is not None:
            sink.stop()
        env.close()
    # paused for longer than the work may wait (retry.lifetime): stop, 75
    port = ms.free_port()
    env = td.Env(f"smtp://127.0.0.1:{port}",
                 retry="{min_backoff: 1s, max_backoff: 2s, lifetime: 20s, "
                 "relay_min_backoff: 1m, relay_max_backoff: 1m}")
    try:
        env.queue()
        t0 = time.monotonic()
        rc = drain_rc(env, timeout=60)
        line = drain_summary(env)
        print(f"{line} (after {time.monotonic() - t0:.1f} s)")
        check(rc == 75, f"--drain exited {rc}: {line}")
        check(f" relay_paused={SAMPLE} " in line and
              "relay: cannot connect" in line, line)
    finally:
        env.close()


def case_reload():
    rate = 8
    with ms.SmtpSink() as sink:
        env = td.Env(f"smtp://127.0.0.1:{sink.port}",
                     daemon="{lease: 5s, grace: 5s, batch: 4}")
        try:
            p = env.start()
            ms.wait_until(lambda: os.path.exists(env.sock) or
                          p.poll() is not None, 20, "heraldd started")
            with open(env.cfg) as f:
                text = f.read()
            new = text.replace("batch: 4}", "batch: 64}")
            new = new.replace("relay:\n", f"limits:\n  domain_per_minute: "
                              f"600\nrelay:\n  rate: {rate}\n", 1)
            check(new != text and "batch: 64" in new, "config not changed")
            with open(env.cfg, "w") as f:
                f.write(new)
            p.send_signal(signal.SIGHUP)
            ms.wait_until(lambda: "config reloaded" in env.log_text() or
                          p.poll() is not None, 20, "the reload")
            line = [l for l in log_lines(env) if "config reloaded" in l][0]
            print(line)
            m = re.search(r"applied=(\S+) when_idle=(\S+) restart=(\S+)",
                          line)
            check(m, f"the reload line does not say what applies: {line}")
            check({"relay.rate", "limits.domain_per_minute"} <=
                  set(m.group(1).split(",")), f"applied: {m.group(1)}")
            check(m.group(3).split(",") == ["daemon.batch"],
                  f"waits for a restart: {m.group(3)}")
            env.queue()
            got = None
            ms.wait_until(lambda: sink.count() >= SAMPLE or
                          p.poll() is not None, 120, "every message")
            check(p.poll() is None, f"heraldd exited {p.returncode}: "
                  f"{env.log_text()[-3000:]}")
            got = arrivals(sink)
            check(len({r for _, r in got}) == SAMPLE and len(got) == SAMPLE,
                  f"{len(got)} messages for {len({r for _, r in got})} "
                  "recipients")
            span = check_spacing([t for t, _ in got], rate, rate,
                                 f"relay.rate {rate} after SIGHUP")
            print(f"after SIGHUP: {SAMPLE} messages over {span:.2f} s")
            # once more, with nothing changed
            p.send_signal(signal.SIGHUP)
            ms.wait_until(lambda: len([l for l in log_lines(env)
                                       if "config reloaded" in l]) == 2 or
                          p.poll() is not None, 20, "the second reload")
            line = [l for l in log_lines(env) if "config reloaded" in l][1]
            check("applied=- when_idle=- restart=daemon.batch" in line,
                  f"a reload without changes: {line}")
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=30)
            check(rc == 0, f"heraldd stopped with {rc}: "
                  f"{env.log_text()[-3000:]}")
            check_no_sanitizer_report(env)
            rows = env.attempts()
            check(len(rows) == SAMPLE, f"{len(rows)} attempts")
        finally:
            env.close()


def case_lease_renewal():
    n, dot = 8, 4
    with ms.SmtpSink(delays={".": dot}) as sink:
        # timeouts far above the sink's delay: a timeout would be a
        # duplicate of its own
        env = td.Env(f"smtp://127.0.0.1:{sink.port}",
                     daemon="{lease: 2s, grace: 10s, batch: 16}",
                     timeout="60s", relay_extra="  max_connections: 4\n")
        try:
            lst = os.path.join(env.dir, "journalists.yaml")
            addrs = write_list(lst, n)
            env.herald("queue", "templates/report-launch", "--to", lst)
            t0 = time.monotonic()
            rc = drain_rc(env)
            took = time.monotonic() - t0
            check(rc == 0, f"--drain exited {rc}: {env.log_text()[-2000:]}")
            ms.wait_until(lambda: sink.count() >= n, 30, "every message")
            got = sink.messages()
            copies = collections.Counter(m.recipients[0] for m in got)
            print(f"{n} messages, each held {dot} s at the final dot under "
                  f"a 2 s lease: {len(got)} copies in {took:.1f} s")
            check(set(copies) == set(addrs) and
                  all(c == 1 for c in copies.values()),
                  f"copies per recipient: {dict(copies)}")
            rows = env.attempts()
            per = collections.Counter(r["recipient"] for r in rows)
            check(len(rows) == n and all(c == 1 for c in per.values()),
                  f"attempts per recipient: {dict(per)}")
            check_no_sanitizer_report(env)
        finally:
            env.close()


def case_log_lines():
    port = ms.free_port()
    env = td.Env(f"smtp://127.0.0.1:{port}")
    url = f"smtp://127.0.0.1:{port}"
    sink = None
    try:
        env.queue()
        p = env.start()

        def pauses():
            return [l for l in log_lines(env) if " paused until " in l]

        ms.wait_until(lambda: pauses(), 30, "the relay paused")
        # 421 at connect, then down again: the last reason is the one said
        sink = ms.SmtpSink(reply_421=["CONNECT"], port=port)
        sink.start()
        ms.wait_until(lambda: any("relay: 421" in l for l in pauses()), 30,
                      "a pause for the 421")
        sink.stop()
        sink = None
        n = len(pauses())
        ms.wait_until(lambda: len(pauses()) > n and
                      "relay: cannot connect" in pauses()[-1], 30,
                      "a pause for the relay down again")
        last = pauses()[-1]

        def last_attempt():
            rows = env.attempts()
            return rows[-1] if rows else None
        # the pause is logged when it happens, the attempt that led to it
        # with the recorder's next commit (up to 50 ms later; more on a
        # loaded machine under ASan)
        try:
            ms.wait_until(lambda: last_attempt() is not None and
                          "421" not in (last_attempt()["reply"] or ""), 10,
                          "the attempt with nothing listening recorded")
        except TimeoutError:
            pass
        row = last_attempt()
        check(row and "421" not in (row["reply"] or ""),
              f"the last attempt, with nothing listening, says: {row}")
        sink = ms.SmtpSink(port=port)
        sink.start()
        sink.wait_for(SAMPLE, timeout=60)
        env.wait_all("sent")
        p.send_signal(signal.SIGTERM)
        check(p.wait(timeout=30) == 0, "heraldd did not stop with 0")
        lines = log_lines(env)
        print("\n".join(lines[:3] + [last] + lines[-3:]))
        for line in lines:
            if line.startswith("==") or line.startswith("imap ") or \
                    line.startswith("smtp "):
                continue  # a sanitizer's or a trace's, not heraldd's
            m = TIME_RE.match(line)
            check(m, f"a line without time= first: {line!r}")
            check(not re.search(r"\b1[5-9]\d{8}\b", line),
                  f"an epoch number in {line!r}")
        check(re.search(r" paused until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ",
                        last), last)
        started = [l for l in lines if " started: " in l][0]
        check(f'relay="{url} STARTTLS if offered (loopback)"' in started,
              started)
        results = [l for l in lines if " result=" in l]
        check(results and all(f" relay={url} attempt=" in l
                              for l in results),
              f"relay= is not the URL alone: {results[:2]}")
        rows = env.attempts()
        check(all(r["relay"] == url for r in rows),
              f"attempts record the relay as {set(r['relay'] for r in rows)}")
        # one result line per attempt row, after the commit
        check(len(results) == len(rows),
              f"{len(results)} result lines, {len(rows)} attempt rows")
        check_no_sanitizer_report(env)
    finally:
        if sink is not None:
            sink.stop()
        env.close()


if __name__ == "__main__":
    sys.exit(td.run_cases(globals()))
