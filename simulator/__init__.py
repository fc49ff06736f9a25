"""The simulated mine and its robot fleet: physics, shifts, faults with ground truth.

Python API (see ``docs/simulator.md``)::

    from simulator import SimConfig, Simulation, load_faults

    sim = Simulation(SimConfig(seed=7, start_ns=..., duration_s=3600,
                               faults=load_faults("builtin:demo")))
    for batch in sim.frames():   # list[minewatch.wire.Frame] per MQTT message, in publish order
        ...
    labels = sim.labels()        # ground truth, once the run has ended

* :class:`SimConfig`: seed, rate, start, duration or frame count, fleet size and scenarios,
  faults, waveform settings, shift pattern. The same config gives byte-identical output.
* :class:`Simulation`: ``ticks()`` yields :class:`Tick` (``t_ns``, ``messages`` of
  :class:`Message`, ``statuses`` of :class:`StatusUpdate`); ``frames()`` yields the frame batches
  only; ``readings()`` the raw readings per tick (:class:`Readings`) without frames or link, for fast
  whole-shift checks; ``labels()`` the ground-truth records of :mod:`simulator.labels`.
* :func:`run` drives a simulation into sinks (:class:`FileSink`, :class:`MqttSink`) in real time,
  accelerated, or as fast as possible.
* :func:`load_faults` reads a JSON/YAML fault file, ``builtin:NAME``, or a list of dicts.
"""

from simulator.engine import Message, Readings, SimConfig, Simulation, StatusUpdate, Tick
from simulator.faults import KINDS, LIBRARY, FaultError, FaultSpec, load_faults
from simulator.runner import Summary, run
from simulator.sinks import FileSink, LabelSink, MqttSink, SinkError, payload_of

__all__ = ["SimConfig", "Simulation", "Tick", "Readings", "Message", "StatusUpdate", "load_faults", "FaultSpec", "FaultError",
           "KINDS", "LIBRARY", "run", "Summary", "FileSink", "LabelSink", "MqttSink", "SinkError", "payload_of"]
