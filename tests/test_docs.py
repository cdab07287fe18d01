#!/usr/bin/env python3
"""The manual pages, the settings and the example config against the code.

`test_docs.py --herald H --heraldd D --source S CASE` (ctest runs each as
docs/CASE):

  lint             mandoc -Tlint -Wwarning is silent on each page of
                   docs/man/, and mandoc and man -l render each
  options          every long option of every struct option table in
                   src/herald.c and src/herald_*.c (and the ones main()
                   compares by hand) is in herald.1, and herald.1 names no
                   other; every command of herald.c's commands[] has an
                   entry of its own, and no other command has one; the same
                   for src/heraldd.c and heraldd.8, and for
                   src/herald-web.c and herald-web.8
  settings         every setting `herald config --defaults` prints is in
                   herald.yaml.5 with that default, and the page documents
                   no other setting
  config_defaults  `herald config` with an empty herald.yaml, and with no
                   config at all, prints exactly what `--defaults` prints
  config_values    two configs that between them set every setting to a
                   value other than its default: `herald config` prints
                   each value (relative paths from the file's directory,
                   secrets as "(set)" and not read); a count or duration
                   given as 0 takes its default; an unknown key is refused
                   with its place
  example          contrib/herald.yaml.example loads (`herald config`:
                   every key valid, secret files not needed), has every
                   section, and with its files present (secrets 0600, DKIM
                   keys from `herald keygen`, paths moved into a scratch
                   directory) `herald check` accepts the sample release
                   with it
  version          herald --version and heraldd --version print the
                   project's version from CMakeLists.txt
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

A = None
PAGES = ("herald.1", "heraldd.8", "herald-web.8", "herald.yaml.5")


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def page(name):
    with open(os.path.join(A.source, "docs", "man", name),
              encoding="utf-8") as f:
        return f.read()


def source(name):
    with open(os.path.join(A.source, "src", name), encoding="utf-8") as f:
        return f.read()


def herald_config(*args, cwd=None, env=None):
    """`herald config ARGS` as {name: value}, in order; fails unless it
    exits 0 with nothing on stderr."""
    e = dict(os.environ)
    e.pop("HERALD_CONFIG", None)
    e.update(env or {})
    r = run([A.herald, "config"] + list(args), cwd=cwd, env=e)
    check(r.returncode == 0 and r.stderr == "",
          f"herald config {' '.join(args)}: exit {r.returncode}: "
          f"{r.stderr}")
    out = {}
    for line in r.stdout.splitlines():
        m = re.fullmatch(r"([a-z_.]+) =(?: (.*))?", line)
        check(m is not None, f"not a 'name = value' line: {line!r}")
        check(m.group(1) not in out, f"{m.group(1)} printed twice")
        out[m.group(1)] = m.group(2) or ""
    check(len(out) > 30, f"only {len(out)} settings printed")
    return out


def defaults():
    return herald_config("--defaults", cwd=tempfile.gettempdir())


# ---- lint ------------------------------------------------------------------

def case_lint():
    for name in PAGES:
        path = os.path.join(A.source, "docs", "man", name)
        r = run(["mandoc", "-Tlint", "-Wwarning", path])
        check(r.returncode == 0 and r.stdout == "" and r.stderr == "",
              f"mandoc -Tlint {name}: exit {r.returncode}\n{r.stdout}"
              f"{r.stderr}")
        r = run(["mandoc", "-Tutf8", path])
        plain = re.sub(".\b", "", r.stdout)  # no bold or underline
        check(r.returncode == 0 and "NAME" in plain
              and "DESCRIPTION" in plain,
              f"mandoc -Tutf8 {name}: exit {r.returncode} {r.stderr}")
        r = run(["man", "--warnings", "-l", path],
                env=dict(os.environ, MANPAGER="cat", MANWIDTH="80",
                         LC_ALL="C.UTF-8"))
        title = name.rsplit(".", 1)[0].upper()
        check(r.returncode == 0 and title in r.stdout and r.stderr == "",
              f"man -l {name}: exit {r.returncode}: {r.stderr}")
        print(f"{name}: clean, {len(r.stdout.splitlines())} lines")


# ---- options ---------------------------------------------------------------

def code_long_options(text):
    """The long options of every struct option table in a C file."""
    opts = set()
    for table in re.findall(r"struct option \w+\[\] = \{(.*?)\n\s*\};",
                            text, re.S):
        opts |= set(re.findall(
            r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument',
            table))
    return opts


def page_long_options(text):
    """The long options a page names: Fl \\-name."""
    return set(re.findall(r"Fl \\-([a-z][a-z0-9-]*)", text))


def compare(what, code, doc, page_name):
    missing = sorted(code - doc)
    extra = sorted(doc - code)
    check(not missing, f"{what} of the code not in {page_name}: {missing}")
    check(not extra, f"{what} in {page_name} that the code does not have: "
          f"{extra}")


def case_options():
    src = os.path.join(A.source, "src")
    files = ["herald.c"] + sorted(f for f in os.listdir(src)
                                  if re.fullmatch(r"herald_\w+\.c", f))
    code = set()
    for f in files:
        text = source(f)
        code |= code_long_options(text)
        # options main() compares by hand (herald --version, --help)
        code |= set(re.findall(r'strcmp\(argv\[1\], "--([a-z-]+)"\)', text))
    check({"to", "config", "store", "version"} <= code,
          f"options not found in the sources: {sorted(code)}")
    doc = page("herald.1")
    compare("options", code, page_long_options(doc), "herald.1")

    table = re.search(r"\} commands\[\] = \{(.*?)\n\};", source("herald.c"),
                      re.S)
    check(table is not None, "no commands[] table in herald.c")
    commands = set(re.findall(r'\{"([a-z]+)", cmd_\w+', table.group(1)))
    check(len(commands) >= 15, f"commands: {sorted(commands)}")
    entries = set(re.findall(r"^\.It Xo\n\.Cm ([a-z]+)", doc, re.M))
    entries |= set(re.findall(r"^\.It Cm ([a-z]+)", doc, re.M))
    compare("commands", commands, entries, "herald.1")
    print(f"herald.1: {len(code)} options, {len(commands)} commands")

    code = code_long_options(source("heraldd.c"))
    check({"config", "drain", "version"} <= code,
          f"heraldd options: {sorted(code)}")
    compare("options", code, page_long_options(page("heraldd.8")),
            "heraldd.8")
    print(f"heraldd.8: {len(code)} options")

    code = code_long_options(source("herald-web.c"))
    check({"config", "listen", "version"} <= code,
          f"herald-web options: {sorted(code)}")
    compare("options", code, page_long_options(page("herald-web.8")),
            "herald-web.8")
    print(f"herald-web.8: {len(code)} options")


# ---- settings ----------------------------------------------------------------

def page_settings(text):
    """herald.yaml.5's settings: {name: default as herald config prints
    it}. Each is ".It Ic NAME Pq default: Li VALUE" (or none, unset)."""
    out = {}
    for m in re.finditer(r"^\.It Ic (\S+)(.*)$", text, re.M):
        name, rest = m.group(1), m.group(2)
        d = re.fullmatch(r" Pq default: (?:Li (\S+)|(none|unset))", rest)
        check(d is not None, f"herald.yaml.5: {name} has no "
              f"'Pq default:' on its line: {m.group(0)!r}")
        check(name not in out, f"herald.yaml.5: {name} twice")
        out[name] = d.group(1) if d.group(1) is not None else \
            {"none": "", "unset": "(unset)"}[d.group(2)]
    return out


def case_settings():
    want = defaults()
    doc = page_settings(page("herald.yaml.5"))
    compare("settings", set(want), set(doc), "herald.yaml.5")
    wrong = [f"{k}: page says {doc[k]!r}, herald config --defaults "
             f"{want[k]!r}" for k in want if doc[k] != want[k]]
    check(not wrong, "defaults differ:\n  " + "\n  ".join(wrong))
    print(f"herald.yaml.5: {len(want)} settings, each with its default")


# ---- herald config ------------------------------------------------------------

def case_config_defaults():
    want = defaults()
    with tempfile.TemporaryDirectory(prefix="herald-docs-") as tmp:
        # no config at all: no --config, no HERALD_CONFIG, no ./herald.yaml
        check(herald_config(cwd=tmp) == want,
              "herald config without a config differs from --defaults")
        empty = os.path.join(tmp, "herald.yaml")
        open(empty, "w").close()
        got = herald_config("--config", empty, cwd=tmp)
        diff = [f"{k}: {got.get(k)!r} != {want.get(k)!r}"
                for k in sorted(set(got) | set(want))
                if got.get(k) != want.get(k)]
        check(not diff, "an empty herald.yaml differs from --defaults:\n  "
              + "\n  ".join(diff))
        check(herald_config(cwd=tmp) == want,
              "./herald.yaml (empty) differs from --defaults")
    print(f"empty config = --defaults ({len(want)} settings)")


def config_yaml(values):
    """A herald.yaml text from {dotted name: YAML value text}."""
    tree = {}
    for name, v in values.items():
        node = tree
        parts = name.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    lines = []

    def emit(node, indent):
        for k, v in node.items():
            if isinstance(v, dict):
                lines.append(f"{' ' * indent}{k}:")
                emit(v, indent + 2)
            else:
                lines.append(f"{' ' * indent}{k}: {v}")
    emit(tree, 0)
    return "\n".join(lines) + "\n"


def config_cases(tmp):
    """Two configs that between them set every setting to a value that is
    not its default: {name: (as written, as printed)}. password_file and
    password_env (secret_file, secret_env; move_to and delete) exclude each
    other, hence two."""
    dkim = ("[{domain: a.example.org, selector: s1, key: k1.pem}, "
            "{domain: a.example.org, selector: s2, key: /keys/k2.pem}]")
    dkim_out = (f"[{{domain: a.example.org, selector: s1, key: {tmp}/k1.pem}}"
                ", {domain: a.example.org, selector: s2, key: /keys/k2.pem}]")
    first = {
        "dkim": (dkim, dkim_out),
        "store": ("data/h.db", f"{tmp}/data/h.db"),
        "control": ("/run/herald-test.sock", "/run/herald-test.sock"),
        "relay.url": ("smtp://relay.example.org:587",
                      "smtp://relay.example.org:587"),
        "relay.ca_file": ("ca.pem", f"{tmp}/ca.pem"),
        "relay.user": ("press", "press"),
        "relay.password_file": ("relay.pass", "(set)"),
        "relay.allow_plain": ("true", "true"),
        "relay.helo": ("press.example.org", "press.example.org"),
        "relay.max_connections": ("9", "9"),
        "relay.max_per_connection": ("101", "101"),
        "relay.connect_timeout": ("31", "31s"),
        "relay.reply_timeout": ("2h", "2h"),
        "relay.dot_timeout": ("660s", "11m"),
        "relay.rate": ("2.5", "2.5"),
        "retry.min_backoff": ("1m", "1m"),
        "retry.max_backoff": ("3h", "3h"),
        "retry.lifetime": ("2d", "2d"),
        "retry.relay_min_backoff": ("5s", "5s"),
        "retry.relay_max_backoff": ("20m", "20m"),
        "limits.domain_per_minute": ("30", "30"),
        "daemon.lease": ("20m", "20m"),
        "daemon.grace": ("1m", "1m"),
        "daemon.batch": ("65", "65"),
        "bounces.domain": ("bounces.example.org", "bounces.example.org"),
        "bounces.secret_file": ("bounce.secret", "(set)"),
        "bounces.unsubscribe_url": ("https://example.org/u/{token}",
                                    "https://example.org/u/{token}"),
        "bounces.mailbox": ("imaps://u@imap.example.org/INBOX",
                            "imaps://u@imap.example.org/INBOX"),
        "bounces.soft_limit": ("4", "4"),
        "bounces.soft_window": ("7d", "7d"),
        "bounces.poll": ("90", "90s"),
        "bounces.imap.password_file": ("imap.pass", "(set)"),
        "bounces.imap.ca_file": ("/etc/ssl/imap-ca.pem",
                                 "/etc/ssl/imap-ca.pem"),
        "bounces.imap.move_to": ("Handled", "Handled"),
        "bounces.imap.idle": ("false", "false"),
        "bounces.imap.idle_renew": ("10m", "10m"),
        "bounces.imap.timeout": ("45s", "45s"),
        "bounces.imap.allow_plain": ("true", "true"),
        "web.listen": ("127.0.0.2:8443", "127.0.0.2:8443"),
        "web.tls_cert": ("web.pem", f"{tmp}/web.pem"),
        "web.tls_key": ("/etc/herald/web.key", "/etc/herald/web.key"),
        "web.base_url": ("https://press.example.org",
                         "https://press.example.org"),
        "web.session_idle": ("45m", "45m"),
        "web.users": ("[{name: maria, role: operator, password_hash: "
                      "'$argon2id$v=19$m=19456,t=2,p=1$" + "A" * 22 + "$" +
                      "B" * 43 + "'}, {name: ivan, role: viewer, "
                      "password_hash: '$argon2id$v=19$m=65536,t=3,p=4$" +
                      "C" * 22 + "$" + "D" * 43 + "'}]",
                      "[{name: maria, role: operator}, "
                      "{name: ivan, role: viewer}]"),
    }
    second = {
        "relay.user": ("press", "press"),
        "relay.password_env": ("HERALD_DOCS_NO_SUCH_VARIABLE", "(set)"),
        "bounces.domain": ("bounces.example.org", "bounces.example.org"),
        "bounces.secret_env": ("HERALD_DOCS_NO_SUCH_SECRET", "(set)"),
        "bounces.mailbox": ("imap://u@127.0.0.1/INBOX",
                            "imap://u@127.0.0.1/INBOX"),
        "bounces.imap.password_env": ("HERALD_DOCS_NO_SUCH_PASSWORD",
                                      "(set)"),
        "bounces.imap.delete": ("true", "true"),
    }
    return [first, second]


def case_config_values():
    want = defaults()
    with tempfile.TemporaryDirectory(prefix="herald-docs-") as tmp:
        cases = config_cases(tmp)
        covered = set().union(*cases)
        compare("settings", set(want), covered,
                "test_docs.py's config_cases (add the new setting there)")
        for n, values in enumerate(cases):
            same = [k for k, (_, out) in values.items() if out == want[k]]
            check(not same, f"not set to other than the default: {same}")
            path = os.path.join(tmp, f"herald-{n}.yaml")
            with open(path, "w") as f:
                f.write(config_yaml({k: v for k, (v, _) in values.items()}))
            # the secret files and variables do not exist: herald config
            # does not read them
            got = herald_config("--config", path, cwd=tmp)
            check(set(got) == set(want), f"{path}: other settings printed")
            wrong = []
            for k in want:
                exp = values[k][1] if k in values else want[k]
                if got[k] != exp:
                    wrong.append(f"{k}: printed {got[k]!r}, want {exp!r}")
            check(not wrong, f"{path}:\n  " + "\n  ".join(wrong))

        # a count or duration given as 0 takes its default
        zero = os.path.join(tmp, "zero.yaml")
        with open(zero, "w") as f:
            f.write("daemon: {lease: 0, batch: 0}\nretry: {lifetime: 0}\n"
                    "relay: {max_connections: 0}\n")
        got = herald_config("--config", zero, cwd=tmp)
        for k in ("daemon.lease", "daemon.batch", "retry.lifetime",
                  "relay.max_connections"):
            check(got[k] == want[k], f"{k}: 0 gave {got[k]!r}, not the "
                  f"default {want[k]!r}")

        # an unknown key: refused with its place, exit 78 (EX_CONFIG)
        bad = os.path.join(tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("relay:\n  url: maildir:out\n  max_conections: 4\n")
        r = run([A.herald, "config", "--config", bad])
        check(r.returncode == 78 and r.stdout == ""
              and f"{bad}:3:3: error: unknown field \"max_conections\" in "
                  "relay" in r.stderr,
              f"unknown key: exit {r.returncode}: {r.stderr}")
    print(f"{len(covered)} settings each set and printed")


# ---- the example config -------------------------------------------------------

def dotted(node, prefix=""):
    for k, v in node.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from dotted(v, name + ".")
        else:
            yield name


def case_example():
    example = os.path.join(A.source, "contrib", "herald.yaml.example")
    with open(example, encoding="utf-8") as f:
        text = f.read()
    want = defaults()
    got = herald_config("--config", example)
    tree = yaml.safe_load(text)
    keys = set(dotted(tree))
    check(keys <= set(want), f"keys no setting has: {keys - set(want)}")
    for section in ("store", "relay", "retry", "limits", "bounces",
                    "daemon", "dkim"):
        check(section in tree, f"the example has no {section}")
    for k in ("relay.user", "relay.password_file", "bounces.mailbox",
              "bounces.imap.password_file", "bounces.secret_file"):
        check(k in keys, f"the example does not show {k}")
    check(got["relay.url"].startswith("smtp://")
          and got["relay.allow_plain"] == "false",
          "the example's relay does not use STARTTLS")
    check(got["bounces.mailbox"].startswith("imap"),
          "the example's bounces are not read over IMAP")
    check(got["store"] == "/var/lib/herald/herald.db",
          f"store: {got['store']}")
    check(len(tree["dkim"]) == 2, "the example does not sign twice")
    for k in keys - {"dkim"}:
        check(got[k] not in ("", "(unset)"), f"{k} printed as {got[k]!r}")
    print(f"the example sets {len(keys)} of {len(want)} settings")

    # With the files it names: the same text, the paths under /etc/herald
    # and /var/lib/herald moved into a scratch directory.
    with tempfile.TemporaryDirectory(prefix="herald-docs-") as tmp:
        etc = os.path.join(tmp, "etc")
        os.makedirs(os.path.join(tmp, "var"))
        os.makedirs(etc)
        for top in ("templates", "lists"):
            shutil.copytree(os.path.join(A.source, top),
                            os.path.join(tmp, top))
        moved = text.replace("/etc/herald/", etc + "/").replace(
            "/var/lib/herald/", os.path.join(tmp, "var") + "/")
        cfg = os.path.join(etc, "herald.yaml")
        with open(cfg, "w") as f:
            f.write(moved)
        for name, data in (("relay.pass", b"relay password\n"),
                           ("imap.pass", b"imap password\n"),
                           ("bounce.secret", os.urandom(32))):
            fd = os.open(os.path.join(etc, name),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.close(fd)
        for entry in tree["dkim"]:
            alg = "ed25519" if "ed25519" in entry["key"] else "rsa"
            r = run([A.herald, "keygen", "--domain", entry["domain"],
                     "--selector", entry["selector"], "--algorithm", alg,
                     "--out", os.path.join(etc, entry["key"])], cwd=tmp)
            check(r.returncode == 0, f"keygen: {r.stderr}")
        r = run([A.herald, "check", "templates/report-launch", "--to",
                 "lists/journalists.yaml", "--config", cfg], cwd=tmp)
        check(r.returncode == 0,
              f"herald check with the example: exit {r.returncode}\n"
              f"{r.stderr}")
        check("signing: 2 DKIM keys" in r.stdout, r.stdout)
    print("herald check accepts the example with its files present")


# ---- version -----------------------------------------------------------------

def case_version():
    with open(os.path.join(A.source, "CMakeLists.txt")) as f:
        m = re.search(r"project\(herald VERSION ([0-9.]+)", f.read())
    check(m is not None, "no project(herald VERSION ...) in CMakeLists.txt")
    for prog, name in ((A.herald, "herald"), (A.heraldd, "heraldd")):
        r = run([prog, "--version"])
        check(r.returncode == 0 and r.stdout == f"{name} {m.group(1)}\n",
              f"{name} --version: exit {r.returncode}: {r.stdout!r}")
    print(f"herald and heraldd {m.group(1)}")


CASES = {
    "lint": case_lint,
    "options": case_options,
    "settings": case_settings,
    "config_defaults": case_config_defaults,
    "config_values": case_config_values,
    "example": case_example,
    "version": case_version,
}


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--heraldd", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    A = ap.parse_args()
    A.herald = os.path.abspath(A.herald)
    A.heraldd = os.path.abspath(A.heraldd)
    A.source = os.path.abspath(A.source)
    try:
        CASES[A.case]()
    except Failure as e:
        print("FAIL:", e)
        return 1
    print("ok:", A.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
