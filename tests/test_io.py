import json

import numpy as np
import pandas as pd
import pydantic
import pytest

from bench.errors import StoreError
from bench.io import (
    atomic_directory,
    canonical_json,
    csv_text,
    float_text,
    is_missing,
    json_number,
    read_yaml_model,
    rounded,
    sha256_json,
    write_csv,
    write_json,
)


def test_canonical_json_sorts_keys_and_has_no_whitespace():
    assert canonical_json({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


def test_sha256_json_is_key_order_independent():
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})
    assert sha256_json({"a": 1}) == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_write_json_is_sorted_with_newline(tmp_path):
    path = write_json(tmp_path / "sub" / "x.json", {"b": 1, "a": 2})
    assert path.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_write_csv_uses_lf_and_no_index(tmp_path):
    path = write_csv(tmp_path / "t.csv", pd.DataFrame({"case_id": ["a", "b"], "v": [0.5, 1 / 3]}))
    assert path.read_bytes() == b"case_id,v\na,0.5\nb,0.3333333333\n"


def test_atomic_directory_renames_on_success(tmp_path):
    with atomic_directory(tmp_path / "run") as tmp:
        (tmp / "f.json").write_text(json.dumps({}))
        assert not (tmp_path / "run").exists()
    assert (tmp_path / "run" / "f.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_directory_leaves_nothing_on_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(tmp_path / "run") as tmp:
            (tmp / "half.csv").write_text("case_id\n")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_files_and_directories_get_ordinary_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "x.json", {})
        with atomic_directory(tmp_path / "d") as tmp:
            (tmp / "f").write_text("")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_numbers_are_written_with_ten_significant_digits_and_nan_as_null():
    assert float_text(2 / 3) == "0.6666666667"
    assert rounded({"a": [2 / 3, float("nan")], "b": np.float32(0.5), "c": np.int64(3)}) == {
        "a": [0.6666666667, None], "b": 0.5, "c": 3}
    assert json_number(float("inf")) is None and json_number(np.float64(1.5)) == 1.5
    assert is_missing(float("nan")) and is_missing(None) and not is_missing("") and not is_missing(0.0)
    assert csv_text(pd.DataFrame({"x": [1 / 3, np.nan], "y": [1, 2]})) == "x,y\n0.3333333333,1\n,2\n"


def test_yaml_models_list_every_invalid_field(tmp_path):
    class Config(pydantic.BaseModel):
        name: str
        count: int

    path = tmp_path / "c.yaml"
    path.write_text("count: many\n")
    with pytest.raises(StoreError) as caught:
        read_yaml_model(path, Config, error=StoreError, what="fields", docs="the manual")
    assert str(caught.value) == (f"{path}: 2 invalid field(s):\n  - name: Field required\n"
                                 "  - count: Input should be a valid integer, unable to parse string as an "
                                 "integer\nFix the fields above; see the manual.")
    path.write_text("- a list\n")
    with pytest.raises(StoreError, match="expected a mapping of fields, got list"):
        read_yaml_model(path, Config, error=StoreError, what="fields", docs="the manual")
    path.write_text("name: [unclosed\n")
    with pytest.raises(StoreError, match="not valid YAML"):
        read_yaml_model(path, Config, error=StoreError, what="fields", docs="the manual")
