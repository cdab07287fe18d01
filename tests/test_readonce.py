#!/usr/bin/env python3
"""A release is read once: what herald queue checked is what is sent, and
heraldd builds messages from the store alone.

`test_readonce.py --herald H --heraldd D --source S CASE` runs one case
(ctest: readonce/CASE, asan/readonce/CASE). The cases use test_delivery's
scratch directory, config and commands (import test_delivery as td).

  changed_after_snapshot  herald queue reads its list from a FIFO, which it
                          opens after it has read the release; while it
                          waits there, the body template, a partial, the
                          attachment and the coalition list are changed on
                          disk. The store holds the files as they were, and
                          the message heraldd sends is herald preview's of
                          the unchanged release (but for Date), with none
                          of the changes
  no_tmpdir               heraldd with TMPDIR at an empty directory
                          delivers the sample release and writes nothing
                          there: not while it runs, not after a SIGKILL in
                          the middle of the run, not after it stops
  cache_evicts            ten releases (heraldd keeps eight loaded) to a
                          relay that defers one journalist of the first
                          once; after the others went out, herald retry
                          sends it: the first release was let go and read
                          again from the store, and every message is
                          herald preview's of its own release
"""
import email
import email.policy
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import faultsmtp as fs  # noqa: E402
import mailservers as ms  # noqa: E402
import transcript  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import test_delivery as td  # noqa: E402

A = None
Failure = td.Failure
check = td.check

# Three English journalists (the release's own copy of a list)
JOURNALISTS = [
    ("Margaret Holloway", "m.holloway@capitol-ledger.test"),
    ("Read Once", "read.once@example.org"),
    ("Third Reader", "third.reader@example.net"),
]


def write_list(path, people):
    with open(path, "w") as f:
        f.write("journalists:\n")
        for name, addr in people:
            f.write(f"  - name: {name}\n    email: {addr}\n"
                    "    language: en\n")


def list_text(people):
    return "".join(f"  - name: {n}\n    email: {a}\n    language: en\n"
                   for n, a in people).join(["journalists:\n", ""])


def replace_in(path, old, new):
    with open(path, "rb") as f:
        data = f.read()
    check(data.count(old) == 1, f"{path}: {old!r} not found once: update "
          "test_readonce.py")
    with open(path, "wb") as f:
        f.write(data.replace(old, new))


def release_copy(env, name, marker):
    """A copy of the sample release named name, with its own copy of the
    coalition list beside it, and marker in the English body and the
    spokesperson partial."""
    rel = td.other_release(env, name)
    coal = os.path.join(env.dir, f"{name}-coalition.yaml")
    shutil.copy(os.path.join(A.source, "lists", "coalition.yaml"), coal)
    src = os.path.join(A.source, "lists", "coalition.yaml")
    replace_in(os.path.join(rel, "release.yaml"),
               f"coalition: {src}".encode(), f"coalition: {coal}".encode())
    replace_in(os.path.join(rel, "en.txt.mustache"),
               b"{{#release.embargo}}\nEMBARGOED",
               f"Release marker: {marker}\n"
               "{{#release.embargo}}\nEMBARGOED".encode())
    part = os.path.join(rel, "partials", "spokesperson.txt.mustache")
    with open(part, "ab") as f:
        f.write(f"Partial marker: {marker}\n".encode())
    return rel, coal


