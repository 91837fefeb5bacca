import json

import pandas as pd
import pytest

from bench.io import atomic_directory, canonical_json, sha256_json, write_csv, write_json


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
