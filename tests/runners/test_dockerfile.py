"""The Dockerfile check before a build: what the engine would fetch or read beyond the context.

A fake engine that holds the base image and one image of another entry; the real-engine cases
(a loopback server that gets no request, another entry's image by id, tag and short id) are in
``test_attacks.py``.
"""

import docker.errors
import pytest

from bench.errors import SubmissionError
from bench.runners.base_image import BASE_IMAGE
from bench.runners.dockerfile import check_dockerfile
from bench.runners.intake import entry_reference

OTHER = entry_reference("Team B", "model", "sha256:" + "b" * 64)


class _Image:
    def __init__(self, image_id, tags, onbuild=()):
        self.id, self.tags, self.attrs = image_id, tags, {"Config": {"OnBuild": list(onbuild)}}


class _Engine:
    def __init__(self, **extra):
        self.known = {BASE_IMAGE: _Image("sha256:" + "a" * 64, [BASE_IMAGE]),
                      OTHER: _Image("sha256:" + "b" * 64, [OTHER]), **extra}

    @property
    def images(self):
        return self

    def get(self, reference):
        if reference not in self.known:
            raise docker.errors.ImageNotFound(reference)
        return self.known[reference]


def _check(tmp_path, text, client=None, build_args=None):
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    check_dockerfile(path, build_args or {}, client or _Engine(), team="Team A", entry="model")


def test_the_usual_dockerfiles_pass(tmp_path):
    _check(tmp_path, f"ARG BASE_IMAGE={BASE_IMAGE}\nFROM ${{BASE_IMAGE}}\nCOPY . /opt/x\n"
           "ADD weights.tar /opt/\n")
    _check(tmp_path, f"FROM {BASE_IMAGE} AS build\nRUN true\nFROM scratch\nCOPY --from=build /a /b\n"
           "COPY --from=0 /c /d\n")
    _check(tmp_path, "ARG BASE_IMAGE=missing/image:1\nFROM ${BASE_IMAGE:-x}\n",
           build_args={"BASE_IMAGE": BASE_IMAGE})


@pytest.mark.parametrize(("text", "named"), [
    (f"FROM {BASE_IMAGE}\nADD https://example.invalid/w.pt /w.pt\n", "is downloaded by the engine"),
    (f"from {BASE_IMAGE}\nadd http://127.0.0.1:8080/x /x\n", "is downloaded by the engine"),
    (f"FROM {BASE_IMAGE} AS a\nONBUILD ADD http://127.0.0.1:8080/x /x\nFROM a\n", "is downloaded by"),
    (f"FROM {BASE_IMAGE} AS a\nonbuild add [\"http://h/x\", \"/x\"]\nFROM a\n", "is downloaded by"),
    (f"FROM {BASE_IMAGE}\ncopy --FROM=alpine:3 /bin/sh /sh\n", "is not in the engine"),
    ("from pytorch/pytorch:2.4.0\n", "is not in the engine"),
    (f"FROM {BASE_IMAGE}\nADD git@example.invalid:x/y.git /src\n", "is downloaded by the engine"),
    (f"FROM {BASE_IMAGE}\nARG SRC=w.pt\nADD ${{SRC}} /w.pt\n", "holds a variable"),
    (f"# escape=`\nFROM {BASE_IMAGE}\nADD `\n  http://127.0.0.1:8080/x /x\n", "is downloaded by the engine"),
    (f'FROM {BASE_IMAGE}\nADD ["http://169.254.169.254/latest/", "/m"]\n', "is downloaded by the engine"),
    ("FROM pytorch/pytorch:2.4.0\n", "is not in the engine, so the build would pull it"),
    (f"FROM {BASE_IMAGE}\nCOPY --from=alpine:3 /bin/sh /sh\n", "is not in the engine"),
    (f"FROM --platform=linux/arm64 {BASE_IMAGE}\n", "--platform"),
    (f"FROM {OTHER}\n", "another entry's image"),
    ("ARG B\nFROM ${B}\n", "is not a name once build arguments are substituted"),
])
def test_what_reaches_beyond_the_context_is_refused_naming_the_line(tmp_path, text, named):
    with pytest.raises(SubmissionError, match="refused before building") as error:
        _check(tmp_path, text)
    assert named in str(error.value) and "line " in str(error.value)


def test_onbuild_triggers_of_the_base_obey_the_add_rule(tmp_path):
    engine = _Engine(**{"team/base:1": _Image("sha256:" + "c" * 64, ["team/base:1"],
                                              onbuild=["ADD http://127.0.0.1:9/x /x"])})
    with pytest.raises(SubmissionError, match="an ONBUILD trigger of 'team/base:1'"):
        _check(tmp_path, "FROM team/base:1\n", client=engine)
