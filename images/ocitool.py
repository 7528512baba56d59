#!/usr/bin/env python3
"""Helpers for images/build.sh: Debian dependency closure and deterministic OCI archives.

Two subcommands:

  resolve PKG...   prints "name version arch" for PKG and every library package it needs,
                   as apt's candidate versions; only dependencies named lib* are followed,
                   because an image needs shared libraries, not maintainer-script tooling.
  pack ...         turns a staged root filesystem into an OCI image layout archive
                   (one gzip layer, a config, a manifest, index.json and a docker-load
                   manifest.json) whose bytes depend only on the input files.

Only the standard library is used so that the build needs nothing beyond python3.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import tempfile

ARCH = "amd64"

# Library packages whose names do not start with "lib"; the ELF check in build.sh reports any
# library this misses, so the list only grows when that check says so.
LIBRARY_PACKAGES = {"zlib1g"}


def is_library(name):
    return name.startswith("lib") or name in LIBRARY_PACKAGES


def apt_show(names):
    """Returns {name: fields} for the candidate version of each name apt knows as a real package."""
    if not names:
        return {}
    # apt-cache exits non-zero when one name is purely virtual but still prints the others,
    # so its status is ignored and the stanzas it did print are used.
    proc = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", *sorted(names)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    found = {}
    for stanza in proc.stdout.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith((" ", "\t")):
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Package" in fields and fields["Package"] not in found:
            found[fields["Package"]] = fields
    return found


def apt_depends(roots):
    """Returns {package: [[alternative, ...], ...]} for everything reachable from roots.

    One `apt-cache depends --recurse` call walks the whole graph (apt-cache re-reads its lists
    on every call, about a second each, so one walk beats one call per level). A virtual
    alternative is replaced by the packages that provide it.
    """
    proc = subprocess.run(
        [
            "apt-cache",
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *roots,
        ],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    graph = {}
    clauses = None
    clause = []
    continues = False
    for line in proc.stdout.splitlines():
        if not line.startswith(" "):
            clauses = graph.setdefault(line.strip(), [])
            clause, continues = [], False
            continue
        if clauses is None:
            continue
        stripped = line.strip()
        if stripped.startswith(("|Depends:", "|PreDepends:", "Depends:", "PreDepends:")):
            name = stripped.split(":", 1)[1].strip()
            if not continues:
                clause = []
                clauses.append(clause)
            clause.append(name)
            continues = stripped.startswith("|")
        elif clause and clause[-1].startswith("<"):
            # An indented line under a virtual name is one package that provides it.
            clause.insert(len(clause) - 1, stripped)
    return graph


def cmd_resolve(args):
    graph = apt_depends(args.packages)
    chosen = set()
    pending = list(args.packages)
    while pending:
        name = pending.pop()
        if name in chosen:
            continue
        chosen.add(name)
        for clause in graph.get(name, []):
            libs = [alt for alt in clause if not alt.startswith("<") and is_library(alt)]
            if libs and not any(alt in chosen for alt in libs):
                # The first real alternative is what a plain `apt-get install` would pick.
                pending.append(libs[0])
    shown = apt_show(chosen)
    missing = sorted(chosen - set(shown))
    if missing:
        sys.exit(f"ocitool: apt has no candidate for {', '.join(missing)}")
    for name in sorted(shown):
        fields = shown[name]
        print(name, fields["Version"], fields.get("Architecture", ARCH))


class HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, inner):
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.inner.write(data)

    def tell(self):
        return self.size

    def flush(self):
        self.inner.flush()

    def digest(self):
        return "sha256:" + self.sha.hexdigest()


def walk_sorted(root):
    """Yields relative paths under root in a stable pre-order, parents before children."""
    stack = [""]
    while stack:
        rel = stack.pop()
        if rel:
            yield rel
        full = os.path.join(root, rel) if rel else root
        if os.path.isdir(full) and not os.path.islink(full):
            children = sorted(os.listdir(full), reverse=True)
            stack.extend(os.path.join(rel, name) if rel else name for name in children)


def write_layer(rootfs, epoch, out):
    """Writes the rootfs as a tar with normalized owners and times into out."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in walk_sorted(rootfs):
            full = os.path.join(rootfs, rel)
            info = tar.gettarinfo(full, arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = epoch
            info.pax_headers = {}
            if info.isreg():
                with open(full, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


def add_bytes(tar, name, data, epoch, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = epoch
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name, epoch):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = epoch
    tar.addfile(info)


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def cmd_pack(args):
    epoch = args.epoch
    created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".pack-") as work:
        raw_path = os.path.join(work, "layer.tar")
        gz_path = os.path.join(work, "layer.tar.gz")
        with open(raw_path, "wb") as raw:
            hashing = HashingWriter(raw)
            write_layer(args.rootfs, epoch, hashing)
            diff_id = hashing.digest()
        with open(raw_path, "rb") as raw, open(gz_path, "wb") as gz_file:
            hashing = HashingWriter(gz_file)
            # filename="" and mtime=0 keep the gzip header free of anything that varies.
            with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0, compresslevel=6) as gz:
                while chunk := raw.read(1 << 20):
                    gz.write(chunk)
            layer_digest, layer_size = hashing.digest(), hashing.size

        container_config = {"Env": args.env}
        if args.entrypoint is not None:
            container_config["Entrypoint"] = json.loads(args.entrypoint)
        if args.cmd is not None:
            container_config["Cmd"] = json.loads(args.cmd)
        if args.port:
            container_config["ExposedPorts"] = {port: {} for port in args.port}
        if args.workdir:
            container_config["WorkingDir"] = args.workdir
        if args.stop_signal:
            container_config["StopSignal"] = args.stop_signal
        if args.user:
            container_config["User"] = args.user
        config = {
            "architecture": ARCH,
            "os": "linux",
            "created": created,
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": args.history}],
        }
        config_bytes = canonical_json(config)
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        }
        manifest_bytes = canonical_json(manifest)
        manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest_bytes),
                    "platform": {"architecture": ARCH, "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": args.ref,
                        "org.opencontainers.image.ref.name": args.ref,
                    },
                }
            ],
        }
        # manifest.json lets `docker load` and podman read the same archive.
        docker_manifest = [
            {
                "Config": "blobs/sha256/" + config_digest.split(":", 1)[1],
                "RepoTags": args.repo_tag,
                "Layers": ["blobs/sha256/" + layer_digest.split(":", 1)[1]],
            }
        ]

        tmp_out = os.path.join(work, "image.tar")
        with tarfile.open(tmp_out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}), epoch)
            add_bytes(tar, "index.json", canonical_json(index), epoch)
            add_bytes(tar, "manifest.json", canonical_json(docker_manifest), epoch)
            add_dir(tar, "blobs", epoch)
            add_dir(tar, "blobs/sha256", epoch)
            blobs = [
                (config_digest, config_bytes),
                (manifest_digest, manifest_bytes),
            ]
            for digest, data in sorted(blobs):
                add_bytes(tar, "blobs/sha256/" + digest.split(":", 1)[1], data, epoch)
            info = tarfile.TarInfo("blobs/sha256/" + layer_digest.split(":", 1)[1])
            info.size = layer_size
            info.mode = 0o644
            info.mtime = epoch
            with open(gz_path, "rb") as layer:
                tar.addfile(info, layer)
        os.replace(tmp_out, args.out)
    print(f"{args.ref} {manifest_digest} layer={layer_digest} layer_size={layer_size}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    resolve = sub.add_parser("resolve")
    resolve.add_argument("packages", nargs="+")
    pack = sub.add_parser("pack")
    pack.add_argument("--rootfs", required=True)
    pack.add_argument("--out", required=True)
    pack.add_argument("--ref", required=True, help="full reference, e.g. docker.io/library/nginx:latest")
    pack.add_argument("--repo-tag", action="append", default=[], help="docker-load tag, e.g. nginx:latest")
    pack.add_argument("--env", action="append", default=[])
    pack.add_argument("--entrypoint", help="JSON array")
    pack.add_argument("--cmd", help="JSON array")
    pack.add_argument("--port", action="append", default=[], help="e.g. 80/tcp")
    pack.add_argument("--workdir")
    pack.add_argument("--user")
    pack.add_argument("--stop-signal")
    pack.add_argument("--history", default="rkube images/build.sh")
    pack.add_argument("--epoch", type=int, default=0)
    args = parser.parse_args()
    if args.command == "resolve":
        cmd_resolve(args)
    else:
        if not stat.S_ISDIR(os.stat(args.rootfs).st_mode):
            sys.exit(f"ocitool: {args.rootfs} is not a directory")
        cmd_pack(args)


if __name__ == "__main__":
    main()
