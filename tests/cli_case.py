#!/usr/bin/env python3
"""Runs one herald command-line case from tests/data/cli/<case>/.

A case is data:
  cmd      the herald arguments, one per line (after the command name too);
           they run in a scratch copy of the repository's templates/ and
           lists/, so paths in messages are relative (lists/x.yaml:3:5).
  edits    optional JSON list of {"file", "old", "new"}: exact text
           replacements applied to the scratch copy (each "old" must occur
           exactly once, or the case is broken and fails).
  files/   optional files copied over the scratch copy (same paths).
  remove   optional: paths to delete from the scratch copy, one a line.
  expect   "exit: N", then lines that must each appear in stderr
           ("stderr: ...") or stdout ("stdout: ..."), or must not
           appear ("!stderr: ...", "!stdout: ..."). In those lines
           @@line:PATH:TEXT@@ is the line number of the first line of the
           scratch file PATH holding TEXT, and @@col:PATH:TEXT@@ the column
           (in characters) where TEXT starts on it, so cases keep working
           when the sample files around them change. A line prefixed
           "sqlite: " or "pg: " holds only for a store of that kind.

With --pg DIR (the directory of a PostgreSQL server tests/lib/pgserver.py
started) the case runs with its store in a new database of that server: a
herald.yaml in the scratch directory names it (and the role's password is
in a 0600 PGPASSFILE). A case that names its own config or store (--config,
--store in cmd) is about files, not stores: it is skipped (exit 77).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--pg", help="a pgserver.py server's directory")
    a = ap.parse_args()

    case = a.case
    with tempfile.TemporaryDirectory(prefix="herald-cli-") as tmp:
        for top in ("templates", "lists"):
            shutil.copytree(os.path.join(a.source, top), os.path.join(tmp, top))
        files = os.path.join(case, "files")
        if os.path.isdir(files):
            shutil.copytree(files, tmp, dirs_exist_ok=True)
        edits_path = os.path.join(case, "edits")
        if os.path.exists(edits_path):
            with open(edits_path, encoding="utf-8") as f:
                edits = json.load(f)
            for e in edits:
                p = os.path.join(tmp, e["file"])
                with open(p, "rb") as f:
                    text = f.read().decode("utf-8", "surrogateescape")
                n = text.count(e["old"])
                if n != 1:
                    print(f"case is broken: {e['old']!r} occurs {n} times "
                          f"in {e['file']}", file=sys.stderr)
                    return 2
                text = text.replace(e["old"], e["new"])
                with open(p, "wb") as f:
                    f.write(text.encode("utf-8", "surrogateescape"))
        remove_path = os.path.join(case, "remove")
        if os.path.exists(remove_path):
            with open(remove_path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        os.remove(os.path.join(tmp, line.strip()))

        def place(m):
            path, needle = m.group(2), m.group(3)
            with open(os.path.join(tmp, path), encoding="utf-8") as f:
                for n, text in enumerate(f, 1):
                    if needle in text:
                        if m.group(1) == "line":
                            return str(n)
                        return str(text.index(needle) + 1)
            raise SystemExit(f"case is broken: {needle!r} not in {path}")

        with open(os.path.join(case, "cmd"), encoding="utf-8") as f:
            args = [l.rstrip("\n") for l in f if l.strip()]
        env = dict(os.environ)
        env.pop("HERALD_CONFIG", None)
        db = srv = None
        if a.pg:
            if any(x.startswith(("--config", "--store")) for x in args):
                print(f"skipped: {os.path.basename(case)} names its own "
                      "config or store")
                return 77
            sys.path.insert(0, os.path.join(os.path.dirname(
                os.path.abspath(__file__)), "lib"))
            import pgserver
            srv = pgserver.attach(a.pg)
            db = srv.create_db(f"cli_{os.getpid()}")
            passfile = os.path.join(tmp, ".pgpass")
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, f"127.0.0.1:{srv.port}:*:herald:{srv.password}\n"
                     .encode())
            os.close(fd)
            env["PGPASSFILE"] = passfile
            with open(os.path.join(tmp, "herald.yaml"), "w") as f:
                f.write(f"store: {srv.url(db)}\n")
        try:
            r = subprocess.run([a.herald] + args, cwd=tmp,
                               capture_output=True, timeout=120, env=env)
        finally:
            if db is not None:
                srv.sql("postgres", f'DROP DATABASE "{db}" WITH (FORCE)')
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        ok = True
        with open(os.path.join(case, "expect"), encoding="utf-8") as f:
            expect = [re.sub(r"@@(line|col):([^:]+):(.+?)@@", place,
                             l.rstrip("\n")) for l in f if l.strip()]
        for line in expect:
            only, _, rest = line.partition(": ")
            if only in ("sqlite", "pg"):
                if (only == "pg") != bool(a.pg):
                    continue
                line = rest
            kind, _, want = line.partition(": ")
            if kind == "exit":
                if r.returncode != int(want):
                    print(f"exit status {r.returncode}, expected {want}")
                    ok = False
            elif kind in ("stderr", "stdout", "!stderr", "!stdout"):
                text = err if kind.endswith("stderr") else out
                found = want in text
                if found == kind.startswith("!"):
                    print(f"{'unexpected' if found else 'missing'} in "
                          f"{kind.lstrip('!')}: {want}")
                    ok = False
            else:
                print(f"case is broken: bad expect line {line!r}")
                return 2
        if not ok:
            print("---- stdout\n" + out + "---- stderr\n" + err)
            return 1
        print(f"ok: {os.path.basename(case)}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
