#!/usr/bin/env python3
"""Writes a single-layer OCI image archive from a root filesystem directory, without Docker.

Used by image.sh (the operator) and node.sh (the pause image). The archive is an OCI image
layout in a tar (`oci-layout`, `index.json`, `blobs/sha256/...`) that `ctr images import`,
`skopeo copy oci-archive:` and `podman load` accept. Everything that could vary between two
runs is fixed (file order, owners, times, gzip header), so the same inputs give the same bytes.

The image configuration comes either from flags or from the final stage of a Dockerfile
(--dockerfile), so the Dockerfile stays the one description of the image: only the instructions
a `FROM scratch` stage made of COPYs needs are understood, and anything else is an error rather
than something silently left out.

  oci-image.py --rootfs DIR --name REF --out FILE [--epoch SECONDS]
               (--dockerfile FILE [--build-arg K=V ...] | --entrypoint JSON [--user U])
  oci-image.py --inspect FILE    prints the config, the layer's file list and the digests as JSON
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import shlex
import sys
import tarfile
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def fail(msg):
    sys.exit(f"oci-image.py: {msg}")


def go_arch():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def dockerfile_config(path, build_args):
    """The config of the Dockerfile's last stage: LABEL, USER, EXPOSE, ENV, ENTRYPOINT, CMD."""
    with open(path) as f:
        text = f.read()
    # Join continuation lines, drop comments and the parser directive.
    lines, cur = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not cur and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            cur += stripped[:-1] + " "
            continue
        lines.append(cur + stripped)
        cur = ""
    froms = [i for i, line in enumerate(lines) if line.split()[0].upper() == "FROM"]
    last_from = froms[-1]
    args = {}
    # Global ARGs (before the first FROM) can be used in FROM lines only; the final stage sees
    # the ARGs it declares itself, with their --build-arg values.
    if lines[last_from].split()[1:] != ["scratch"]:
        fail(f"{path}: the final stage must be FROM scratch, not {lines[last_from]}")

    def expand(value):
        for name, val in sorted(args.items(), key=lambda kv: -len(kv[0])):
            value = value.replace("${" + name + "}", val).replace("$" + name, val)
        if "$" in value:
            fail(f"{path}: unknown variable in {value!r}")
        return value

    config = {"Labels": {}, "ExposedPorts": {}, "Env": []}
    for line in lines[last_from + 1 :]:
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = build_args.get(name, default)
        elif word == "COPY":
            continue  # the files are the rootfs given on the command line
        elif word == "LABEL":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                config["Labels"][key] = expand(value)
        elif word == "USER":
            config["User"] = expand(rest)
        elif word == "EXPOSE":
            for port in rest.split():
                config["ExposedPorts"][port if "/" in port else port + "/tcp"] = {}
        elif word == "ENV":
            for pair in shlex.split(rest):
                config["Env"].append(expand(pair))
        elif word in ("ENTRYPOINT", "CMD"):
            config[word.capitalize()] = json.loads(rest)
        elif word == "WORKDIR":
            config["WorkingDir"] = expand(rest)
        else:
            fail(f"{path}: {word} in the final stage is not understood by oci-image.py")
    return config


def layer_tar(rootfs, epoch):
    """A tar of rootfs with sorted entries, owned by root, all times set to epoch."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, rootfs)
            entries = [] if rel_dir == "." else [(rel_dir, dirpath)]
            entries += [(os.path.normpath(os.path.join(rel_dir, n)), os.path.join(dirpath, n)) for n in sorted(filenames)]
            # Symlinks to directories are listed in dirnames by os.walk; archive them as links.
            entries += [
                (os.path.normpath(os.path.join(rel_dir, n)), os.path.join(dirpath, n))
                for n in dirnames
                if os.path.islink(os.path.join(dirpath, n))
            ]
            for name, full in entries:
                info = tar.gettarinfo(full, arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = epoch
                if info.isdir():
                    info.mode = 0o755
                elif info.isfile():
                    info.mode = 0o755 if info.mode & 0o111 else 0o644
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def normalize(ref):
    """The full name containerd's CRI looks images up by: `name:tag` is docker.io/library/name:tag
    (as for `docker pull`), so a pod's `image: name:tag` finds the imported image."""
    first, _, rest = ref.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        ref = "docker.io/" + (ref if rest else "library/" + ref)
    return ref


