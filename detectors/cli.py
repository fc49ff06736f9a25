"""``minewatch detect`` and ``minewatch vibration``: the detectors offline, on files."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import numpy as np

    from minewatch.catalogue import Bearing

__all__ = ["detect", "vibration"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with a header row; '-' reads standard input.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV to write: timestamp,value,anomaly_score,alert ('-' writes standard output).")
@click.option("--time-column", default=None,
              help="Column of the times: ISO 8601 (UTC unless an offset is given) or Unix time in s, ms, us or ns "
                   "[default: timestamp, or time as in the API's export.csv].")
@click.option("--value-column", default=None,
              help="Column of numbers to score [default: value, or the only reading column of an export.csv].")
@click.option("--period-hours", default=24.0, show_default=True, type=click.FloatRange(min=0),
              help="Length of the cycle the detector learns (0: none; the times are then only copied and rows "
                   "taken as evenly spaced, as they are when a time cannot be read).")
@click.option("--gap-minutes", default=None, type=click.FloatRange(min=0, min_open=True),
              help="A pause longer than this relearns the level (the cycle is kept) [default: none, the learned level and "
                   "cycle place the rows after any pause].")
@click.option("--warmup", default=30, show_default=True, type=click.IntRange(min=2),
              help="Rows learned before any score (scores are 0 meanwhile).")
@click.option("--threshold", default=12.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="CUSUM decision threshold h (higher: fewer, later alerts).")
@click.option("--spike", default=12.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="A single value this many standard deviations away (more for heavy-tailed noise) is anomalous.")
@click.option("--alpha", default=0.02, show_default=True, type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
              help="How fast the learned level follows the data (higher: slow wander counts as normal).")
def detect(input_path: Path, out_path: Path, time_column: str | None, value_column: str | None, period_hours: float,
           gap_minutes: float | None, warmup: int, threshold: float, spike: float, alpha: float) -> None:
    """Run the change detector over a CSV, strictly in row order, with no look-ahead.

    Each row is scored from the rows before it only, against what the stream learned: its level,
    a daily profile placed by the row's time, its noise and how heavy its tails are (so one
    threshold works for any series; scale-free). The output has one row per input row:
    timestamp, value, anomaly_score (0..1, higher is more anomalous, 0.5 at the decision
    threshold) and alert (1 when the row is anomalous). Empty or non-numeric values score 0 and
    are written as empty values. Rows must be in time order.
    """
    import numpy as np

    from detectors.change import ChangeDetector

    try:
        src = sys.stdin if str(input_path) == "-" else input_path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise click.ClickException(f"cannot read {input_path}: {exc.strerror}") from None
    with src:
        reader = csv.DictReader(src)
        cols = reader.fieldnames or []
        time_column, value_column = _detect_columns(input_path, cols, time_column, value_column)
        for name, what in ((time_column, "--time-column"), (value_column, "--value-column")):
            if name not in cols:
                raise click.ClickException(f"{input_path}: no column {name!r} ({what}); columns: {', '.join(cols) or 'none'}")
        times, raw = [], []
        for row in reader:
            times.append(row.get(time_column) or "")
            raw.append(row.get(value_column))
    values = np.array([_number(v) for v in raw], dtype=np.float64)
    t = None
    if period_hours > 0:
        parsed = [_time_ns(v) for v in times]
        bad = next((i for i, v in enumerate(parsed) if v is None), None)
        if bad is not None:
            click.echo(f"{input_path}: row {bad + 2}: time {times[bad]!r} is neither ISO 8601 nor a Unix time; "
                       f"rows taken as evenly spaced, without a daily profile", err=True)
            period_hours = 0.0
        else:
            t = np.array(parsed, dtype=np.int64)
            back = np.flatnonzero(np.diff(t) < 0)
            if back.size:
                raise click.ClickException(f"{input_path}: row {int(back[0]) + 3} is earlier than the row before "
                                           f"it; sort the file by {time_column}")
    det = ChangeDetector(warmup=warmup, h=threshold, spike=spike, alpha=alpha, period_s=period_hours * 3600.0,
                         gap_s=None if gap_minutes is None else gap_minutes * 60.0)
    score, alert = det.score_many(values, t)
    try:
        dst = sys.stdout if str(out_path) == "-" else out_path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out_path}: {exc.strerror}") from None
    with dst:
        w = csv.writer(dst, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score", "alert"])
        for tt, v, s, a in zip(times, values, score, alert):
            w.writerow([tt, "" if math.isnan(v) else repr(float(v)), f"{s:.6f}", int(a)])
    if dst is not sys.stdout:
        click.echo(f"{len(values)} rows scored, {int(alert.sum())} anomalous -> {out_path}", err=True)


def _time_ns(text: str) -> int | None:
    """A CSV time as integer nanoseconds since 1970 UTC: ISO 8601 (naive means UTC) or a Unix time
    in seconds, milliseconds, microseconds or nanoseconds (told apart by size); None if neither."""
    from datetime import datetime, timezone

    text = text.strip()
    num = _number(text)
    if num == num and math.isfinite(num) and num >= 0:
        for limit, per_s in ((1e11, 1e9), (1e14, 1e6), (1e17, 1e3)):
            if num < limit:
                return int(round(num * per_s))
        return int(text) if text.isdigit() else int(num)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    return ns if ns >= 0 else None


# columns of the API's /telemetry/export.csv that are not readings
EXPORT_KEYS = ("time", "ts_ns", "robot", "robot_id", "scenario", "scenario_id")


def _detect_columns(path: Path, cols: Sequence[str], time_column: str | None, value_column: str | None) -> tuple[str, str]:
    """The time and value columns: the ones given, else ``timestamp``/``value``, else those of an
    export (``time`` and its one reading column); several candidates are refused, with the list."""
    if time_column is None:
        time_column = next((c for c in ("timestamp", "time") if c in cols), "timestamp")
    if value_column is None:
        if "value" in cols:
            value_column = "value"
        else:
            readings = [c for c in cols if c not in EXPORT_KEYS and c != time_column]
            if len(readings) != 1:
                raise click.ClickException(
                    f"{path}: which column holds the values? choose one with --value-column; columns: "
                    f"{', '.join(cols) or 'none'}")
            value_column = readings[0]
    return time_column, value_column


def _number(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _bearing(spec: str) -> Bearing:
    from minewatch.catalogue import BEARINGS, Bearing

    if spec in BEARINGS:
        return BEARINGS[spec]
    parts = spec.split(",")
    try:
        if len(parts) not in (3, 4):
            raise ValueError
        n, d, dd = int(parts[0]), float(parts[1]), float(parts[2])
        angle = float(parts[3]) if len(parts) == 4 else 0.0
    except ValueError:
        raise click.BadParameter(f"{spec!r}: give a catalogue bearing ({', '.join(BEARINGS)}) or n,d,D[,angle] "
                                 f"(balls, ball and pitch diameter in mm, contact angle in degrees)") from None
    if n < 3 or not (0 < d < dd) or not (0 <= angle < 90):
        raise click.BadParameter(f"{spec!r}: need n >= 3 balls, 0 < d < D and 0 <= angle < 90")
    return Bearing(f"{n},{d:g},{dd:g},{angle:g}", n, d, dd, angle)


def _load_waveform(path: Path, column: str | None) -> np.ndarray:
    import numpy as np

    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"cannot read {path}: {exc}") from None
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.number):
            raise click.ClickException(f"{path}: expected a 1-D numeric array, got shape {x.shape} {x.dtype}")
        out: np.ndarray = x.astype(np.float64)
        return out
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise click.ClickException(f"{path}: empty file")
    header = rows[0]
    has_header = any(_number(c) != _number(c) for c in header if c.strip())  # a non-number cell: a header
    if column is not None:
        if not has_header or column not in header:
            raise click.ClickException(f"{path}: no column {column!r}; columns: {', '.join(header)}")
        idx = header.index(column)
    elif len(header) == 1:
        idx = 0
    elif has_header:
        raise click.ClickException(f"{path}: {len(header)} columns; choose the acceleration with --column; "
                                   f"columns: {', '.join(header)}")
    else:
        raise click.ClickException(f"{path}: {len(header)} columns and no header; give a CSV with a header "
                                   f"and --column, or one value per row")
    body = rows[1:] if has_header else rows
    x = np.array([_number(r[idx]) if idx < len(r) else math.nan for r in body if r], dtype=np.float64)
    bad = int(np.isnan(x).sum())
    if bad:
        raise click.ClickException(f"{path}: {bad} row(s) without a number in column {idx + 1}")
    return x


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Acceleration in m/s²: a .npy 1-D array, or a CSV (one value per row, or --column of a CSV with a header).")
@click.option("--rate", required=True, type=click.FloatRange(min=0, min_open=True), help="Sample rate, Hz.")
@click.option("--rpm", required=True, type=click.FloatRange(min=0, min_open=True), help="Shaft speed, rev/min.")
@click.option("--rpm-tolerance", default=0.0, show_default=True, type=click.FloatRange(min=0, max=0.5, max_open=True),
              help="How far off --rpm may be (relative, e.g. 0.1 for a nameplate speed): the shaft rate is then "
                   "found in the spectrum within it and the fault frequencies follow; 0 trusts --rpm.")
@click.option("--bearing", "bearing_spec", default="6205", show_default=True,
              help="Catalogue bearing (6205, 6312, 6316, 22228) or n,d,D[,angle] in mm and degrees.")
@click.option("--group", default=2, show_default=True, type=click.Choice(["1", "2"]),
              help="ISO 10816-3 machine group: 1 above 300 kW, 2 for 15-300 kW.")
@click.option("--support", default="rigid", show_default=True, type=click.Choice(["rigid", "flexible"]),
              help="ISO 10816-3 foundation.")
@click.option("--column", default=None,
              help="CSV column with the acceleration; needed when the CSV has more than one column.")
def vibration(input_path: Path, rate: float, rpm: float, rpm_tolerance: float, bearing_spec: str, group: str,
              support: str, column: str | None) -> None:
    """Vibration features and diagnosis of one waveform, printed as JSON.

    RMS velocity over the ISO 10816-3 band (10-1000 Hz; 2-1000 Hz below 600 rpm) and its zone,
    kurtosis and crest factor, the envelope-spectrum energy and SNR at the bearing's fault
    frequencies (BPFO, BPFI, 2x BSF), and a diagnosis: healthy, imbalance, outer race,
    inner race or ball, with a confidence (0-1) and its evidence (demodulation band from the
    kurtogram, envelope resolution, shaft speed used, the fault's envelope peak, harmonics and
    sidebands). Any sample rate; the band and resolution follow the signal and the bearing.
    """
    from detectors.vibration import analyse

    bearing = _bearing(bearing_spec)
    x = _load_waveform(input_path, column)
    try:
        feats = analyse(x, rate, rpm, bearing, int(group), support, rpm_tolerance=rpm_tolerance)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    out = feats.as_dict()
    out["bearing"] = {"name": bearing.name, "n": bearing.n, "d_mm": bearing.d, "D_mm": bearing.D,
                      "angle_deg": bearing.angle}
    out["iso_10816_3"] = {"group": int(group), "support": support}
    click.echo(json.dumps(out, indent=2, default=float))
