#!/usr/bin/env python3
"""Secrets and permissions: what herald creates is private, what it is
given must be private, and no secret ever shows.

`test_secrets.py --herald H --heraldd D --source S CASE` (ctest runs each
as secrets/CASE, labelled reliability):

  permissions     under a umask of 000: the store (and its -wal/-shm), the
                  control socket and the Maildir herald writes are
                  0600/0700, and heraldd writes nothing under $TMPDIR
  readable_files  a relay password, return-path secret or DKIM key file
                  that group or others may read is refused, by name, and
                  its content is not printed
  control_socket  another user cannot connect to the control socket; with
                  the socket opened up by mistake, heraldd still refuses
                  them (SO_PEERCRED) and logs it; the owner gets answers
  no_core         heraldd runs with core files off and not dumpable
  keygen          herald keygen makes DKIM keys 0600 in a 0700 directory,
                  never over a key, and prints a DNS record that verifies
  help            --help of every command and of heraldd names no secret
  transcripts     (runs last) everything the suite's tests recorded of what
                  herald printed holds none of the secrets they used, in
                  clear or base64 (AUTH PLAIN/LOGIN)
"""
import base64
import glob
import os
import pwd
import shutil
import socket
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
SECRET = b"secrets-test-return-path-0123456789abcdef"
PASSWORD = "secrets-test-relay-Pa55-8c1f"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Env(td.Env):
    """test_delivery's scratch directory, config and commands, with secret
    files of any mode."""

    def private(self, name, data, mode=0o600):
        self.write_private(name, data)
        path = os.path.join(self.dir, name)
        os.chmod(path, mode)
        return path


def mode(path):
    return os.stat(path).st_mode & 0o777


def private_mode(path, want):
    m = mode(path)
    check(m & 0o077 == 0 and m & 0o700 == want & 0o700,
          f"{path}: mode {m:o}, want {want:o}")


def wait_for_file(path, timeout=20):
    ms.wait_until(lambda: os.path.exists(path), timeout, path)


# ---- cases -----------------------------------------------------------------


def case_permissions():
    """umask 000 and still private."""
    old = os.umask(0)
    try:
        env = Env("maildir:{dir}/outbox")
        try:
            env.private("bounce.secret", SECRET)
            env.herald("queue", "templates/report-launch", "--to",
                       "lists/journalists.yaml")
            for p in [env.store] + glob.glob(env.store + "-*"):
                private_mode(p, 0o600)
            tmp = tempfile.mkdtemp(prefix="herald-tmp-")
            os.chmod(tmp, 0o777)
            penv = dict(os.environ, TMPDIR=tmp)
            log = open(os.path.join(env.dir, "heraldd.log"), "wb")
            env.logs.append(log.name)
            outbox = os.path.join(env.dir, "outbox")
            p = subprocess.Popen([A.heraldd, "--config", env.cfg, "--relay",
                                  f"maildir:{outbox}"],
                                 cwd=A.source, stdout=log, stderr=log,
                                 env=penv)
            env.procs.append(p)
            sock = env.store + ".sock"
            wait_for_file(sock)
            private_mode(sock, 0o600)

            def delivered():
                new = os.path.join(outbox, "new")
                return os.path.isdir(new) and len(os.listdir(new)) == 47
            ms.wait_until(delivered, 60, "47 messages in the Maildir")
            # the release is read from the store: nothing under $TMPDIR
            check(os.listdir(tmp) == [],
                  f"heraldd wrote under $TMPDIR: {os.listdir(tmp)}")
            for d in ["", "new", "cur", "tmp"]:
                private_mode(os.path.join(outbox, d), 0o700)
            for n in os.listdir(os.path.join(outbox, "new")):
                private_mode(os.path.join(outbox, "new", n), 0o600)
            for p2 in [env.store] + glob.glob(env.store + "-*"):
                private_mode(p2, 0o600)
            shutil.rmtree(tmp, ignore_errors=True)
        finally:
            env.close()
    finally:
        os.umask(old)


