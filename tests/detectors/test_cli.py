"""``minewatch detect`` and ``minewatch vibration`` through the front door."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from minewatch.cli import main
from tests.detectors.test_vibration import synth


def test_detect_scores_rows_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    x = np.r_[rng.normal(20, 0.5, 300), rng.normal(22, 0.5, 100)]
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "reading", "other"])
        for i, v in enumerate(x):
            w.writerow([f"t{i}", "" if i == 50 else f"{v:.3f}", "x"])
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(main, ["detect", "--input", str(src), "--out", str(out), "--time-column", "time",
                                    "--value-column", "reading"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "alert"]
    assert len(rows) == 400 and rows[7]["timestamp"] == "t7" and rows[50]["value"] == ""
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    alerts = np.array([int(r["alert"]) for r in rows])
    assert ((0 <= scores) & (scores <= 1)).all() and (scores[:30] == 0).all()
    assert not alerts[:300].any() and alerts[300:330].any()
    assert ((scores >= 0.5) == (alerts == 1)).all()
    # no look-ahead: the first 300 rows score the same without the rest of the file
    head = tmp_path / "head.csv"
    head.write_text("\n".join(src.read_text().splitlines()[:301]) + "\n")
    res = CliRunner().invoke(main, ["detect", "--input", str(head), "--out", str(tmp_path / "h.csv"),
                                    "--time-column", "time", "--value-column", "reading"])
    assert res.exit_code == 0
    assert [r["anomaly_score"] for r in csv.DictReader((tmp_path / "h.csv").open())] == \
        [r["anomaly_score"] for r in rows[:300]]


def test_detect_reports_missing_column(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("timestamp,val\n1,2\n")
    res = CliRunner().invoke(main, ["detect", "--input", str(src), "--out", str(tmp_path / "o.csv"),
                                    "--value-column", "value"])
    assert res.exit_code != 0 and "no column 'value'" in res.output and "timestamp, val" in res.output


def test_detect_reads_the_apis_export_and_refuses_to_guess(tmp_path: Path) -> None:
    """``/telemetry/export.csv`` is ``time,ts_ns,robot,<channels>``: with one channel, detect reads
    it as it is; with several, it asks which one, naming them."""
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0.3, 0.01, 200), rng.normal(0.6, 0.01, 50)]
    export = tmp_path / "export.csv"
    export.write_text("time,ts_ns,robot,ch4_t1\n" + "".join(
        f"2026-11-27T00:{i // 60:02d}:{i % 60:02d}+08:00,{1795795200000000000 + i * 10**9},r01,{v:.4f}\n"
        for i, v in enumerate(x)))
    out = tmp_path / "o.csv"
    res = CliRunner().invoke(main, ["detect", "--input", str(export), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["timestamp"] == "2026-11-27T00:00:00+08:00" and float(rows[0]["value"]) == round(x[0], 4)
    assert not any(int(r["alert"]) for r in rows[:200]) and any(int(r["alert"]) for r in rows[200:])
    two = tmp_path / "two.csv"
    two.write_text("time,ts_ns,robot,ch4_t1,humidity\n2026-11-27T00:00:00+08:00,1,r01,0.3,80\n")
    res = CliRunner().invoke(main, ["detect", "--input", str(two), "--out", str(out)])
    assert res.exit_code != 0 and "--value-column" in res.output and "ch4_t1, humidity" in res.output
    res = CliRunner().invoke(main, ["detect", "--input", str(two), "--out", str(out), "--value-column", "humidity"])
    assert res.exit_code == 0, res.output
    assert next(csv.DictReader(out.open()))["value"] == "80.0"


def test_vibration_asks_which_column_of_several(tmp_path: Path) -> None:
    """Given an export with acceleration and humidity, vibration does not pick one by itself."""
    x = synth("lf01", np.random.default_rng(2), defect="inner", impact=8.0)
    src = tmp_path / "export.csv"
    src.write_text("time,accel,humidity\n" + "".join(f"t{i},{v:.6f},81.5\n" for i, v in enumerate(x)))
    args = ["vibration", "--input", str(src), "--rate", "10240", "--rpm", "2950", "--support", "flexible"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and "--column" in res.output and "time, accel, humidity" in res.output
    res = CliRunner().invoke(main, [*args, "--column", "accel"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["diagnosis"] == "inner race"
    res = CliRunner().invoke(main, [*args, "--column", "rpm"])
    assert res.exit_code != 0 and "no column 'rpm'" in res.output


def test_vibration_npy_and_csv(tmp_path: Path) -> None:
    x = synth("lf01", np.random.default_rng(2), defect="inner", impact=8.0)
    np.save(tmp_path / "w.npy", x)
    res = CliRunner().invoke(main, ["vibration", "--input", str(tmp_path / "w.npy"), "--rate", "10240",
                                    "--rpm", "2950", "--bearing", "6205", "--support", "flexible"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["diagnosis"] == "inner race" and out["zone"] in "AB"
    for key in ("rms_mm_s", "kurtosis", "crest", "bpfo", "bpfi", "bsf"):
        assert isinstance(out[key], float)
    assert abs(out["fault_hz"]["bpfi"] - 2950 / 60 * 5.428) < 0.5
    (tmp_path / "w.csv").write_text("accel\n" + "\n".join(f"{v:.6f}" for v in x) + "\n")
    res = CliRunner().invoke(main, ["vibration", "--input", str(tmp_path / "w.csv"), "--rate", "10240", "--rpm", "2950",
                                    "--bearing", "9,7.938,38.5,0", "--support", "flexible"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["diagnosis"] == "inner race"


def test_vibration_rejects_bad_bearing(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.zeros(100))
    res = CliRunner().invoke(main, ["vibration", "--input", str(tmp_path / "w.npy"), "--rate", "1000", "--rpm", "1500",
                                    "--bearing", "9,40,38"])
    assert res.exit_code != 0 and "0 < d < D" in res.output
