import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from bench.errors import StoreError
from bench.store import EntryId, Store, make_run_id, plain, slugify
from bench.tasks import load_task
from tests.helpers.board_fixtures import EVIL, SEG_TASK, build_fake_store, receipt, seg_run

REPO = Path(__file__).resolve().parent.parent


def test_make_run_id_is_utc_time_random_bits_and_hash_prefix():
    started = datetime(2026, 3, 4, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    run_id = make_run_id(started, "0123456789abcdef")
    assert re.fullmatch(r"20260304T050809\.123456Z-[0-9a-f]{4}-01234567", run_id), run_id
    # the same inputs at the same microsecond (concurrent scorers) still get distinct ids
    assert len({make_run_id(started, "0123456789abcdef") for _ in range(50)}) > 45
    later = make_run_id(started + timedelta(microseconds=1), "00000000")
    assert later > run_id


def test_make_run_id_refuses_naive_time_and_bad_hash():
    with pytest.raises(StoreError, match="no timezone"):
        make_run_id(datetime(2026, 1, 1), "0" * 64)
    with pytest.raises(StoreError, match="hex"):
        make_run_id(datetime(2026, 1, 1, tzinfo=UTC), "xyz")


def test_make_run_id_takes_the_receipts_utc_text_too():
    run_id = make_run_id("2026-03-04T05:08:09Z", "0123456789abcdef")
    assert re.fullmatch(r"20260304T050809\.000000Z-[0-9a-f]{4}-01234567", run_id), run_id
    with pytest.raises(StoreError, match="yyyy-mm-ddTHH:MM:SSZ"):
        make_run_id("2026-03-04 05:08", "0" * 64)


def test_slugify_keeps_safe_names_and_hashes_others():
    assert slugify("unet-baseline_v1.2") == "unet-baseline_v1.2"
    evil = slugify(EVIL)
    assert evil.startswith("script-alert-1-script-") and len(evil) == len("script-alert-1-script-") + 16
    assert slugify("../etc") != slugify("..-etc") and "/" not in slugify("../etc")
    assert slugify(".hidden").startswith("hidden-")
    with pytest.raises(StoreError):
        slugify("  ")


def test_write_and_read_back(tmp_path):
    store = build_fake_store(tmp_path / "results")
    runs = store.runs()
    # sorted by task, team slug, entry slug, run id ("Lab $x$" and "<b>bold</b>" are hashed slugs)
    assert [(r.task, r.team, r.name, r.split) for r in runs] == [
        (SEG_TASK, "Lab $x$", "threshold-hu", "test"),
        (SEG_TASK, "RSNA", "unet-baseline", "validation"), (SEG_TASK, "RSNA", "unet-baseline", "test"),
        (SEG_TASK, "<b>bold</b>", EVIL, "test"),
        ("ricord-1c-cxr-appearance", "Team A", "cxr-prior", "test"),
        ("ricord-1c-cxr-appearance", "Team A", "cxr-resnet", "test"),
    ]
    evil = store.latest(SEG_TASK, EntryId("<b>bold</b>", EVIL))
    assert evil.name == EVIL and evil.submission == f"{slugify('<b>bold</b>')}/{slugify(EVIL)}"
    assert evil.path == tmp_path / "results" / SEG_TASK / slugify("<b>bold</b>") / slugify(EVIL) / evil.run_id
    assert evil.per_case["case_id"].tolist() == [f"c{i:02d}" for i in range(8)]
    assert evil.per_case["dice"].iloc[0] == pytest.approx(0.78)
    assert [p.name for p in evil.logs] == ["stderr.txt", "stdout.txt"]
    assert json.loads((evil.path / "receipt.json").read_text())["submission"]["name"] == EVIL
    with pytest.raises(TypeError):
        evil.receipt["task"]["id"] = "other"  # read-only view
    assert plain(evil.receipt)["task"]["id"] == SEG_TASK


def test_latest_picks_latest_start_per_split(tmp_path):
    store = build_fake_store(tmp_path / "results")
    unet = EntryId("RSNA", "unet-baseline")
    assert store.latest(SEG_TASK, unet).split == "test"
    assert store.latest(SEG_TASK, unet, split="validation").per_case.shape[0] == 4
    assert store.latest(SEG_TASK, EntryId("RSNA", "nobody")) is None
    assert store.latest(SEG_TASK, EntryId("Other team", "unet-baseline")) is None
    keys = [(r.task, r.name, r.split) for r in store.latest_runs(SEG_TASK)]
    assert keys == [(SEG_TASK, "threshold-hu", "test"), (SEG_TASK, "unet-baseline", "test"),
                    (SEG_TASK, "unet-baseline", "validation"), (SEG_TASK, EVIL, "test")]


def test_two_teams_with_the_same_entry_name_never_collide(tmp_path):
    spec = load_task(SEG_TASK)
    store = Store(tmp_path)
    started = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    seg_run(store, spec, "model", [0.9, 0.8], team="Team A", started=started)
    seg_run(store, spec, "model", [0.0, 0.0], team="Team B", started=started)
    runs = store.latest_runs(SEG_TASK)
    assert [(r.team, r.name, r.per_case["dice"].tolist()) for r in runs] == [
        ("Team A", "model", [0.9, 0.8]), ("Team B", "model", [0.0, 0.0])]
    assert len({r.submission for r in runs}) == 2


def test_runs_are_immutable(tmp_path):
    spec = load_task(SEG_TASK)
    store = Store(tmp_path)
    first = seg_run(store, spec, "a", [0.5, 0.6])
    with pytest.raises(StoreError, match="already exists"):
        store.write_run(spec.id, first.entry, first.run_id, receipt=plain(first.receipt),
                        scores=plain(first.scores), per_case=first.per_case)
    assert seg_run(store, spec, "a", [0.5, 0.6]).run_id != first.run_id  # same inputs, same second: a new id


ENTRY_A = EntryId("Team A", "a")


def test_write_validates_inputs(tmp_path):
    spec = load_task(SEG_TASK)
    store = Store(tmp_path)
    started = datetime(2026, 1, 1, tzinfo=UTC)
    good = receipt(SEG_TASK, spec.sha256, "a", started=started)
    scores = {"schema_version": 1, "task": SEG_TASK, "primary_metric": "dice",
              "metrics": {"dice": {"value": 0.5}},
              "counts": {"cases": 1, "ok": 1, "missing": 0, "malformed": 0, "error": 0}}
    table = pd.DataFrame({"case_id": ["c1"], "status": ["ok"], "dice": [0.5]})
    run_id = make_run_id(started, "a" * 64)
    bad_receipt = {k: v for k, v in good.items() if k != "split"}
    with pytest.raises(StoreError, match=r"receipt lacks \['split'\]"):
        store.write_run(SEG_TASK, ENTRY_A, run_id, receipt=bad_receipt, scores=scores, per_case=table)
    with pytest.raises(StoreError, match="status values"):
        store.write_run(SEG_TASK, ENTRY_A, run_id, receipt=good, scores=scores,
                        per_case=table.assign(status=["done"]))
    with pytest.raises(StoreError, match="primary metric"):
        store.write_run(SEG_TASK, ENTRY_A, run_id, receipt=good, scores={**scores, "primary_metric": "iou"},
                        per_case=table)
    with pytest.raises(StoreError, match="differs from the entry Team A / b"):
        store.write_run(SEG_TASK, EntryId("Team A", "b"), run_id, receipt=good, scores=scores,
                        per_case=table)
    with pytest.raises(StoreError, match="run id"):
        store.write_run(SEG_TASK, ENTRY_A, "latest", receipt=good, scores=scores,
                        per_case=table)
    assert store.runs() == []


def test_read_names_the_broken_file(tmp_path):
    store = build_fake_store(tmp_path / "results")
    run = store.latest(SEG_TASK, EntryId("Lab $x$", "threshold-hu"))
    (run.path / "scores.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"scores\.json: not valid JSON"):
        store.read_run(run.path)
    (run.path / "per_case.csv").unlink()
    (run.path / "scores.json").write_text(json.dumps(plain(run.scores)))
    with pytest.raises(StoreError, match=r"per_case\.csv: missing"):
        store.read_run(run.path)


@pytest.mark.parametrize("interrupt", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_inside_the_write_leaves_no_entry(tmp_path, monkeypatch, interrupt):
    spec = load_task(SEG_TASK)
    store = Store(tmp_path)
    calls = []

    def failing_write_json(path, obj):  # fails after per_case.csv is written
        calls.append(path)
        raise interrupt

    monkeypatch.setattr("bench.store.write_json", failing_write_json)
    with pytest.raises(type(interrupt)):
        seg_run(store, spec, "a", [0.5, 0.6])
    assert calls and store.runs() == []
    assert list((tmp_path / SEG_TASK / slugify("Team A") / "a").iterdir()) == []
    monkeypatch.undo()
    assert seg_run(store, spec, "a", [0.5, 0.6]).per_case.shape[0] == 2


@pytest.mark.slow
def test_sigkill_mid_write_leaves_no_entry_and_rerun_completes(tmp_path):
    """A real process killed with SIGKILL while copying a log (blocked on a FIFO) into the run."""
    results, fifo = tmp_path / "results", tmp_path / "stdout.fifo"
    os.mkfifo(fifo)
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO / "tests")!r})
        from tests.helpers.board_fixtures import seg_run
        from bench.store import Store
        from bench.tasks import load_task
        spec = load_task({SEG_TASK!r})
        log = Path(sys.argv[1])
        store = Store({str(results)!r})
        import bench.store
        original = bench.store._write_log
        def slow_log(folder, name, content, where):
            return original(folder, name, log if name == "stdout.txt" else content, where)
        bench.store._write_log = slow_log
        seg_run(store, spec, "victim", [0.5, 0.6, 0.7])
        print("finished")
    """)
    child = subprocess.Popen([sys.executable, "-c", script, str(fifo)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer = os.open(fifo, os.O_WRONLY)  # blocks until the child opens the FIFO mid-write
    os.write(writer, b"half a log line")
    sub_dir = results / SEG_TASK / slugify("Team A") / "victim"
    deadline = time.monotonic() + 30
    while not any((p / "scores.json").exists() for p in sub_dir.glob(".*.tmp")):
        assert time.monotonic() < deadline, "the child never reached the middle of the write"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    os.close(writer)
    assert child.returncode == -signal.SIGKILL
    store = Store(results)
    assert store.runs() == [] and store.latest(SEG_TASK, EntryId("Team A", "victim")) is None
    assert [p.name.startswith(".") for p in sub_dir.iterdir()] == [True]  # only the hidden temp dir

    rerun = subprocess.run([sys.executable, "-c", script, "/dev/null"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert [r.name for r in store.runs()] == ["victim"]
    assert store.latest(SEG_TASK, EntryId("Team A", "victim")).per_case["dice"].tolist() == [0.5, 0.6, 0.7]


def test_a_team_named_like_another_teams_slug_gets_its_own_folder_and_board_row(tmp_path):
    """The attack: a slug is kept when it is already safe, and a hashed slug is safe, so a team
    that names itself with another team's slug (``Team-A-<hash>``) lands in that team's folder,
    and its later run replaces the other team's row on the board."""
    from bench.ranking.board import build_boards

    spec = load_task(SEG_TASK)
    store = Store(tmp_path / "results")
    victim = seg_run(store, spec, "model", [0.9] * 6, team="Team A")
    squatter_team = slugify("Team A")
    assert squatter_team.startswith("Team-A-")
    squatter = seg_run(store, spec, "model", [0.0] * 6, team=squatter_team,
                       started=datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    assert victim.path.parent != squatter.path.parent
    assert slugify(squatter_team) != slugify("Team A")
    (board,) = build_boards(spec, store.latest_runs())
    assert sorted((e.run.team, e.value) for e in board.entries) == [("Team A", 0.9), (squatter_team, 0.0)]


def test_slugs_stay_distinct_for_names_shaped_like_slugs():
    names = ["Team A", slugify("Team A"), slugify(slugify("Team A")), "x", "x-0123456789abcdef",
             "x-0123456789abcdef0", "Team A!", "Team A?"]
    assert len({slugify(name) for name in names}) == len(names)
