"""Regenerate src/opsfleet/proto/ from proto/*.proto.

Usage:
    python scripts/gen_proto.py          # write the generated modules
    python scripts/gen_proto.py --check  # exit 1 when the committed modules are stale

The generated modules import each other relatively so they live inside the
``opsfleet.proto`` package; nothing in that folder is edited by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "src" / "opsfleet" / "proto"
BIN = Path(sys.executable).parent
INIT_TEXT = '"""Generated protobuf and gRPC modules (python scripts/gen_proto.py). Do not edit."""\n'


def generate(out: Path) -> None:
    sources = sorted(str(p.name) for p in PROTO_DIR.glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out.glob("*_pb2*.py*"):
        text = path.read_text()
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        path.write_text(text)
    (out / "__init__.py").write_text(INIT_TEXT)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if the generated code is stale")
    opts = parser.parse_args()
    if not opts.check:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for old in OUT_DIR.glob("*_pb2*.py*"):
            old.unlink()
        generate(OUT_DIR)
        print(f"generated into {OUT_DIR.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        names = sorted(p.name for p in fresh.iterdir())
        current = sorted(p.name for p in OUT_DIR.iterdir() if p.is_file())
        _, mismatch, errors = filecmp.cmpfiles(fresh, OUT_DIR, names, shallow=False)
        if mismatch or errors or names != current:
            print(
                "generated protobuf code is stale: run `python scripts/gen_proto.py` "
                f"(differs: {mismatch + errors}; files {names} vs {current})",
                file=sys.stderr,
            )
            return 1
    print("generated protobuf code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