def texts(raw):
    """Every decoded part of a message, text and attachments, as one
    string (markers may be split by quoted-printable line breaks in the
    raw message)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        content = part.get_content()
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        out.append(content)
    return "\n".join(out)


def message_id(raw):
    hit = re.search(rb"^Message-ID: *(<[^>]+>)", raw, re.M | re.I)
    return hit.group(1).decode() if hit else None


def previews(env, rel, lst, coal=None):
    """herald preview of every recipient of lst: Message-ID -> message."""
    out = os.path.join(env.dir, "preview-" + os.path.basename(rel))
    extra = ["--coalition", coal] if coal else []
    env.herald("preview", rel, "--to", lst, "--out", out, *extra)
    got = {}
    for name in os.listdir(out):
        with open(os.path.join(out, name), "rb") as f:
            raw = f.read()
        got[message_id(raw)] = raw
    return got


def same_message(sent, want, what):
    a = td.without_date(sent).rstrip(b"\r\n")
    b = td.without_date(want).rstrip(b"\r\n")
    check(a == b, f"{what}: the message sent is not herald preview's of "
          f"the release as queued:\n--- sent\n{a[:3000]!r}\n--- preview\n"
          f"{b[:3000]!r}")


def maildir_messages(md):
    new = os.path.join(md, "new")
    out = []
    for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), "rb") as f:
            out.append(f.read())
    return out


def stored_file(env, path):
    rows = env.store_rows("SELECT data FROM release_files WHERE path = ?",
                          (path,))
    check(len(rows) == 1, f"{len(rows)} stored files {path}")
    return bytes(rows[0][0])


# ---- cases ------------------------------------------------------------------


def case_changed_after_snapshot():
    env = td.Env("maildir:{dir}/outbox")
    try:
        md = os.path.join(env.dir, "outbox")
        rel, coal = release_copy(env, "readonce-a", "ORIGINAL")
        body = os.path.join(rel, "en.txt.mustache")
        part = os.path.join(rel, "partials", "spokesperson.txt.mustache")
        vcf = os.path.join(rel, "attachments", "natalia-arno.vcf")
        before = {}
        for p in (body, part, vcf, coal):
            with open(p, "rb") as f:
                before[p] = f.read()
        fifo = os.path.join(env.dir, "list.fifo")
        os.mkfifo(fifo)
        q = subprocess.Popen([A.herald, "queue", rel, "--to", fifo,
                              "--config", env.cfg], cwd=A.source,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # herald opens the list once it has read the release: the FIFO's
        # other end opens then, and not before
        deadline = time.monotonic() + 60
        fd = None
        while fd is None:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                if q.poll() is not None:
                    raise Failure("herald queue exited before reading "
                                  f"its list: {q.communicate()}")
                check(time.monotonic() < deadline,
                      "herald queue never opened its list")
                time.sleep(0.01)
        # now edit everything the release is made of
        replace_in(body, b"Release marker: ORIGINAL",
                   b"Release marker: CHANGED")
        replace_in(part, b"Partial marker: ORIGINAL",
                   b"Partial marker: CHANGED")
        replace_in(vcf, b"FN:Natalia Arno", b"FN:CHANGED Arno")
        replace_in(coal, b"en: Coalition to Free the Kremlin's Political "
                   b"Prisoners", b"en: CHANGED Coalition")
        os.set_blocking(fd, True)
        os.write(fd, list_text(JOURNALISTS).encode())
        os.close(fd)
        out, err = q.communicate(timeout=120)
        transcript.record("herald queue (FIFO list)", out + err)
        check(q.returncode == 0, f"queue exited {q.returncode}: "
              f"{err.decode()}{out.decode()}")
        check(b"queued release 1 (readonce-a): 3 recipients" in out,
              out.decode())
        # the store holds the files as queue read them, before the edits
        for path, p in (("release/en.txt.mustache", body),
                        ("release/partials/spokesperson.txt.mustache",
                         part),
                        ("release/attachments/natalia-arno.vcf", vcf),
                        ("coalition.yaml", coal)):
            check(stored_file(env, path) == before[p],
                  f"the store's {path} is not what queue read first")
        env.drain()
        sent = maildir_messages(md)
        check(len(sent) == 3, f"{len(sent)} messages sent")
        # the release as it was when queue read it, as herald preview
        # renders it
        pristine = os.path.join(env.dir, "pristine")
        shutil.copytree(rel, pristine)
        for p in (body, part, vcf):
            with open(os.path.join(pristine, os.path.relpath(p, rel)),
                      "wb") as f:
                f.write(before[p])
        pcoal = os.path.join(env.dir, "pristine-coalition.yaml")
        with open(pcoal, "wb") as f:
            f.write(before[coal])
        lst = os.path.join(env.dir, "list.yaml")
        write_list(lst, JOURNALISTS)
        want = previews(env, pristine, lst, pcoal)
        for raw in sent:
            text = texts(raw)
            check("CHANGED" not in text, "an edit made after queue read "
                  "the release was sent")
            check("Release marker: ORIGINAL" in text and
                  "Partial marker: ORIGINAL" in text and
                  "FN:Natalia Arno" in text, "the release as queued is "
                  "not what was sent")
            mid = message_id(raw)
            check(mid in want, f"no preview with Message-ID {mid}")
            same_message(raw, want[mid], mid)
    finally:
        env.close()


def start_heraldd(env, tmpdir):
    log = open(os.path.join(env.dir, f"heraldd{len(env.procs)}.log"), "wb")
    p = subprocess.Popen([A.heraldd, "--config", env.cfg], cwd=A.source,
                         stdout=log, stderr=log,
                         env=dict(os.environ, TMPDIR=tmpdir))
    env.procs.append(p)
    env.logs.append(log.name)
    return p


def case_no_tmpdir():
    # 15 messages a second: the run lasts about three seconds, long
    # enough to look at it and kill it in the middle
    env = td.Env("maildir:{dir}/outbox", relay_extra="  rate: 15\n")
    tmp = os.path.join(env.dir, "tmp")
    os.mkdir(tmp)
    try:
        md = os.path.join(env.dir, "outbox")
        env.queue()

        def empty(when):
            left = os.listdir(tmp)
            check(left == [], f"heraldd left {left} in $TMPDIR {when}")

        def distinct():
            return {message_id(m) for m in maildir_messages(md)}

        p = start_heraldd(env, tmp)
        ms.wait_until(lambda: len(distinct()) >= 5, 60,
                      "5 messages in the Maildir")
        empty("while it runs")
        check(len(distinct()) < td.SAMPLE, "the run ended before the "
              "kill: make the relay slower")
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=20)
        empty("after a SIGKILL")
        p = start_heraldd(env, tmp)
        ms.wait_until(lambda: len(distinct()) == td.SAMPLE, 120,
                      f"{td.SAMPLE} journalists' messages in the Maildir")
        empty("after the restart")
        p.send_signal(signal.SIGTERM)
        check(p.wait(timeout=30) == 0, f"heraldd exited {p.returncode}")
        empty("after it stopped")
        check("loaded from the store" in env.log_text(), "no line says "
              "where heraldd read the release from")
    finally:
        env.close()


class KeepingSmtp(fs.FaultSmtp):
    """faultsmtp, keeping every message it takes (Message-ID -> data)."""

    def __init__(self, plan):
        super().__init__(plan)
        self.bodies = {}

    async def _end_of_data(self, reader, writer, conn, sender, rcpt, n,
                           body):
        with self.lock:
            self.bodies[message_id(body)] = body
        await super()._end_of_data(reader, writer, conn, sender, rcpt, n,
                                   body)


class DeferOnce(fs.FaultPlan):
    """One address refused with a 4xx at RCPT the first time, nothing
    else."""

    def __init__(self, rcpt):
        super().__init__(seed=1, rate=0, conn_rate=0)
        self.rcpt = rcpt

    def decide(self, key, attempt, command):
        if key == self.rcpt and command == "RCPT" and attempt == 1:
            return "4xx"
        return "ok"


RELEASES = 10  # heraldd keeps 8 loaded (DELIVER_RELEASES_KEPT)


def case_cache_evicts():
    later = "later.reader@example.com"
    with KeepingSmtp(DeferOnce(later)) as srv:
        env = td.Env(f"smtp://127.0.0.1:{srv.port}",
                     retry="{min_backoff: 10m, max_backoff: 20m, "
                     "relay_min_backoff: 1s, relay_max_backoff: 2s}")
        try:
            lists = {}
            rels = []
            for i in range(1, RELEASES + 1):
                rel, coal = release_copy(env, f"readonce-c{i}", f"c{i}")
                people = JOURNALISTS + ([("Later Reader", later)]
                                        if i == 1 else [])
                lst = os.path.join(env.dir, f"list-c{i}.yaml")
                write_list(lst, people)
                r = env.herald("queue", rel, "--to", lst)
                check(f"queued release {i} ".encode() in r.stdout,
                      r.stdout.decode())
                rels.append(rel)
                lists[rel] = lst
            total = RELEASES * len(JOURNALISTS) + 1
            env.start()
            ms.wait_until(lambda: len(srv.bodies) == total - 1, 120,
                          f"{total - 1} messages at the relay")
            deferred = [r for r, s in env.counts().items()
                        if s == "deferred"]
            check(deferred == [later], f"deferred: {deferred}")
            env.herald("retry", "readonce-c1", "--deferred")
            ms.wait_until(lambda: len(srv.bodies) == total, 120,
                          f"{total} messages at the relay")
            log = env.log_text()
            loads = {i: log.count(f"release={i} loaded from the store")
                     for i in range(1, RELEASES + 1)}
            check(all(n >= 1 for n in loads.values()), f"loads {loads}")
            check(loads[1] == 2, f"release 1 was not let go and read "
                  f"again: loads {loads}")
            want = {}
            for rel in rels:
                want.update(previews(env, rel, lists[rel]))
            check(len(want) == total, f"{len(want)} previews")
            for mid, raw in srv.bodies.items():
                check(mid in want, f"no preview with Message-ID {mid}")
                same_message(raw, want[mid], mid)
            marks = [re.findall(r"Release marker: (c\d+)", texts(raw))
                     for raw in srv.bodies.values()]
            for i in range(1, RELEASES + 1):
                n = marks.count([f"c{i}"])
                check(n == len(JOURNALISTS) + (i == 1),
                      f"release c{i}: {n} messages carry its text")
        finally:
            env.close()


def main():
    return td.run_cases(globals())


if __name__ == "__main__":
    sys.exit(main())
