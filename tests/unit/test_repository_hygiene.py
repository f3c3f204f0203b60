"""The repository keeps its promises: generated code matches the contracts, notebooks carry no outputs,
the README states the defaults the code applies."""

import dataclasses
from pathlib import Path

from bookstore.notebook_tools import dirty_cells, notebooks_under
from bookstore.platform.settings import Settings
from bookstore.resilience import BreakerSettings
from bookstore.resilience.interceptor import BREAKER_VARIABLES
from bookstore.rpc import codegen
from bookstore.services.inventory.store import DEFAULT_INITIAL_STOCK, INITIAL_STOCK_ENV
from bookstore.services.payment.provider import DEFAULT_LIMIT_CENTS

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


def _readme_settings() -> dict[str, str]:
    """The README's settings table: ``{"BOOKSTORE_DEADLINE_S": "2.0", ...}``, variable to default."""
    rows = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`BOOKSTORE_"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def _code_default(variable: str) -> object:
    """The default the code applies when ``variable`` is unset; ``KeyError`` if no setting reads it."""
    # Read by one service alone, beside the code that uses them.
    by_one_service = {
        INITIAL_STOCK_ENV: DEFAULT_INITIAL_STOCK,
        "BOOKSTORE_PAYMENT_LIMIT_CENTS": DEFAULT_LIMIT_CENTS,
    }
    if variable in by_one_service:
        return by_one_service[variable]
    breaker_fields = {name: field for field, name in BREAKER_VARIABLES.items()}
    if variable in breaker_fields:
        return getattr(BreakerSettings(), breaker_fields[variable])
    name = variable.removeprefix("BOOKSTORE_").lower()
    if name == "db_url":
        name = "db_url_template"
    if name not in {field.name for field in dataclasses.fields(Settings)}:
        raise KeyError(variable)
    return getattr(Settings(), name)


def test_the_readme_settings_table_states_the_codes_defaults() -> None:
    compared = 0
    for variable, stated in _readme_settings().items():
        if variable == "BOOKSTORE_<NAME>_TARGET":
            continue
        default = _code_default(variable)  # a row for a variable nothing reads fails here
        if default is None:  # a breaker rule that is off unless set
            assert stated.startswith("0 (off)"), (variable, stated)
        elif isinstance(default, bool | int | float):
            stated_number = float(stated.split()[0])
            assert stated_number == float(default), f"README says {variable}={stated}, code {default}"
        elif isinstance(default, str) and default and default.isidentifier():
            assert stated == default, f"README says {variable}={stated}, code {default!r}"
        else:  # described rather than stated (a random secret, a path per service)
            continue
        compared += 1
    assert compared >= 15, f"only {compared} README defaults could be compared: has the table changed shape?"
