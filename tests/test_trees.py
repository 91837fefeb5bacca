"""bench.trees: walking and removing trees of any depth and any names; markers of harness-written trees."""

import os

import pytest

from bench.trees import MARKER, foreign_content, mark_tree, remove_tree, walk_entries


def _nest(root, depth: int, name: str = "d") -> None:
    descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=descriptor)
        os.close(os.open(b"\xff-file", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=descriptor))
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=descriptor)
        os.close(descriptor)
        descriptor = child
    os.close(descriptor)


def test_walk_and_remove_a_tree_deeper_than_the_recursion_limit_and_path_max(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    try:
        _nest(root, 2500, name="folder")  # 2,500 levels: past RecursionError and past 4,096-byte paths
        entries = list(walk_entries(root))
    finally:
        remove_tree(root)
    assert not root.exists()
    assert len(entries) == 5000 and max(len(e.parts) for e in entries) == 2500
    assert entries[0].parts == ("folder",) and entries[1].parts == ("folder", "folder")


def test_links_are_listed_and_removed_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("host file")
    root = tmp_path / "out"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "link").symlink_to(outside)
    (root / "file-link").symlink_to(outside / "keep.txt")
    assert [e.relative for e in walk_entries(root)] == ["file-link", "sub", "sub/link"]
    remove_tree(root)
    assert not root.exists() and (outside / "keep.txt").read_text() == "host file"


def test_markers_tell_harness_trees_from_foreign_ones(tmp_path):
    site = tmp_path / "site"
    (site / "task").mkdir(parents=True)
    (site / "index.html").write_text("x")
    assert "no readable" in foreign_content(site, "leaderboard")
    mark_tree(site, "leaderboard")
    assert (site / MARKER).is_file() and foreign_content(site, "leaderboard") is None
    assert "as a leaderboard, not a prepared input" in foreign_content(site, "prepared input")
    (site / "task" / "NOTES.md").write_text("mine")
    assert foreign_content(site, "leaderboard") == (
        f"{site} holds 'task/NOTES.md', which ricord-bench did not write there"
    )
    assert foreign_content(tmp_path / "missing", "leaderboard") is None
    (tmp_path / "empty").mkdir()
    assert foreign_content(tmp_path / "empty", "leaderboard") is None


def test_a_walk_with_a_limit_reads_no_more_names_than_it_yields(tmp_path, monkeypatch):
    (tmp_path / "big").mkdir()
    for k in range(2000):
        (tmp_path / "big" / f"f{k:04d}").touch()
    (tmp_path / "a").touch()
    read = []
    real_scandir = os.scandir

    def counting(fd):
        listing = real_scandir(fd)
        original = listing.__next__

        class Counted:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                listing.close()

            def __iter__(self):
                return self

            def __next__(self):
                entry = original()
                read.append(entry.name)
                return entry

        return Counted()

    monkeypatch.setattr(os, "scandir", counting)
    entries = list(walk_entries(tmp_path, limit=10))
    assert len(entries) == 10 and entries[0].relative == "a" and entries[1].relative == "big"
    assert len(read) <= 2 + 10  # the root's two names, then at most the ten left in the big folder
    assert len(list(walk_entries(tmp_path))) == 2002


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to walk as another user")
def test_folders_a_user_may_not_open_are_listed_not_entered_and_removed_when_its_own(tmp_path,
                                                                                    tmp_path_factory):
    """What a submission run as the harness's own user (the process runner without root) leaves:
    a folder of mode 000 and one of mode 0100. Walking lists them; removing gives them back
    their owner's rights first."""
    import subprocess
    import sys
    from pathlib import Path

    for folder in (tmp_path, *tmp_path.parents):  # traversable by the other user, up to pytest's root
        if folder == tmp_path_factory.getbasetemp().parent:
            break
        folder.chmod(folder.stat().st_mode | 0o001)
    tmp_path.chmod(0o777)
    script = (
        "import os, sys; from bench.trees import walk_entries, remove_tree\n"
        "os.makedirs('out/a/b/c'); open('out/a/b/c/f', 'w').close(); os.makedirs('out/z')\n"
        "os.chmod('out/a/b', 0); os.chmod('out/a', 0o100); os.chmod('out/z', 0)\n"
        "print(sorted(e.relative for e in walk_entries('out')))\n"
        "remove_tree('out'); print(os.path.exists('out'))\n"
    )
    as_other_user = ["setpriv", "--reuid=65533", "--regid=65533", "--clear-groups", sys.executable]
    done = subprocess.run([*as_other_user, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          check=False, env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["['a', 'z']", "False"]
