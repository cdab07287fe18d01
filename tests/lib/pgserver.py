#!/usr/bin/env python3
"""A real PostgreSQL server for herald's tests, in a directory of its own.

PgServer(directory).start() runs Debian's PostgreSQL 15 (initdb, then
the postgres binary) as the unprivileged user "postgres" (PostgreSQL
refuses to run as root), with its data, its socket and its log under
directory, listening on a free loopback port and on the socket. The
superuser "postgres" may connect over the socket without a password;
the role "herald" (password in directory/herald.password, a 0600 file)
may connect over TCP with SCRAM, as a real installation would let a
node in. stop() shuts the server down; remove the directory afterwards.

As a program, for ctest's fixtures:
    pgserver.py start DIR   start a server in DIR (made if missing) and
                            write DIR/conninfo (the superuser's libpq
                            key=value string), then return
    pgserver.py stop DIR    stop that server and remove DIR
    pgserver.py create DIR NAME   create database NAME owned by herald

Nothing listens outside 127.0.0.1.
"""
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time

BIN = "/usr/lib/postgresql/15/bin"
USER = "postgres"


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    def __init__(self, directory, durable=False, tls=None):
        """durable: commits reach the disk (fsync on, as a production
        server is; benchmarks compare that with SQLite's FULL), else off
        (tests: durability is PostgreSQL's business, not theirs)."""
        self.durable = durable
        # tls: (certificate file, key file): serve TLS and let TCP
        # clients in only over it (hostssl)
        self.tls = tls
        self.directory = os.path.abspath(directory)
        self.data = os.path.join(self.directory, "data")
        self.sockdir = os.path.join(self.directory, "run")
        self.log = os.path.join(self.directory, "server.log")
        self.port = None
        self.proc = None
        self.password = None

    # -- as the server's own user ------------------------------------
    def _as_user(self, argv, **kw):
        pw = pwd.getpwnam(USER)

        def demote():
            os.setgid(pw.pw_gid)
            os.setgroups([])
            os.setuid(pw.pw_uid)

        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "HOME": self.directory}
        return subprocess.run(argv, preexec_fn=demote, env=env, check=True,
                              **kw)

    def start(self):
        if not os.path.exists(os.path.join(BIN, "postgres")):
            raise RuntimeError("PostgreSQL 15 is not installed "
                               "(Debian: apt-get install postgresql)")
        pw = pwd.getpwnam(USER)
        os.makedirs(self.sockdir, exist_ok=True)
        for d in (self.directory, self.sockdir):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(self.directory, 0o755)
        self._as_user([os.path.join(BIN, "initdb"), "-D", self.data,
                       "-U", "postgres", "-A", "trust", "-E", "UTF8",
                       "--locale=C.UTF-8", "--no-sync"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = _free_port()
        conf = os.path.join(self.data, "postgresql.conf")
        with open(conf, "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.sockdir}'\n"
                    + ("" if self.durable else
                       # a test server: durability is PostgreSQL's
                       # business, not what these tests check (they kill
                       # herald, not the machine)
                       "fsync = off\nsynchronous_commit = off\n"
                       "full_page_writes = off\n") +
                    "max_connections = 200\n"
                    "shared_buffers = 64MB\n")
        if self.tls:
            for src, name in zip(self.tls, ("server.crt", "server.key")):
                dst = os.path.join(self.data, name)
                shutil.copy(src, dst)
                os.chown(dst, pw.pw_uid, pw.pw_gid)
                os.chmod(dst, 0o600)
            with open(conf, "a") as f:
                f.write("ssl = on\nssl_cert_file = 'server.crt'\n"
                        "ssl_key_file = 'server.key'\n")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all postgres trust\n"
                    "local all all scram-sha-256\n" +
                    ("hostssl" if self.tls else "host") +
                    " all all 127.0.0.1/32 scram-sha-256\n")
        self._launch()
        self.password = secrets.token_hex(16)
        self.sql("postgres",
                 f"CREATE ROLE herald LOGIN PASSWORD '{self.password}'")
        pwfile = os.path.join(self.directory, "herald.password")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        with open(os.path.join(self.directory, "conninfo"), "w") as f:
            f.write(self.conninfo() + "\n")
        return self

    def _launch(self):
        pw = pwd.getpwnam(USER)
        logf = open(self.log, "a")
        os.chown(self.log, pw.pw_uid, pw.pw_gid)

        def demote():
            os.setsid()
            os.setgid(pw.pw_gid)
            os.setgroups([])
            os.setuid(pw.pw_uid)

        self.proc = subprocess.Popen(
            [os.path.join(BIN, "postgres"), "-D", self.data],
            preexec_fn=demote, stdout=logf, stderr=logf,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        logf.close()
        sock = os.path.join(self.sockdir, f".s.PGSQL.{self.port}")
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("PostgreSQL did not start: " +
                                   open(self.log).read()[-2000:])
            if os.path.exists(sock):
                r = subprocess.run(
                    [os.path.join(BIN, "pg_isready"), "-q", "-h",
                     self.sockdir, "-p", str(self.port)])
                if r.returncode == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not answer within 60 s")

    def restart(self):
        """Stop the server (fast shutdown: every session is cut) and
        start it again on the same port and data."""
        self.stop(remove=False)
        self._launch()

    def stop(self, remove=False):
        pidfile = os.path.join(self.data, "postmaster.pid")
        pid = None
        if self.proc is not None:
            pid = self.proc.pid
        elif os.path.exists(pidfile):
            pid = int(open(pidfile).readline())
        if pid is not None:
            try:
                os.kill(pid, 2)  # SIGINT: fast shutdown
            except ProcessLookupError:
                pid = None
        deadline = time.time() + 30
        while pid is not None and time.time() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    break
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
            time.sleep(0.05)
        self.proc = None
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- connecting --------------------------------------------------
    def conninfo(self, db="postgres", user="postgres"):
        """libpq key=value for the superuser over the socket."""
        return f"host={self.sockdir} port={self.port} dbname={db} user={user}"

    def url(self, db, user="herald"):
        """A postgresql:// URL for the herald role over TCP (its password
        comes from herald.password through PGPASSFILE or PGPASSWORD)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def sql(self, db, statement):
        r = subprocess.run(
            [os.path.join(BIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-At", "-h", self.sockdir, "-p", str(self.port), "-U",
             "postgres", "-d", db, "-c", statement],
            capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {statement}: {r.stderr.strip()}")
        return r.stdout

    def create_db(self, name, owner="herald"):
        self.sql("postgres", f'CREATE DATABASE "{name}" OWNER {owner}')
        return name


def attach(directory):
    """The server pgserver.py start DIR left running."""
    srv = PgServer(directory)
    info = dict(kv.split("=", 1)
                for kv in open(os.path.join(srv.directory,
                                            "conninfo")).read().split())
    srv.port = int(info["port"])
    srv.password = open(os.path.join(srv.directory,
                                     "herald.password")).read().strip()
    return srv


def main(argv):
    if len(argv) >= 3 and argv[1] == "start":
        d = argv[2]
        if os.path.exists(os.path.join(d, "data", "postmaster.pid")):
            PgServer(d).stop(remove=True)
        shutil.rmtree(d, ignore_errors=True)
        srv = PgServer(d).start()
        print(srv.conninfo())
        return 0
    if len(argv) >= 3 and argv[1] == "stop":
        PgServer(argv[2]).stop(remove=True)
        return 0
    if len(argv) >= 4 and argv[1] == "create":
        attach(argv[2]).create_db(argv[3])
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
