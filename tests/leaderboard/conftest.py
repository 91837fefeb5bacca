"""The real-pipeline store shared by the gallery tests and the gallery's browser test (built once)."""

import pytest

from tests.helpers.gallery_fixtures import real_store


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    return real_store(tmp_path_factory.mktemp("real-store"))
