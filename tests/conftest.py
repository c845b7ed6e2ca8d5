import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def _real_root():
    root = os.environ.get("COURSE_DATA")
    if root and Path(root).is_dir():
        return Path(root)
    return SHARED if SHARED.is_dir() else None


@pytest.fixture(scope="session")
def real_data_root():
    """The folder with the real data sets (CI: ../shared/datasets); skip when there is none."""
    root = _real_root()
    if root is None:
        pytest.skip("no real data sets here: set COURSE_DATA")
    os.environ.setdefault("COURSE_DATA", str(root))  # notebooks run by the tests read it too
    return root
