import json

import pytest
import yaml

from bench.errors import TaskSpecError
from bench.tasks import BUILTIN_TASKS, list_tasks, load_task, parse_memory_bytes


def _write(tmp_path, **changes):
    raw = yaml.safe_load((BUILTIN_TASKS / "ricord-ct-covid-cls" / "task.yaml").read_text())
    raw.update(changes)
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_three_tasks_load():
    assert list_tasks() == ["ricord-1a-lesion-seg", "ricord-1c-cxr-appearance", "ricord-ct-covid-cls"]
    seg = load_task("ricord-1a-lesion-seg")
    assert seg.kind == "segmentation" and seg.primary_key == "dice" and seg.primary_direction == "higher"
    assert seg.target.labels == ["Infectious opacity", "Infectious TIB/micronodules", "Infectious cavity"]
    cxr = load_task("ricord-1c-cxr-appearance")
    assert cxr.output_columns == ["case_id", "typical", "indeterminate", "atypical", "negative",
                                  "mild", "moderate", "severe"]
    assert "severity.quadratic_weighted_kappa" in cxr.metric_keys


def test_spec_hash_is_stable_and_changes_with_content(tmp_path):
    spec = load_task("ricord-ct-covid-cls")
    assert spec.sha256 == load_task("ricord-ct-covid-cls").sha256
    changed = load_task(_write(tmp_path, description="another description"))
    assert changed.sha256 != spec.sha256


def test_public_dict_carries_no_labels_or_policies():
    public = load_task("ricord-1c-cxr-appearance").public_dict()
    text = json.dumps(public)
    assert "policies" not in public and "split" not in public and "bootstrap" not in public
    assert public["output"]["columns"][0] == "case_id"
    assert "seed" not in text


def test_unknown_metric_is_reported_with_its_field(tmp_path):
    heads = yaml.safe_load((BUILTIN_TASKS / "ricord-ct-covid-cls" / "task.yaml").read_text())["heads"]
    heads[0]["metrics"] = ["auroc", "accuracy_of_vibes"]
    with pytest.raises(TaskSpecError) as error:
        load_task(_write(tmp_path, heads=heads))
    message = str(error.value)
    assert "heads.0" in message and "accuracy_of_vibes" in message
    assert "known classification metrics" in message


def test_every_bad_field_is_listed(tmp_path):
    with pytest.raises(TaskSpecError) as error:
        load_task(_write(tmp_path, kind="regression", limits={"timeout_s": -1}, colour="blue"))
    message = str(error.value)
    assert "kind" in message and "limits.timeout_s" in message and "colour" in message
    assert str(tmp_path / "task.yaml") in message


def test_fractions_must_sum_to_one(tmp_path):
    split = {"seed": 1, "stratify": ["covid"], "fractions": {"train": 0.5, "validation": 0.2, "test": 0.2}}
    with pytest.raises(TaskSpecError, match="sum to 1"):
        load_task(_write(tmp_path, split=split))


def test_primary_metric_must_be_declared(tmp_path):
    with pytest.raises(TaskSpecError, match="primary_metric 'covid.f1' is not one of the task's metrics"):
        load_task(_write(tmp_path, primary_metric="covid.f1"))


def test_missing_task_names_known_ones():
    with pytest.raises(TaskSpecError, match="Known tasks: ricord-1a-lesion-seg"):
        load_task("no-such-task")


def test_not_yaml_is_reported(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text("id: [unclosed")
    with pytest.raises(TaskSpecError, match="not valid YAML"):
        load_task(path)


@pytest.mark.parametrize(("text", "expected"), [("512m", 512 * 1024**2), ("8g", 8 * 1024**3), ("4096", 4096)])
def test_memory_sizes(text, expected):
    assert parse_memory_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "g", "1.5g", "-1g", "0m", "8x"])
def test_bad_memory_sizes(text):
    with pytest.raises(ValueError):
        parse_memory_bytes(text)


def test_segmentation_policies_are_refused_for_classification(tmp_path):
    with pytest.raises(TaskSpecError, match="'worst' applies to segmentation only"):
        load_task(_write(tmp_path, policies={"missing_prediction": "worst"}))
