"""The vibration stage: a batch's waveform blocks -> features -> limit samples.

A stage of the suite (:class:`detectors.DetectorSuite`) ahead of the detectors: each block of a
place's machine is decoded, analysed (:func:`detectors.vibration.analyse_blocks`), written out as
a ``vibration`` line (the derived measurement), and its velocity RMS and strongest bearing-tone
SNR go into the batch's limit samples, where the zone and bearing rules of the limit detector
(:mod:`detectors.limits`) judge them with the other limits.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from detectors.batching import Batch
from detectors.limits import VIB_INDEX, LimitDetector
from detectors.vibration import analyse_blocks
from minewatch.catalogue import Scenario
from minewatch.wire import Frame, WaveBlock

__all__ = ["MIN_SAMPLES", "VibrationStage", "samples"]

MIN_SAMPLES = 16  # a shorter block has nothing to analyse


def samples(block: WaveBlock) -> npt.NDArray[np.float64]:
    """A block's samples as float64 (``i2`` blocks scaled); ``ValueError`` if it is malformed."""
    try:
        raw = base64.b64decode(block.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"waveform is not base64: {exc}") from None
    if block.dtype == "f4":
        if len(raw) % 4:
            raise ValueError("f4 waveform length is not a multiple of 4 bytes")
        return np.frombuffer(raw, dtype="<f4").astype(np.float64)
    if len(raw) % 2:
        raise ValueError("i2 waveform length is not a multiple of 2 bytes")
    out: npt.NDArray[np.float64] = np.frombuffer(raw, dtype="<i2").astype(np.float64) * block.scale
    return out


class VibrationStage:
    """Features of a batch's waveform blocks, for the limit detector and the store.

    Parameters
    ----------
    scenarios
        The catalogue (each place's machine).
    limits
        The limit detector, whose vibration rules' streams the features feed.
    """

    def __init__(self, scenarios: Mapping[str, Scenario], limits: LimitDetector) -> None:
        self.scenarios = scenarios
        self.limits = limits

    def __call__(self, batch: Batch, frames: Sequence[Frame]) -> list[str]:
        """Line protocol of the features of ``batch.blocks``; their zone and bearing samples are
        added to ``batch.lim``."""
        if not batch.blocks:
            return []
        from minewatch.influx import line

        xs, rates, rpms, bearings, groups, where = [], [], [], [], [], []
        for fi, block in batch.blocks:
            f = frames[fi]
            m = self.scenarios[f.scenario_id].machine
            assert m is not None
            try:
                x = samples(block)
            except ValueError:
                continue  # a malformed block: the ingestor's validation reports it; nothing to analyse
            if x.shape[0] < MIN_SAMPLES:
                continue
            xs.append(x)
            rates.append(block.rate_hz)
            rpms.append(block.rpm or m.rpm)
            bearings.append(m.bearing)
            groups.append((m.iso_group, m.support))
            where.append(fi)
        lines = []
        ls, lt, lx, lo = batch.lim.lists
        for fi, feats in zip(where, analyse_blocks(xs, rates, rpms, bearings, groups)):
            f = frames[fi]
            sc = self.scenarios[f.scenario_id]
            assert sc.machine is not None
            ln = line("vibration", {"scenario": sc.id, "robot": f.robot_id, "machine": sc.machine.name}, {
                "rms_mm_s": feats.rms_mm_s, "zone": feats.zone, "kurtosis": feats.kurtosis, "crest": feats.crest,
                "bpfo": feats.bpfo, "bpfi": feats.bpfi, "bsf": feats.bsf, "bpfo_snr_db": feats.bpfo_snr_db,
                "bpfi_snr_db": feats.bpfi_snr_db, "bsf_snr_db": feats.bsf_snr_db, "one_x_share": feats.one_x_share,
                "diagnosis": feats.diagnosis, "rpm": feats.rpm}, f.ts)
            if ln:
                lines.append(ln)
            zone_rule, bearing_rule = self.limits.vib_rules[sc.id]
            snr = max(feats.bpfo_snr_db, feats.bpfi_snr_db, feats.bsf_snr_db)
            for j, (rule, value) in enumerate(((zone_rule, feats.rms_mm_s), (bearing_rule, snr))):
                s = self.limits.stream((sc.id, f.robot_id, sc.machine.channel, VIB_INDEX + j), rule)
                self.limits.features[(s, f.ts)] = feats
                ls.append(s)
                lt.append(f.ts)
                lx.append(float(value))
                lo.append(fi)
        return lines
