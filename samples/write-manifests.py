#!/usr/bin/env python3
"""Rewrites each sample's manifest.json file list with current MD5 checksums (run after editing a sample)."""
import hashlib
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent

for manifest_path in sorted(HERE.glob("*/manifest.json")):
    root = manifest_path.parent
    manifest = json.loads(manifest_path.read_text())
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == "manifest.json" or "__pycache__" in rel or rel.startswith("rsconnect-python/"):
            continue
        files[rel] = {"checksum": hashlib.md5(path.read_bytes()).hexdigest()}
    manifest["files"] = files
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{root.name}: {len(files)} files")
