import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "calibration"


def load_runs(include_shared=True):
    """Every measured run the project keeps, plus shared/calibration when it is beside the checkout."""
    rows = [json.loads(l) for l in (ROOT / "data" / "measurements" / "h100_probe_2026-11-22.jsonl").read_text().splitlines() if l.strip()]
    if include_shared and (SHARED / "h100_peak_memory.jsonl").is_file():
        archs = json.loads((SHARED / "architectures.json").read_text())
        for l in (SHARED / "h100_peak_memory.jsonl").read_text().splitlines():
            if l.strip():
                d = json.loads(l)
                d["hf_config"] = archs[d["arch"]]
                d["src"] = "calibration"
                rows.append(d)
    return rows


@pytest.fixture(scope="session")
def runs():
    return load_runs()
