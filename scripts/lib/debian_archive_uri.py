"""Prints the URI of the main Debian archive configured in this machine's apt sources.

Reads deb822 `.sources` files and one-line `sources.list` files, and picks the first
`deb` entry whose suite is a plain release (e.g. `bookworm`, not `bookworm-security`),
so a deb-src entry for another suite can reuse the machine's own mirror.
"""
import glob
import os
import sys


def deb822_entries(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split():
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split(), fields.get("components", "").split()


def one_line_entries(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 3 and parts[0] == "deb":
                rest = parts[1:]
                if rest[0].startswith("["):
                    while rest and not rest[0].endswith("]"):
                        rest = rest[1:]
                    rest = rest[1:]
                if len(rest) >= 2:
                    yield rest[0], [rest[1]], rest[2:]


def main():
    files = sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    lists = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    entries = []
    for path in files:
        entries.extend(deb822_entries(path))
    for path in lists:
        if os.path.exists(path):
            entries.extend(one_line_entries(path))
    for uri, suites, components in entries:
        if "main" in components and any("-" not in s and "/" not in s for s in suites):
            print(uri.rstrip("/"))
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
