"""Generate the Python gRPC code from the .proto contracts.

The contracts live in ``protos/bookstore/rpc/v1``; their package path mirrors the Python
package, so the generated modules import each other as ``bookstore.rpc.v1.*``. The
generated files are committed (learners read them, and nothing compiles at import time)
and never edited by hand: ``make proto`` rewrites them, and a test fails when the
committed files differ from what the pinned grpcio-tools produces.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "protos"
PROTO_DIR = PROTO_ROOT / "bookstore" / "rpc" / "v1"
GENERATED_DIR = REPO_ROOT / "bookstore" / "rpc" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Run protoc over every contract, writing under ``out_root/bookstore/rpc/v1``."""
    from grpc_tools import protoc  # imported late: only code generation needs it

    out_root.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see its message above")
    produced = out_root / "bookstore" / "rpc" / "v1"
    return sorted(p for p in produced.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def stale_files() -> list[str]:
    """Names of generated files that are missing, extra or different from a fresh run."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_bytes() for p in generate(Path(tmp))}
    committed = {
        p.name: p.read_bytes() for p in GENERATED_DIR.iterdir() if p.name.endswith(GENERATED_SUFFIXES)
    }
    names = sorted(set(fresh) | set(committed))
    return [n for n in names if fresh.get(n) != committed.get(n)]


def main() -> int:
    for old in GENERATED_DIR.iterdir():
        if old.name.endswith(GENERATED_SUFFIXES):
            old.unlink()
    for path in generate(REPO_ROOT):
        print(f"generated {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
