"""merino.provenance: what a result file records about how it came about, and atomic writes."""

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merino.provenance import Meter, provenance, sha256, versions, write_json, write_table

REPO = Path(__file__).resolve().parents[1]


def test_sha256_of_a_file_spanning_several_chunks(tmp_path):
    data = bytes(range(256)) * 5000  # 1.2 MB: more than one 1 MiB read
    (tmp_path / "x.bin").write_bytes(data)
    assert sha256(tmp_path / "x.bin") == hashlib.sha256(data).hexdigest()


def test_provenance_records_settings_inputs_seed_and_commit(tmp_path):
    (tmp_path / "lookup.json").write_text('{"entries": []}\n')
    (tmp_path / "tokens.bin").write_bytes(b"\x00\x01")
    prov = provenance(
        {"search": {"iterations": 3000}},
        {"lookup": tmp_path / "lookup.json", "tokens": str(tmp_path / "tokens.bin")},
        seed=7,
        wall_s=1.23456,
    )
    assert prov["settings"] == {"search": {"iterations": 3000}} and prov["seed"] == 7 and prov["wall_s"] == 1.235
    assert prov["inputs_sha256"] == {
        "lookup": hashlib.sha256(b'{"entries": []}\n').hexdigest(),
        "tokens": hashlib.sha256(b"\x00\x01").hexdigest(),
    }
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert prov["git_commit"] == head
    assert prov["versions"]["numpy"] == np.__version__ and prov["versions"]["pandas"] == pd.__version__
    assert prov["host"]["cpus"] >= 1 and prov["created"].endswith("Z")
    json.dumps(prov)  # a provenance is JSON as it is


def test_a_changed_input_changes_its_hash(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text('{"acc": 0.5}')
    before = provenance({}, {"eval": path})["inputs_sha256"]["eval"]
    path.write_text('{"acc": 0.6}')
    assert provenance({}, {"eval": path})["inputs_sha256"]["eval"] != before


def test_provenance_without_inputs_or_seed():
    prov = provenance({"a": 1})
    assert prov["inputs_sha256"] == {} and prov["seed"] is None and prov["wall_s"] is None


def test_a_missing_input_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        provenance({}, {"eval": tmp_path / "absent.json"})


def test_versions_name_only_installed_packages():
    found = versions()
    assert {"torch", "numpy", "pandas"} <= set(found)
    assert all(isinstance(v, str) and v[0].isdigit() for v in found.values())


def test_write_json_makes_directories_and_converts_numpy(tmp_path):
    path = tmp_path / "results" / "search" / "flops60G.json"
    write_json(path, {"score": np.float64(1.5), "genes": np.arange(3), "n": np.int64(4)})
    assert json.loads(path.read_text()) == {"score": 1.5, "genes": [0, 1, 2], "n": 4}
    assert [p.name for p in path.parent.iterdir()] == ["flops60G.json"]  # no temporary file left behind


def test_write_json_refuses_what_json_cannot_hold_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"ok": True})
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}


def test_write_table_writes_the_csv_and_its_provenance_sidecar(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    prov = provenance({"metric": "acc"}, {"in": tmp_path / "in.txt"}, seed=1)
    df = pd.DataFrame({"model": ["a", "b"], "avg": [0.25, 0.5]})
    side = write_table(df, tmp_path / "tables" / "table2.csv", prov)
    assert side == tmp_path / "tables" / "table2.provenance.json"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "tables" / "table2.csv"), df)
    assert json.loads(side.read_text()) == prov


def test_meter_records_time_and_labels_its_energy():
    with Meter(cpu_watts=10.0) as meter:
        sum(i * i for i in range(200_000))
    record = meter.record()
    assert record["wall_s"] > 0 and record["cpu_s"] > 0
    assert record["energy_Wh"] == pytest.approx(record["energy_J"] / 3600, abs=1e-6)
    if record["energy_source"].startswith("estimated"):
        assert record["energy_J"] == pytest.approx(meter.cpu_s * 10.0, abs=1e-3)
        assert "10.0 W" in record["energy_source"]
    else:
        assert record["energy_source"] == "measured (RAPL package 0)"
