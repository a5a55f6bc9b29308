"""The archive's Glue columns (terraform/archive.tf) are the wire contracts' fields.

The verdict record is defined in lambda_function/service.py and the features in
lambda_function/schema.py; Terraform cannot import them, so these tests parse the HCL
(python-hcl2, checkov's parser) and hold the column lists equal to the Python definitions.
The evaluated tables (observations, labels) are checked on moto in
tests/integration/test_terraform_stack.py.
"""

from __future__ import annotations

import hcl2
import msgspec
import pytest

from config.settings import REPO_ROOT
from lambda_function.schema import FEATURES
from lambda_function.service import VerdictRecord

TERRAFORM = REPO_ROOT / "terraform"


@pytest.fixture(scope="module")
def archive_locals() -> dict:
    with (TERRAFORM / "archive.tf").open() as handle:
        blocks = hcl2.load(handle)["locals"]
    return {k: v[0] for block in blocks for k, v in block.items() if not k.startswith("__")}


def _hive_type(annotation: object) -> str:
    """The Hive type a JSON SerDe reads a VerdictRecord field as."""
    structs = [t for t in getattr(annotation, "__args__", (annotation,)) if isinstance(t, type)]
    struct = next((t for t in structs if issubclass(t, msgspec.Struct)), None)
    if struct is not None:  # shadow: its fields, the same way
        fields = msgspec.structs.fields(struct)
        return "struct<" + ",".join(f"{f.name}:{_hive_type(f.type)}" for f in fields) + ">"
    text = str(annotation)
    if "float" in text:
        return "double"
    if "tuple" in text:
        return "array<struct<field:string,message:string>>"
    if "dict" in text:  # misread: {"field", "value"}, the value a code or a number
        return "struct<field:string,value:string>"
    return "string"


def test_feature_columns_are_the_schema_features_in_order(archive_locals: dict) -> None:
    columns = archive_locals["archive_feature_columns"]
    assert [c["name"] for c in columns] == [f.name for f in FEATURES]
    for column, feature in zip(columns, FEATURES):
        assert column["type"] == ("double" if feature.is_numeric else "string"), feature.name


def test_verdict_columns_are_the_verdict_record_fields_in_order(archive_locals: dict) -> None:
    verdicts = archive_locals["archive_tables"]["verdicts"]
    fields = msgspec.structs.fields(VerdictRecord)
    assert [c["name"] for c in verdicts["columns"]] == [f.name for f in fields]
    assert [c["type"] for c in verdicts["columns"]] == [_hive_type(f.type) for f in fields]


def test_table_prefixes_are_the_archive_layout(archive_locals: dict) -> None:
    tables = archive_locals["archive_tables"]
    assert {name: (t["prefix"], t["partitioned"]) for name, t in tables.items()} == {
        "verdicts": ("archive/verdicts/", True),
        "observations": ("archive/observations/", True),
        "label_events": ("archive/label-events/", True),
        "labels": ("labels/", False),
    }


def test_label_event_columns_are_what_monitoring_writes(archive_locals: dict) -> None:
    """The cycle writes label events (monitoring.archive.LABEL_EVENT_COLUMNS) that Athena
    reads through this table: a column missing here (``waiting``) would read as absent."""
    from monitoring.archive import LABEL_EVENT_COLUMNS

    hive = {"VARCHAR": "string", "BOOLEAN": "boolean"}
    events = archive_locals["archive_tables"]["label_events"]
    assert [(c["name"], c["type"]) for c in events["columns"]] == [
        (name, hive[kind]) for name, kind in LABEL_EVENT_COLUMNS
    ]
