import pathlib

import pytest

from ftdecide.probe.records import read_records

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "calibration"


def load_runs(include_shared=True):
    """Every measured run the project keeps, plus shared/calibration when it is beside the checkout."""
    return read_records(ROOT / "data" / "measurements", SHARED if include_shared else None)


@pytest.fixture(scope="session")
def runs():
    return load_runs()
