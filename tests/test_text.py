"""bench.text: what a submission writes is recorded as printable, capped data without host paths."""

import pytest

from bench.text import NAME_MAX_CHARS, REASON_MAX_CHARS, cap, clean_reason, display_name, printable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x1b[2Jclear", "\\x1b[2Jclear"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("right\u202eto-left", "right\\u202eto-left"),
        ("line\nbreak\ttab", "line\\x0abreak\\x09tab"),
        ("plain é ünïcode [/x]", "plain é ünïcode [/x]"),
    ],
)
def test_printable_escapes_every_control_character(text, expected):
    assert printable(text) == expected


def test_display_name_of_any_bytes():
    assert display_name(b"\xff\xfe.nii.gz") == "\\xff\\xfe.nii.gz"
    assert display_name("caf\udcc3") == "caf\\xc3"  # os.listdir's surrogate for an undecodable byte
    assert display_name("é.txt".encode()) == "é.txt"
    assert len(display_name("a" * 5000)) <= NAME_MAX_CHARS


def test_clean_reason_cuts_host_paths_and_length():
    reason = "cannot read '/srv/organizer/runs/x/outputs/masks/a.nii.gz': values 0/1 in masks/a.nii.gz"
    assert clean_reason(reason) == "cannot read 'a.nii.gz': values 0/1 in masks/a.nii.gz"
    long = clean_reason("9" * 60_000_000)
    kept = REASON_MAX_CHARS - 40
    assert len(long) <= REASON_MAX_CHARS and long.endswith(f"[{60_000_000 - kept} characters cut]")


def test_cap_keeps_short_text():
    assert cap("short", 10) == "short"
    assert len(cap("x" * 100, 50)) <= 50