def case_readable_files():
    """Secrets that others may read are refused by name, unprinted."""
    with ms.SmtpSink() as sink:
        dkim = subprocess.run(
            ["openssl", "genpkey", "-algorithm", "ed25519"],
            capture_output=True, check=True).stdout
        body = b"".join(l for l in dkim.splitlines()
                        if not l.startswith(b"-----"))
        transcript.secret(body)
        kinds = {
            "relay password": ("relay.pass", PASSWORD.encode() + b"\n",
                               "  user: press\n"
                               "  password_file: {path}\n"),
            "return-path secret": ("bounce.secret", SECRET + b"\n",
                                   "bounces:\n  domain: b.example.org\n"
                                   "  secret_file: {path}\n"),
            "DKIM key": ("dkim.key", dkim,
                         "dkim:\n  - {{domain: coalition.example.org, "
                         "selector: s1, key: {path}}}\n"),
        }
        for what, (name, data, yaml_text) in kinds.items():
            for bad in (0o644, 0o640, 0o604):
                env = Env(f"smtp://127.0.0.1:{sink.port}")
                try:
                    path = env.private(name, data, mode=bad)
                    with open(env.cfg, "a") as f:
                        f.write(yaml_text.format(path=path))
                    outs = []
                    for args in (["check", "templates/report-launch",
                                  "--to", "lists/journalists.yaml"],
                                 ["queue", "templates/report-launch",
                                  "--to", "lists/journalists.yaml"]):
                        r = env.herald(*args, check_rc=False)
                        out = (r.stdout + r.stderr).decode("utf-8",
                                                           "replace")
                        outs.append(out)
                        # check and queue send nothing: only heraldd (and
                        # proof) read the relay's password
                        if what == "relay password":
                            continue
                        check(r.returncode != 0 and path in out and
                              "readable by" in out,
                              f"{what} {bad:o}, herald {args[0]}: exit "
                              f"{r.returncode}: {out[-400:]}")
                    if what == "relay password":
                        r = env.herald("proof", "templates/report-launch",
                                       "--to", "lists/journalists.yaml",
                                       "--proof-to", "staff@example.org",
                                       check_rc=False)
                        out = (r.stdout + r.stderr).decode("utf-8",
                                                           "replace")
                        outs.append(out)
                        check(r.returncode != 0 and path in out,
                              f"proof with a {bad:o} password file: exit "
                              f"{r.returncode}: {out[-400:]}")
                    p = env.start("--drain")
                    rc = p.wait(timeout=60)
                    log = env.log_text()
                    check(rc != 0 and path in log, f"{what} {bad:o}: "
                          f"heraldd exit {rc}: {log[-400:]}")
                    everything = "".join(outs) + log
                    check(data.strip().decode() not in everything and
                          body.decode()[:20] not in everything,
                          f"{what}: printed")
                finally:
                    env.close()
        check(sink.count() == 0, "a message left with a refused secret")


def case_control_socket():
    """Only heraldd's own user may use its control socket."""
    env = Env("maildir:{dir}/outbox")
    try:
        env.herald("queue", "templates/report-launch", "--to",
                   "lists/journalists.yaml")
        env.start()
        sock = env.store + ".sock"
        wait_for_file(sock)
        nobody = pwd.getpwnam("nobody")
        os.chmod(env.dir, 0o755)

        def as_nobody(code):
            return subprocess.run(
                ["/usr/bin/python3", "-c", code, sock], capture_output=True,
                timeout=30, user=nobody.pw_uid, group=nobody.pw_gid,
                extra_groups=[])

        ping = ("import socket,sys\n"
                "s=socket.socket(socket.AF_UNIX)\n"
                "try:\n s.connect(sys.argv[1])\n"
                "except OSError as e:\n print('refused', e.errno); sys.exit(3)\n"
                "s.settimeout(5)\n"
                "try:\n s.sendall(b'ping\\n'); d=s.recv(64)\n"
                "except OSError:\n d=b''\n"
                "print('answer', d)\n")
        r = as_nobody(ping)
        check(r.returncode == 3 and b"refused 13" in r.stdout,
              f"another user connected: {r.stdout} {r.stderr}")
        # a socket opened up by mistake: still refused, and logged
        os.chmod(sock, 0o666)
        r = as_nobody(ping)
        check(r.returncode == 0 and b"answer b''" in r.stdout,
              f"another user was answered: {r.stdout} {r.stderr}")
        ms.wait_until(lambda: "control: refused a connection from uid "
                      f"{nobody.pw_uid}" in env.log_text(), 10,
                      "heraldd's log line about the refused connection")
        # the owner is answered, also when its request comes a moment
        # after the connection
        for pause in (0, 0.1):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            time.sleep(pause)
            s.sendall(b"ping\n")
            s.settimeout(5)
            check(s.recv(64) == b"pong\n",
                  f"the owner got no answer (request {pause} s late)")
            s.close()
    finally:
        env.close()


