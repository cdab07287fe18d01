#!/usr/bin/env python3
"""The bounce corpus test: herald's bounce parser against
../shared/bounces/expected.jsonl.

Runs the bounce_corpus tool over every file the expected results name,
prints one line per disagreement and the totals by field (is-bounce,
recipients, status, reason, hard), and fails when the tool fails on any
file (a sanitizer report, a refused message), when the corpus is missing,
or when a total falls below its floor. The floors sit a little below what
the parser achieves, so that a regression fails the test.

"hard" is compared as herald uses it: expected true must be hard (1),
expected false or null must not be (0 or -1); herald reports reasons
about the sender's own reputation as neither (-1) where the corpus says
false, so the exact three-way agreement is printed as well, without a
floor.
"""
import argparse
import json
import os
import subprocess
import sys

FLOORS = {"bounce": 490, "recipients": 497, "status": 383, "reason": 277,
          "hard": 473}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(args.corpus) or not os.path.isfile(args.expected):
        print(f"FAIL: bounce corpus missing: {args.corpus} / {args.expected}"
              " (the test needs ../shared beside the source tree)")
        return 1
    expected = [json.loads(l) for l in open(args.expected) if l.strip()]
    paths = [os.path.join(args.corpus, e["file"]) for e in expected]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        print(f"FAIL: {len(missing)} corpus files missing, e.g. {missing[0]}")
        return 1
    got = {}
    failed = False
    # in batches, so one file's crash names the batch
    for i in range(0, len(paths), 50):
        batch = paths[i:i + 50]
        r = subprocess.run([args.tool] + batch, capture_output=True,
                           text=True)
        if r.returncode != 0:
            print(f"FAIL: bounce_corpus exited {r.returncode} on "
                  f"{batch[0]} .. {batch[-1]}")
            print(r.stderr[-4000:])
            failed = True
        for line in r.stdout.splitlines():
            j = json.loads(line)
            got[j["file"]] = j
    n = len(expected)
    ok = dict.fromkeys(list(FLOORS) + ["hard3"], 0)
    for e, p in zip(expected, paths):
        g = got.get(p)
        if g is None:
            print(f"FAIL: no result for {e['file']}")
            failed = True
            continue
        checks = {}
        checks["bounce"] = g["bounce"] == e["bounce"]
        checks["recipients"] = (
            {a.lower() for a in g["recipients"]} ==
            {a.lower() for a in e.get("recipients", [])})
        es = e.get("status")
        checks["status"] = g["status"] == es
        er = e.get("reason")
        checks["reason"] = (g["reason"] == er) if e["bounce"] else (
            g["reason"] is None)
        eh = e.get("hard")
        checks["hard"] = (g["hard"] == 1) == (eh is True)
        checks["hard3"] = g["hard"] == {True: 1, False: 0, None: -1}[eh]
        for k, v in checks.items():
            ok[k] += v
        bad = [k for k in FLOORS if not checks[k]]
        if bad and args.verbose:
            print(f"{e['file']}: " + ", ".join(
                f"{k} want {e.get(k)!r} got {g.get(k)!r}" for k in bad))
    print(", ".join(f"{k} {ok[k]}/{n}" for k in FLOORS) +
          f" (hard three-way {ok['hard3']}/{n})")
    for k, floor in FLOORS.items():
        if ok[k] < floor:
            print(f"FAIL: {k} {ok[k]} below floor {floor}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
