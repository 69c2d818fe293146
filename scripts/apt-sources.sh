#!/usr/bin/env bash
# Print a deb822 apt source (deb and deb-src, component main) for Debian SUITE, using the Debian mirror this
# machine's own apt is configured with (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list), so no
# registry host name is ever written into the repository. Used with a private apt configuration.
#
#   scripts/apt-sources.sh bookworm
set -euo pipefail
SUITE="${1:?usage: $0 SUITE}"

python3 - "$SUITE" <<'PY'
import glob
import re
import sys

suite = sys.argv[1]
found = []  # (uri, signed_by) of entries that serve Debian's main archive


def consider(uris, suites, components, signed_by):
    # The main archive: a suite named like "bookworm" or "bookworm-updates" (not "-security"), component main.
    if "main" in components and any(re.fullmatch(r"[a-z]+(-updates)?", s) for s in suites):
        found.extend((uri, signed_by) for uri in uris if "security" not in uri)


for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in stanza.splitlines():
            if line.strip().startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if fields.get("enabled", ["yes"])[0] == "no" or "deb" not in fields.get("types", []):
            continue
        consider(fields.get("uris", []), fields.get("suites", []), fields.get("components", []),
                 " ".join(fields.get("signed-by", [])))
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        continue
    for line in lines:
        match = re.match(r"\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)", line)
        if match:
            options = match.group(1) or ""
            signed = re.search(r"signed-by=(\S+?)\]?(\s|$)", options)
            consider([match.group(2)], [match.group(3)], match.group(4).split(), signed.group(1) if signed else "")

if not found:
    sys.exit("apt-sources: no Debian main archive among this machine's apt sources")
uri, signed_by = found[0]
print("Types: deb deb-src")
print(f"URIs: {uri}")
print(f"Suites: {suite}")
print("Components: main")
print(f"Signed-By: {signed_by or '/usr/share/keyrings/debian-archive-keyring.gpg'}")
PY
