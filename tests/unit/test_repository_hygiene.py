"""The repository keeps its promises: generated code matches the contracts, notebooks carry no outputs."""

from pathlib import Path

from bookstore.notebook_tools import dirty_cells, notebooks_under
from bookstore.rpc import codegen

REPO = Path(__file__).resolve().parents[2]


def test_committed_generated_code_matches_what_the_pinned_grpcio_tools_produce() -> None:
    stale = codegen.stale_files()
    assert stale == [], f"run `make proto` and commit: these differ from a fresh generation: {stale}"


def test_every_contract_has_generated_modules() -> None:
    for proto in codegen.proto_files():
        for suffix in codegen.GENERATED_SUFFIXES:
            assert (codegen.GENERATED_DIR / f"{proto.stem}{suffix}").exists()


def test_committed_notebooks_carry_no_outputs_or_execution_counts() -> None:
    notebooks = notebooks_under([REPO / "notebooks", REPO / "solutions", REPO / "exercises"])
    assert notebooks, "the course has no notebooks"
    dirty = {str(p.relative_to(REPO)): dirty_cells(p) for p in notebooks if dirty_cells(p)}
    assert dirty == {}, f"run `make strip`: these notebooks carry outputs in cells {dirty}"
