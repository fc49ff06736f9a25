"""``minewatch simulate``: publish the simulated fleet's telemetry to MQTT and/or a JSONL file."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import click

from minewatch.options import mqtt_option, settings_from

__all__ = ["simulate"]


def _speed(value: str) -> float | None:
    if value.strip().lower() == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise click.BadParameter("use a factor like 1, 10, 0.5, or 'max'") from None
    if speed <= 0:
        raise click.BadParameter("must be positive")
    return speed


@click.command("simulate", context_settings={"help_option_names": ["-h", "--help"]})
@mqtt_option
@click.option("--topic-prefix", default=None, help="Topic prefix [env MINEWATCH_TOPIC_PREFIX; default minewatch/v1].")
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the messages to this JSONL file (one payload per line: a frame or an array of "
                   "frames). Without --mqtt-url, the file is the only sink.")
@click.option("--robots", type=int, default=None,
              help="Fleet size. Default: the default fleet (a robot stationed in each of the 31 scenarios "
                   "plus 4 patrol robots). More adds stationed robots round-robin over the scenarios.")
@click.option("--scenarios", default=None, help="Comma-separated scenario ids: only the robots stationed there.")
@click.option("--rate", type=float, default=1.0, show_default=True, help="Frames per second per robot.")
@click.option("--duration", default=None, help="Simulated time to run: seconds or 90s, 5m, 8h.")
@click.option("--frames", type=int, default=None,
              help="Emit exactly N telemetry frames in total, wait for every acknowledgement, exit.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed; same seed and flags, same bytes.")
@click.option("--start", default=None,
              help="Simulated start time, ISO 8601 (default: now). A past time loads history (see --history): "
                   "past timestamps, as fast as --speed allows. A shift id (2026-11-27:night) or shift:-1 (the last "
                   "complete shift) starts at that shift and, without --duration/--frames, runs for its length.")
@click.option("--history/--live", "history", default=None,
              help="Publish as history (history/{scenario}/{robot}: stored and run through the ingestor's "
                   "history detectors; never on the live board, no robot status, no wills) or as live robots. "
                   "Default: history when --start is in the past, live otherwise.")
@click.option("--speed", default=None,
              help="Simulated seconds per wall second, or 'max' (as fast as possible). Default: 1 with MQTT, "
                   "max for a file only.")
@click.option("--faults", "faults_file", default=None,
              help="Fault file (JSON or YAML list), or builtin:NAME (outburst, demo, shift, or a fault kind).")
@click.option("--labels-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the ground-truth labels of the injected faults here (JSONL): each fault's as soon as "
                   "it has finished showing in the data, the rest at the end of the run.")
@click.option("--waveform-rate", type=float, default=0.0, show_default=True,
              help="Vibration sample rate in Hz (e.g. 10240); 0 = no waveforms. Blocks go on rotating-machine "
                   "scenarios' frames as waveforms['vib'].")
@click.option("--waveform-seconds", type=float, default=0.5, show_default=True,
              help="Length of a waveform block (at least two shaft revolutions: a 60 rpm drum's are 2 s).")
@click.option("--waveform-every", type=int, default=10, show_default=True,
              help="A waveform block on every Nth frame of a robot at a machine.")
@click.option("--waveform-dtype", type=click.Choice(["f4", "i2"]), default="f4", show_default=True,
              help="Sample encoding: float32, or int16 with a scale (half the bytes).")
@click.option("--shifts", "shifts_spec", default=None,
              help="Shift calendar as name@HH:MM-HH:MM/production|maintenance,... in local time [env "
                   "MINEWATCH_SHIFTS; default night 00-08 production, day 08-16 maintenance, swing 16-24 "
                   "production; MINEWATCH_TZ_OFFSET hours, default 8].")
@click.option("--list-faults", is_flag=True, help="List the fault kinds and built-in fault sets, then exit.")
@click.option("--progress/--quiet", "progress", default=None,
              help="A progress bar on standard error (share of --frames or --duration done, frames so far) "
                   "[default: when standard error is a terminal and the run has an end].")
def simulate(mqtt_url: str | None, topic_prefix: str | None, output: Path | None, robots: int | None,
             scenarios: str | None, rate: float, duration: str | None, frames: int | None, seed: int,
             start: str | None, speed: str | None, faults_file: str | None, labels_out: Path | None,
             waveform_rate: float, waveform_seconds: float, waveform_every: int, waveform_dtype: str,
             shifts_spec: str | None, list_faults: bool, history: bool | None, progress: bool | None) -> None:
    """Publish simulated robot telemetry of the mine: physics, shifts, faults with ground truth.

    Frames go to MQTT (QoS 1, telemetry/{scenario}/{robot}; retained robot status with a last will)
    and/or a JSONL file. Ends after --frames or --duration (or runs until interrupted), then prints a
    one-line JSON summary: frames, messages, readings, seconds.

    \b
    Examples:
      minewatch simulate --mqtt-url mqtt://127.0.0.1:1883                 # live, real time
      minewatch simulate --output frames.jsonl --duration 8h --seed 7     # a shift to a file, fast
      minewatch simulate --faults builtin:demo --labels-out labels.jsonl --speed 10
      minewatch simulate --start 2026-11-27T00:00:00Z --duration 8h --speed max   # load a shift as history
      minewatch simulate --start shift:-1 --speed max                     # the last shift, as history
    """
    from simulator.engine import SimConfig, Simulation
    from simulator.faults import KINDS, LIBRARY, FaultError, load_faults
    from simulator.runner import run
    from minewatch.shifts import ShiftCalendar, calendar_from_env, parse_shifts
    from simulator.shifts import ShiftClock
    from simulator.sinks import FileSink, LabelSink, MqttSink, ProgressSink, SinkError
    from simulator.timeutil import NS, iso_ns, parse_duration_s

    if list_faults:
        for kind, (dur, _, extra, text) in KINDS.items():
            click.echo(f"{kind:24} default {dur:>4}  {text}" + (f" [keys: {', '.join(extra)}]" if extra else ""))
        click.echo("built-in sets: " + ", ".join(f"builtin:{k}" for k in LIBRARY))
        return
    settings = settings_from(mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    use_mqtt = mqtt_url is not None or output is None
    try:
        speed_x = _speed(speed) if speed is not None else (1.0 if use_mqtt else None)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint="--speed") from None
    try:
        dur_s = parse_duration_s(duration) if duration is not None else None
        calendar = calendar_from_env()
        if shifts_spec is not None:
            calendar = ShiftCalendar(parse_shifts(shifts_spec), calendar.tz.utcoffset(None).total_seconds() / 3600)
        start_ns, shift = None, None
        if start is not None and start.startswith("shift:"):
            back = -int(start.split(":", 1)[1])
            if back < 1:
                raise ValueError("--start shift:-N needs N >= 1 (shift:-1 is the last complete shift)")
            shift = ShiftClock(calendar).previous(time.time_ns(), back)
        elif start is not None and start[10:11] == ":":  # YYYY-MM-DD:NAME
            shift = calendar.parse(start)
        elif start is not None:
            start_ns = iso_ns(start)
        if shift is not None:  # a historical shift: from its start, for its length
            start_ns = shift.start_ns
            if dur_s is None and frames is None:
                dur_s = (shift.end_ns - shift.start_ns) / NS
        faults = load_faults(faults_file) if faults_file else []
        config = SimConfig(seed=seed, rate_hz=rate, start_ns=start_ns, duration_s=dur_s, frames=frames,
                           robots=robots, scenarios=[s.strip() for s in scenarios.split(",") if s.strip()]
                           if scenarios else None, faults=faults, waveform_rate_hz=waveform_rate,
                           waveform_seconds=waveform_seconds, waveform_every=waveform_every,
                           waveform_dtype=waveform_dtype, calendar=calendar)
        sim = Simulation(config)
    except (ValueError, FaultError) as exc:
        raise click.UsageError(str(exc)) from None
    if history is None:  # a run that starts in the past is history: it must not pose as the live mine
        history = start_ns is not None and start_ns < time.time_ns() - 60 * NS

    sinks: list = []
    mqtt: MqttSink | None = None
    try:
        if output is not None:
            sinks.append(FileSink(output))
        if use_mqtt:
            mqtt = MqttSink(settings.mqtt, settings.topics, [r.id for r in sim.fleet], keepalive=int(config.keepalive_s),
                            ca=settings.mqtt_ca, cert=settings.mqtt_cert, key=settings.mqtt_key, history=history)
            mqtt.connect()
            sinks.append(mqtt)
    except SinkError as exc:
        raise click.ClickException(str(exc)) from None

    stop = {"now": False}

    def _stop(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    labels = None
    try:
        bounded = config.frames is not None or config.duration_s is not None
        if progress or (progress is None and bounded and sys.stderr.isatty()):
            sinks.append(ProgressSink(sim))
        if labels_out is not None:
            labels = LabelSink(labels_out, sim)
            sinks.append(labels)
        summary = run(sim, sinks, speed_x, should_stop=lambda: stop["now"])
    except SinkError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        for sink in sinks:
            sink.close()
    n_labels = labels.records if labels is not None else len(sim.labels())
    sys.stdout.write(json.dumps({**summary.as_dict(), "labels": n_labels, "history": bool(history and use_mqtt)}) + "\n")
