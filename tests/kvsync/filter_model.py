#!/usr/bin/env python3
"""filter_model: the model of test_filter.sh's random filtered syncs.

  filter_model.py gen SEED DIR     write, for seed SEED, into DIR:
      args        the filter options, one a line (--prefix P, --include X, ...)
      put1.json, del1.json, put2.json, del2.json   two rounds of changes for
                  SRC (kvctl bulk put / bulk delete files)
      want1, want2  what DST must hold after a filtered sync following each
                  round: the selected live keys, "key<TAB>value" sorted
      all2        what SRC holds after both rounds, the same way
  filter_model.py norm < EXPORT    a kvctl export as "key<TAB>value" lines

The matcher here is written from the rules in docs/kvsync.md ("Filters"),
by translation to a regular expression: not kvsync's code.
"""
import json
import random
import re
import sys

SEGMENTS = ["a", "b", "c", "users", "sess", "x1", "x2", "tmp"]


def pattern_regex(pat):
    out, i, n = [], 0, len(pat)
    while i < n:
        ch = pat[i]
        if ch == "\\":
            out.append(re.escape(pat[i + 1]))
            i += 2
        elif ch == "*":
            j = i
            while j < n and pat[j] == "*":
                j += 1
            out.append(".*" if j - i >= 2 else "[^:]*")
            i = j
        elif ch == "?":
            out.append("[^:]")
            i += 1
        elif ch == "[":
            j = i + 1
            neg = j < n and pat[j] in "!^"
            if neg:
                j += 1
            members = []
            first = True
            while pat[j] != "]" or first:
                first = False
                members.append(re.escape(pat[j]) if pat[j] != "-" else "\\-")
                j += 1
            body = "".join(members)
            out.append("(?!:)[" + ("^" if neg else "") + body + "]")
            i = j + 1
        else:
            out.append(re.escape(ch))
            i += 1
    rx = "".join(out)
    if pat.endswith(":"):
        rx += ".*"
    return re.compile(rx, re.DOTALL)


def selected(key, prefixes, rules):
    if prefixes and not any(key.startswith(p) for p in prefixes):
        return False
    for kind, rx in rules:
        if rx.fullmatch(key):
            return kind == "include"
    return True


def rand_key(r):
    return ":".join(r.choice(SEGMENTS) for _ in range(r.randint(1, 4)))


def rand_pattern(r):
    parts = []
    for _ in range(r.randint(1, 3)):
        parts.append(r.choice(SEGMENTS + ["*", "*", "**", "?", "x?", "[ab]", "[!a]*", "u*"]))
    pat = ":".join(parts)
    if r.random() < 0.3:
        pat += ":"
    return pat


def gen(seed, d):
    r = random.Random(seed)
    prefixes = [r.choice(["a", "b:", "users:", "x", "c:a"]) for _ in range(r.choice([0, 0, 1, 2]))]
    rules = [(r.choice(["include", "exclude"]), rand_pattern(r)) for _ in range(r.randint(0, 3))]
    if not prefixes and not rules:
        rules = [("exclude", rand_pattern(r))]
    with open(f"{d}/args", "w") as f:
        for p in prefixes:
            f.write(f"--prefix\n{p}\n")
        for kind, pat in rules:
            f.write(f"--{kind}\n{pat}\n")
    compiled = [(k, pattern_regex(p)) for k, p in rules]
    state = {}
    for rnd in (1, 2):
        puts = []
        for _ in range(r.randint(40, 80)):
            key = rand_key(r)
            value = f"v{rnd}-{r.randint(0, 10**6)}"
            item = {"key": key, "value": value}
            if r.random() < 0.2:
                item["expiration_ttl"] = 3600
            puts = [p for p in puts if p["key"] != key] + [item]
        live = sorted(set(state) | {p["key"] for p in puts})
        dels = r.sample(live, min(len(live), r.randint(3, 10)))
        dels = [k for k in dels if k not in {p["key"] for p in puts}]
        for p in puts:
            state[p["key"]] = p["value"]
        for k in dels:
            state.pop(k, None)
        json.dump(puts, open(f"{d}/put{rnd}.json", "w"))
        json.dump(dels, open(f"{d}/del{rnd}.json", "w"))
        with open(f"{d}/want{rnd}", "w") as f:
            for k in sorted(state):
                if selected(k, prefixes, compiled):
                    f.write(f"{k}\t{state[k]}\n")
    with open(f"{d}/all2", "w") as f:
        for k in sorted(state):
            f.write(f"{k}\t{state[k]}\n")


def norm():
    for item in sorted(json.load(sys.stdin), key=lambda x: x["key"]):
        print(f"{item['key']}\t{item['value']}")


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(int(sys.argv[2]), sys.argv[3])
    else:
        norm()
