#!/usr/bin/env python3
"""Findings of the security review, one case each, against real servers on
127.0.0.1.

`test_review.py --herald H --heraldd D --source S CASE` (ctest runs each as
review/CASE):

  preview_symlink  herald preview --out does not follow a symbolic link
                   planted at the name of a message it writes: the file the
                   link points to is unchanged, the command says so and
                   fails, and leaves no temporary file
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_delivery as td  # noqa: E402

A = None
check = td.check


def case_preview_symlink():
    env = td.Env("maildir://{dir}/out")
    try:
        out = os.path.join(env.dir, "preview")
        os.mkdir(out, 0o700)
        victim = os.path.join(env.dir, "victim")
        with open(victim, "wb") as f:
            f.write(b"keep me\n")
        env.herald("preview", "templates/report-launch", "--to",
                   "lists/journalists.yaml", "--out", out)
        names = sorted(os.listdir(out))
        check(len(names) == td.SAMPLE, f"{len(names)} files written")
        planted = os.path.join(out, names[0])
        os.unlink(planted)
        os.symlink(victim, planted)
        r = env.herald("preview", "templates/report-launch", "--to",
                       "lists/journalists.yaml", "--out", out,
                       check_rc=False)
        err = r.stderr.decode()
        check(r.returncode != 0, f"preview over a planted link exited 0: "
              f"{err}{r.stdout.decode()}")
        check(names[0] in err and "link" in err,
              f"the refusal does not name the link: {err!r}")
        with open(victim, "rb") as f:
            check(f.read() == b"keep me\n", "the link's target was changed")
        check(os.path.islink(planted), "the planted link was replaced")
        left = [n for n in os.listdir(out) if not n.endswith(".eml")]
        check(not left, f"temporary files left: {left}")
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(td.run_cases(globals()))
