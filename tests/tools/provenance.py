#!/usr/bin/env python3
"""Writes the SLSA v1 provenance predicate that release.sh attaches with `cosign attest --type
slsaprovenance1`: what was built (the pushed references and digests), from which source (the
repository and commit, and whether the tree had uncommitted changes), by which builder (the
GitHub workflow run when GITHUB_ACTIONS is set, else this machine's release.sh) and with which
tools. cosign wraps it in an in-toto statement whose subject is the artifact it is attached to.
"""

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys


def git(root, *args):
    try:
        return subprocess.run(["git", "-C", root, *args], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def split_digest(ref):
    name, sep, digest = ref.rpartition("@")
    algo, _, value = digest.partition(":")
    if not sep or algo != "sha256" or len(value) != 64:
        sys.exit(f"provenance.py: {ref!r} is not NAME@sha256:<64 hex digits>")
    return name, {"sha256": value}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--subject", action="append", default=[], help="REF@sha256:...")
    ap.add_argument("--material", action="append", default=[], help="NAME=sha256:...")
    ap.add_argument("--tool", action="append", default=[], help="NAME=VERSION")
    a = ap.parse_args()

    commit = git(a.root, "rev-parse", "HEAD") or "unknown"
    remote = git(a.root, "remote", "get-url", "origin")
    dirty = bool(git(a.root, "status", "--porcelain", "--untracked-files=no"))
    env = os.environ
    if env.get("GITHUB_ACTIONS") == "true":
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo = env.get("GITHUB_REPOSITORY", "")
        source = f"git+{server}/{repo}"
        builder = f"{server}/{repo}/.github/workflows/release.yml@{env.get('GITHUB_REF', '')}"
        invocation = f"{server}/{repo}/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
    else:
        source = f"git+{remote}" if remote else "git+file://" + os.path.abspath(a.root)
        builder = f"tests/tools/release.sh on {socket.gethostname()}"
        invocation = ""

    materials = [{"uri": source, "digest": {"gitCommit": commit}}]
    for m in a.material:
        name, _, digest = m.partition("=")
        algo, _, value = digest.partition(":")
        materials.append({"name": name, "digest": {algo: value}})
    products = []
    for ref in a.subject:
        name, digest = split_digest(ref)
        products.append({"name": name, "digest": digest})

    predicate = {
        "buildDefinition": {
            "buildType": "https://changeorder.io/release-sh/v1",
            "externalParameters": {
                "source": {"uri": source, "digest": {"gitCommit": commit}},
                "uncommittedChanges": dirty,
            },
            "internalParameters": {"tools": dict(t.partition("=")[::2] for t in a.tool)},
            "resolvedDependencies": materials,
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {
                "invocationId": invocation,
                "startedOn": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "byproducts": products,
        },
    }
    with open(a.out, "w") as f:
        json.dump(predicate, f, indent=2)


if __name__ == "__main__":
    main()
