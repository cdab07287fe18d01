#!/usr/bin/env python3
"""The report-launch release as journalists read it, through `herald render`.

- English plain text reproduces the coalition's original release
  (tests/data/seed/) word for word once whitespace is collapsed.
- Every other language is a translation: its member names and country
  names are that language's (from lists/coalition.yaml), none of the
  original's sentences and no English function words remain outside
  organisation names, and the text is in the expected script with the
  language's own letters and words.
- HTML bodies are well-formed, declare the language, and escape values.
- Fallbacks: de-AT reads German, en-GB English, crh Ukrainian, be English,
  pt-BR and fr English.
The lists are read with PyYAML, independently of herald's loader.
"""
import argparse
import glob
import html
import html.parser
import os
import re
import subprocess
import sys

import yaml

FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg)
    return cond


def norm(text):
    return " ".join(text.split())


class Herald:
    def __init__(self, exe, source):
        self.exe = exe
        self.source = source

    def render(self, email, fmt="text"):
        r = subprocess.run(
            [self.exe, "render", "templates/report-launch", "--to",
             "lists/journalists.yaml", "--recipient", email, "--format", fmt],
            cwd=self.source, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise SystemExit(f"herald render {email} {fmt} failed "
                             f"({r.returncode}): {r.stderr.decode()}")
        return r.stdout.decode("utf-8")


class Balance(html.parser.HTMLParser):
    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.lang, self.text = [], [], None, []

    def handle_starttag(self, tag, attrs):
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def localized(v, lang):
    return v if isinstance(v, str) else v[lang]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--seed", required=True)
    a = ap.parse_args()
    h = Herald(a.herald, a.source)

    seeds = glob.glob(os.path.join(a.seed, "*.txt"))
    if len(seeds) != 1:
        raise SystemExit(f"expected one seed release in {a.seed}, "
                         f"found {seeds}")
    seed = open(seeds[0], encoding="utf-8").read()
    coal = yaml.safe_load(open(os.path.join(a.source, "lists/coalition.yaml"),
                               encoding="utf-8"))
    people = yaml.safe_load(open(os.path.join(a.source,
                                              "lists/journalists.yaml"),
                                 encoding="utf-8"))["journalists"]
    rel = yaml.safe_load(open(os.path.join(
        a.source, "templates/report-launch/release.yaml"), encoding="utf-8"))
    langs = rel["languages"]
    by_lang = {}
    for p in people:
        by_lang.setdefault(p["language"], []).append(p["email"])

    # 1. English text against the original release.
    en = h.render(by_lang["en"][0])
    if not check(norm(en) == norm(seed),
                 "English text differs from the seed release"):
        a_, b_ = norm(en), norm(seed)
        i = next((k for k in range(min(len(a_), len(b_)))
                  if a_[k] != b_[k]), min(len(a_), len(b_)))
        print("  first difference at character", i)
        print("  rendered:", a_[max(0, i - 60):i + 60])
        print("  seed:    ", b_[max(0, i - 60):i + 60])

    all_org_names = set()
    for o in coal["organisations"].values():
        for lang in langs:
            all_org_names.add(localized(o["name"], lang))
    seed_sentences = [s.strip() for s in re.split(r"(?<=[.:])\s", norm(seed))
                      if len(s.split()) >= 6]
    markers = {
        "ru": dict(script="cyrillic", letters="ыэ", absent="їєґі",
                   words=[" и ", " в ", "доклад"]),
        "uk": dict(script="cyrillic", letters="їєі", absent="ыэъ",
                   words=[" і ", " в ", "доповід"]),
        "de": dict(script="latin", letters="äöüß", absent="",
                   words=[" und ", " der ", " die "]),
        "cs": dict(script="latin", letters="řěů", absent="",
                   words=[" a ", " v ", "zpráv"]),
        "et": dict(script="latin", letters="õäü", absent="",
                   words=[" ja ", " on ", "raport"]),
    }

    for lang in langs:
        if lang == "en":
            continue
        check(lang in by_lang, f"no journalist reads {lang} exactly")
        email = by_lang[lang][0]
        text = h.render(email)
        # member names and country names in this language, from the list
        for mid in coal["members"]:
            org = coal["organisations"][mid]
            name = localized(org["name"], lang)
            countries = ", ".join(localized(coal["countries"][c], lang)
                                  for c in org["countries"])
            check(f"{name} ({countries})" in text,
                  f"{lang}: member line '{name} ({countries})' missing")
        for code, c in coal["countries"].items():
            if localized(c, lang) != localized(c, "en"):
                used = any(code in coal["organisations"][m]["countries"]
                           for m in coal["members"])
                if used:
                    check(localized(c, "en") + ")" not in text and
                          localized(c, "en") + "," not in text,
                          f"{lang}: English country name "
                          f"{localized(c, 'en')} in the member list")
        check(localized(coal["spokesperson"]["title"], lang) in text,
              f"{lang}: spokesperson title not in {lang}")
        # nothing of the original English remains
        for s in seed_sentences:
            check(s not in norm(text),
                  f"{lang}: English sentence kept: {s[:60]}")
        stripped = text
        for n in sorted(all_org_names, key=len, reverse=True):
            stripped = stripped.replace(n, " ")
        stripped = re.sub(r"\S+@\S+|<?https?://\S+", " ", stripped)
        low = " " + " ".join(stripped.lower().split()) + " "
        for w in (" the ", " and ", " of the ", " report ", " welcomes "):
            check(w not in low, f"{lang}: English word '{w.strip()}' in "
                  "the text outside organisation names")
        m = markers[lang]
        letters = [c for c in stripped if c.isalpha()]
        cyr = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
        share = cyr / max(1, len(letters))
        if m["script"] == "cyrillic":
            check(share > 0.9, f"{lang}: only {share:.0%} Cyrillic letters")
        else:
            check(share == 0, f"{lang}: Cyrillic letters in a Latin text")
        check(any(c in low for c in m["letters"]),
              f"{lang}: none of the letters {m['letters']}")
        for c in m["absent"]:
            check(c not in low, f"{lang}: letter {c} of another language")
        for w in m["words"]:
            check(w in low, f"{lang}: common word '{w.strip()}' missing")

    # HTML: well-formed, language declared, values escaped
    for lang in langs:
        body = h.render(by_lang[lang][0], "html")
        p = Balance()
        p.feed(body)
        p.close()
        check(not p.errors and not p.stack,
              f"{lang} html: unbalanced tags {p.errors} {p.stack}")
        check(p.lang == lang, f"{lang} html: <html lang> is {p.lang}")
        check("{{" not in body and "}}" not in body,
              f"{lang} html: template syntax left in the output")
        text = norm(" ".join(p.text))
        for mid in coal["members"]:
            name = localized(coal["organisations"][mid]["name"], lang)
            check(name in text, f"{lang} html: member {name} missing")
        cname = localized(coal["name"], lang)
        if "'" in cname:
            check(html.escape(cname, quote=True).replace("&#x27;", "&#39;")
                  in body, f"{lang} html: coalition name not escaped")
        check(f'href="{html.escape(coal["report"]["url"])}"' in body,
              f"{lang} html: report link missing")

    # fallbacks, by what the journalist actually receives
    headline = {}
    for lang in langs:
        first = h.render(by_lang[lang][0]).strip().splitlines()[0]
        headline[lang] = first
    expect = {"de-AT": "de", "en-GB": "en", "crh": "uk", "be": "en",
              "pt-BR": "en", "fr": "en"}
    for tag, lang in expect.items():
        if not check(tag in by_lang, f"no journalist with language {tag}"):
            continue
        for email in by_lang[tag]:
            first = h.render(email).strip().splitlines()[0]
            check(first == headline[lang],
                  f"{tag} ({email}) should read {lang}, got {first!r}")

    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("renderings: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