def case_no_core():
    """heraldd: RLIMIT_CORE 0 and not dumpable, whatever it inherited.
    Run as an unprivileged user: the /proc files of a process that is not
    dumpable belong to root, not to the user it runs as."""
    nobody = pwd.getpwnam("nobody")
    env = Env("maildir:{dir}/outbox")
    try:
        os.chown(env.dir, nobody.pw_uid, nobody.pw_gid)
        # nobody may not reach the build tree (a clone under /root is
        # 0700): run a copy of heraldd from the test's own directory
        heraldd = os.path.join(env.dir, "heraldd")
        shutil.copy(A.heraldd, heraldd)
        os.chmod(heraldd, 0o755)
        p = subprocess.Popen(
            ["bash", "-c", 'ulimit -c unlimited && exec "$@"', "heraldd",
             heraldd, "--config", env.cfg],
            cwd=env.dir, stdout=open(os.path.join(env.dir, "d.log"), "wb"),
            stderr=subprocess.STDOUT, user=nobody.pw_uid,
            group=nobody.pw_gid, extra_groups=[])
        env.procs.append(p)
        env.logs.append(os.path.join(env.dir, "d.log"))
        try:
            wait_for_file(env.store + ".sock")
        except TimeoutError:
            raise Failure(f"heraldd did not start: {env.log_text()}")
        with open(f"/proc/{p.pid}/limits") as f:
            core = [l for l in f if l.startswith("Max core file size")]
        check(core and core[0].split()[4:6] == ["0", "0"],
              f"core limit: {core}")
        st = os.stat(f"/proc/{p.pid}/status")
        check(st.st_uid == 0,
              f"heraldd is dumpable: /proc/{p.pid} belongs to uid "
              f"{st.st_uid}")
        # and a shell of the same user is, for comparison
        q = subprocess.Popen(["sleep", "30"], user=nobody.pw_uid,
                             group=nobody.pw_gid, extra_groups=[])
        try:
            check(os.stat(f"/proc/{q.pid}/status").st_uid == nobody.pw_uid,
                  "the comparison does not hold on this system")
        finally:
            q.kill()
            q.wait()
    finally:
        env.close()


def case_keygen():
    """herald keygen under umask 000: the key 0600 in a new 0700
    directory, never over an existing file; the DNS record it prints
    verifies a message herald signs with the key (python3-dkim)."""
    import dkim
    import re
    env = Env("maildir:{dir}/outbox")
    old = os.umask(0)
    try:
        keys = os.path.join(env.dir, "keys")
        records = {}
        for sel, alg in (("r1", "rsa"), ("e1", "ed25519")):
            path = os.path.join(keys, f"{sel}.key")
            r = env.herald("keygen", "--domain", "coalition.example.org",
                           "--selector", sel, "--algorithm", alg, "--out",
                           path)
            out = r.stdout.decode()
            private_mode(path, 0o600)
            private_mode(keys, 0o700)
            with open(path, "rb") as f:
                pem = f.read()
            transcript.secret(b"".join(l for l in pem.splitlines()
                                       if not l.startswith(b"-----")))
            check(b"PRIVATE KEY" in pem and pem.decode() not in out,
                  f"{alg}: key file or output wrong")
            m = re.search(rf"^{sel}\._domainkey\.coalition\.example\.org\. "
                          r"IN TXT \((.*)\)$", out, re.M)
            check(m, f"{alg}: no DNS record in: {out}")
            records[f"{sel}._domainkey.coalition.example.org."] = "".join(
                re.findall(r'"([^"]*)"', m.group(1)))
            r = env.herald("keygen", "--domain", "coalition.example.org",
                           "--selector", sel, "--algorithm", alg, "--out",
                           path, check_rc=False)
            with open(path, "rb") as f:
                check(r.returncode != 0 and f.read() == pem and
                      b"never overwrites" in r.stderr,
                      f"{alg}: an existing key was overwritten")
        with open(env.cfg, "a") as f:
            f.write("dkim:\n" + "".join(
                f"  - {{domain: coalition.example.org, selector: {sel}, "
                f"key: {keys}/{sel}.key}}\n" for sel in ("r1", "e1")))
        r = env.herald("preview", "templates/report-launch", "--to",
                       "lists/journalists.yaml", "--recipient",
                       "dokafor@harborview-sentinel.test")
        raw = r.stdout

        def dns(name, timeout=5):
            n = name.decode() if isinstance(name, bytes) else name
            return records.get(n, "").encode()
        d = dkim.DKIM(raw)
        sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
        check(len(sigs) == 2, f"{len(sigs)} signatures")
        for i in range(2):
            check(dkim.DKIM(raw).verify(idx=i, dnsfunc=dns),
                  f"signature {i} does not verify with the printed record")
    finally:
        os.umask(old)
        env.close()