def blob(blobs, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def write(args):
    epoch = int(args.epoch)
    if args.dockerfile:
        build_args = dict(a.split("=", 1) for a in args.build_arg)
        cfg = dockerfile_config(args.dockerfile, build_args)
    else:
        cfg = {"Entrypoint": json.loads(args.entrypoint)}
        if args.user:
            cfg["User"] = args.user
    cfg = {k: v for k, v in cfg.items() if v not in ({}, [])}

    raw = layer_tar(args.rootfs, epoch)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, filename="", compresslevel=6) as f:
        f.write(raw)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    blobs = {}
    layer = blob(blobs, gz.getvalue())
    config = {
        "created": created,
        "architecture": go_arch(),
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        "history": [{"created": created, "created_by": os.path.basename(sys.argv[0])}],
    }
    config_desc = blob(blobs, json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **config_desc},
        "layers": [{"mediaType": OCI_LAYER, **layer}],
    }
    if cfg.get("Labels"):
        manifest["annotations"] = cfg["Labels"]
    manifest_desc = blob(blobs, json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                **manifest_desc,
                "platform": {"architecture": go_arch(), "os": "linux"},
                # containerd names the imported image after the first annotation; other tools
                # read the tag from the second.
                "annotations": {"io.containerd.image.name": normalize(args.name), "org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    files = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", json.dumps(index, sort_keys=True, separators=(",", ":")).encode()),
    ] + [("blobs/sha256/" + d.split(":", 1)[1], data) for d, data in sorted(blobs.items())]
    tmp = args.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirname in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(dirname)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, epoch
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, args.out)
    print(manifest_desc["digest"])


def inspect(path):
    with tarfile.open(path) as tar:
        read = lambda name: tar.extractfile(name).read()
        index = json.loads(read("index.json"))
        desc = index["manifests"][0]
        manifest = json.loads(read("blobs/sha256/" + desc["digest"].split(":")[1]))
        config = json.loads(read("blobs/sha256/" + manifest["config"]["digest"].split(":")[1]))
        layer_bytes = read("blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1])
    files = []
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_bytes))) as layer:
        for m in layer.getmembers():
            kind = "dir" if m.isdir() else "link" if m.issym() else "file"
            entry = {"path": "/" + m.name, "type": kind, "mode": oct(m.mode), "uid": m.uid, "size": m.size}
            if m.issym():
                entry["target"] = m.linkname
            elif m.isfile():
                entry["sha256"] = hashlib.sha256(layer.extractfile(m).read()).hexdigest()
            files.append(entry)
    out = {
        "name": desc["annotations"].get("io.containerd.image.name"),
        "manifest_digest": desc["digest"],
        "config": config["config"],
        "architecture": config["architecture"],
        "compressed_size": manifest["layers"][0]["size"],
        "files": files,
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inspect")
    p.add_argument("--rootfs")
    p.add_argument("--name")
    p.add_argument("--out")
    p.add_argument("--epoch", default=os.environ.get("SOURCE_DATE_EPOCH", "0"))
    p.add_argument("--dockerfile")
    p.add_argument("--build-arg", action="append", default=[])
    p.add_argument("--entrypoint")
    p.add_argument("--user")
    args = p.parse_args()
    if args.inspect:
        inspect(args.inspect)
    elif args.rootfs and args.name and args.out and (args.dockerfile or args.entrypoint):
        write(args)
    else:
        p.error("need --inspect FILE, or --rootfs, --name, --out and --dockerfile or --entrypoint")


if __name__ == "__main__":
    main()
