"""Reading text files (tbal.text_files): the three formats, sniffing, a BOM, quoted CSV fields with commas
and newlines, labels as names or integers, and errors that name the row."""

from __future__ import annotations

import json

import pytest

from tbal.errors import DataError
from tbal.text_files import read_text_records, sniff_text_format


def test_sniffing() -> None:
    assert sniff_text_format(b'  ["a"]') == "json"
    assert sniff_text_format(b'{"text": "a"}\n') == "jsonl"
    assert sniff_text_format(b'"a"\n"b"\n') == "jsonl"
    assert sniff_text_format(b"\xef\xbb\xbftext\na\n") == "csv"


def test_csv_with_a_bom_quotes_and_labels() -> None:
    data = '\ufeffid,text,label\n7,"one, two\nthree",pos\n8,plain,1\n9,unlabeled,\n'.encode()
    records = read_text_records(data, id_column="id", label_column="label")
    assert records.texts == ["one, two\nthree", "plain", "unlabeled"]
    assert records.ids == ["7", "8", "9"] and records.labels == ["pos", 1, None]


def test_json_and_jsonl() -> None:
    assert read_text_records(json.dumps(["a", "b"]).encode()).texts == ["a", "b"]
    assert read_text_records(b'"x"\n\n"y"\n', fmt="jsonl").texts == ["x", "y"]
    rows = b'{"t": "x", "k": 3}\n{"t": "y", "k": "z"}\n'
    records = read_text_records(rows, text_column="t", id_column="k")
    assert records.ids == ["3", "z"] and records.labels is None


@pytest.mark.parametrize(
    ("data", "kwargs", "says"),
    [
        (b"", {}, "the file is empty"),
        (b"[]", {}, "holds no text items"),
        (b'{"a": 1}', {"fmt": "json"}, "expected a JSON list"),
        (b'["a", {"text": ""}]', {}, "row 1: empty text"),
        (b'["a"]', {"id_column": "id"}, "row 0: a plain string has no 'id' field"),
        (b'[{"text": "a", "id": null}]', {"id_column": "id"}, "row 0: expected an id"),
        (b'[{"text": "a", "label": 1.5}]', {"label_column": "label"}, "row 0: expected a class name"),
        (b"text\na\n", {"fmt": "xml"}, "unknown text format"),
        (b"a\nb\n\xc3\x28\n", {}, "not UTF-8: invalid byte at offset 4 (line 3)"),
    ],
)
def test_errors_name_the_row(data: bytes, kwargs: dict[str, str], says: str) -> None:
    with pytest.raises(DataError, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_text_records(data, **kwargs)  # type: ignore[arg-type]
