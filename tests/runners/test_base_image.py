"""The base image recipe: reading the host's Debian sources, and the mmdebstrap call."""

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import ImageBuildError
from bench.runners.base_image import BASE_PACKAGES, host_debian_sources, mmdebstrap_command


def _host(tmp_path, os_release, sources_list="", extra=None):
    (tmp_path / "etc/apt/sources.list.d").mkdir(parents=True)
    (tmp_path / "etc/os-release").write_text(os_release)
    (tmp_path / "etc/apt/sources.list").write_text(sources_list)
    for name, text in (extra or {}).items():
        (tmp_path / "etc/apt/sources.list.d" / name).write_text(text)
    return tmp_path


BOOKWORM = "ID=debian\nVERSION_CODENAME=bookworm\n"
DEB822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main contrib
"""


def test_deb822_and_one_line_sources_keep_only_debian_suites(tmp_path):
    root = _host(
        tmp_path,
        BOOKWORM,
        "# comment\ndeb [arch=amd64] http://old.example/debian bookworm main\n",
        {
            "debian.sources": DEB822,
            "vendor.list": "deb https://vendor.example/apt stable main\n",
            "node.sources": "Types: deb\nURIs: https://node.example\nSuites: nodistro\nComponents: main\n",
        },
    )
    codename, lines = host_debian_sources(root=root)
    assert codename == "bookworm"
    assert lines == (
        "deb http://old.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/debian-security bookworm-security main contrib",
    )


def test_non_debian_hosts_and_missing_sources_are_explained(tmp_path):
    with pytest.raises(ImageBuildError, match="not Debian-based"):
        host_debian_sources(root=_host(tmp_path / "a", "ID=fedora\nVERSION_CODENAME=\n"))
    with pytest.raises(ImageBuildError, match="no Debian package source for 'bookworm'"):
        host_debian_sources(root=_host(tmp_path / "b", BOOKWORM, "deb http://x/debian bullseye main\n"))


def test_mmdebstrap_call(tmp_path):
    command = mmdebstrap_command("bookworm", ("deb http://m/debian bookworm main",), tmp_path / "r.tar")
    assert command[:4] == ["mmdebstrap", "--variant=minbase", "--format=tar", "--mode=auto"]
    assert f"--include={','.join(BASE_PACKAGES)}" in command
    assert command[-3:] == ["bookworm", str(tmp_path / "r.tar"), "deb http://m/debian bookworm main"]


@pytest.mark.docker
def test_cli_images_base_keeps_an_existing_image():
    answer = CliRunner().invoke(app, ["images", "base"])
    assert answer.exit_code == 0, answer.output
    assert "ricord-bench/python:bookworm" in answer.output and (
        "exists, kept" in answer.output or "built" in answer.output
    )