def case_help():
    """Every --help: shown, and no secret in it."""
    env = Env("maildir:{dir}/outbox")
    try:
        env.private("bounce.secret", SECRET)
        r = subprocess.run([A.herald, "--help"], capture_output=True)
        cmds = [l.split()[0] for l in r.stdout.decode().splitlines()
                if l.startswith("  ") and l.split()]
        check(len(cmds) >= 10, f"commands: {cmds}")
        texts = [r.stdout]
        for c in cmds:
            r = subprocess.run([A.herald, c, "--help"], capture_output=True,
                               env=dict(os.environ, HERALD_CONFIG=env.cfg))
            check(r.returncode == 0 and b"usage:" in r.stdout,
                  f"herald {c} --help: {r.returncode} {r.stderr}")
            texts.append(r.stdout + r.stderr)
        r = subprocess.run([A.heraldd, "--help"], capture_output=True)
        texts.append(r.stdout + r.stderr)
        allout = b"".join(texts)
        transcript.record("--help", allout)
        check(SECRET not in allout, "a secret in --help")
    finally:
        env.close()


def case_transcripts():
    """No test secret in anything the suite recorded."""
    tdir = transcript.DIR
    check(tdir and os.path.isdir(tdir),
          f"no transcripts at {tdir}: run the whole suite (ctest), which "
          "runs this test last")
    secrets = set()
    for path in glob.glob(os.path.join(tdir, "secrets-*.hex")):
        with open(path) as f:
            for line in f:
                if line.strip():
                    secrets.add(bytes.fromhex(line.strip()))
    outputs = glob.glob(os.path.join(tdir, "out-*.log"))
    build = os.path.dirname(os.path.abspath(tdir))
    outputs += glob.glob(os.path.join(build, "Testing", "Temporary",
                                      "LastTest*.log*"))
    check(len(secrets) >= 3 and len(outputs) >= 3,
          f"{len(secrets)} secrets, {len(outputs)} transcripts: too few to "
          "mean anything; run the whole suite")
    forms = {}
    for s in secrets:
        variants = [s]
        for line in s.splitlines():  # each line of a PEM body
            if len(line) >= 16:
                variants.append(line)
        # what an SMTP or IMAP client sends for it
        for v in list(variants):
            variants.append(base64.b64encode(v))
            for user in (b"press", b"herald"):
                variants.append(base64.b64encode(b"\0" + user + b"\0" + v))
        forms[s] = list(dict.fromkeys(variants))
    scanned = 0
    leaks = []
    for path in outputs:
        with open(path, "rb") as f:
            data = f.read()
        scanned += len(data)
        for s, variants in forms.items():
            for v in variants:
                if v in data:
                    leaks.append(f"{path}: {s[:6]!r}... as {v[:12]!r}...")
    print(f"{len(secrets)} secrets looked for in {len(outputs)} "
          f"transcripts, {scanned} bytes")
    check(not leaks, "secrets in the suite's output:\n" + "\n".join(leaks))


if __name__ == "__main__":
    sys.exit(td.run_cases(globals()))
