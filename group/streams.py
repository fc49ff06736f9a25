"""The group's JetStream streams: ``MINE`` on each leaf node, ``GROUP`` at the centre sourcing them.

``MINE`` (file storage, one replica: a leaf node is one server) holds ``mw.<mine>.>`` with a
duplicate window of :data:`minewatch.group.DUPLICATE_WINDOW_S`, so a forwarder's redelivery after
a crash is stored once. ``GROUP`` (file storage, three replicas, no subjects of its own) sources
every mine's ``MINE`` through the mine's JetStream domain: while a mine's link is down its
``MINE`` keeps filling, and once the link is back the source resumes where it stopped, in order.
"""

from __future__ import annotations

from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.api import ExternalStream, RetentionPolicy, StorageType, StreamConfig, StreamInfo, StreamSource
from nats.js.errors import NotFoundError

from minewatch.group import DUPLICATE_WINDOW_S, GROUP_STREAM, MINE_STREAM, check_mine, js_api_prefix, mine_subjects

__all__ = ["mine_stream_config", "group_stream_config", "mine_source", "ensure_mine_stream", "ensure_group_stream",
           "add_mine", "remove_mine", "sourced_mines"]


def mine_stream_config(mine: str) -> StreamConfig:
    return StreamConfig(name=MINE_STREAM, subjects=[mine_subjects(mine)], storage=StorageType.FILE, num_replicas=1,
                        retention=RetentionPolicy.LIMITS, duplicate_window=float(DUPLICATE_WINDOW_S),
                        description=f"mine {mine}: its robots' telemetry, history and statuses")


def mine_source(mine: str) -> StreamSource:
    """``GROUP``'s source for one mine: that mine's ``MINE``, through its domain's API."""
    return StreamSource(name=MINE_STREAM, external=ExternalStream(api=js_api_prefix(check_mine(mine))))


def sourced_mines(info: StreamInfo) -> list[str]:
    """The mines ``GROUP`` sources, from its stream info."""
    out = []
    for s in info.config.sources or []:
        api = s.external.api if s.external is not None else None
        if s.name == MINE_STREAM and api and api.startswith("$JS.") and api.endswith(".API"):
            out.append(api[len("$JS."):-len(".API")])
    return out


def group_stream_config(mines: Iterable[str], replicas: int = 3) -> StreamConfig:
    return StreamConfig(name=GROUP_STREAM, subjects=[], storage=StorageType.FILE, num_replicas=replicas,
                        retention=RetentionPolicy.LIMITS, sources=[mine_source(m) for m in sorted(set(mines))],
                        description="the group's telemetry, every mine's MINE stream")


async def ensure_mine_stream(js: JetStreamContext, mine: str) -> StreamInfo:
    """Create the leaf's ``MINE`` if it is missing (its data is kept when it exists)."""
    cfg = mine_stream_config(mine)
    try:
        info = await js.stream_info(MINE_STREAM)
    except NotFoundError:
        return await js.add_stream(cfg)
    if info.config.subjects != cfg.subjects:
        raise ValueError(f"this leaf's {MINE_STREAM} holds {info.config.subjects}, not {cfg.subjects}: "
                         f"is it another mine's leaf node?")
    return info


async def ensure_group_stream(js: JetStreamContext, mines: Iterable[str] = (), replicas: int = 3) -> StreamInfo:
    """Create ``GROUP`` at the centre, or add the sources of ``mines`` it lacks (none removed)."""
    mines = [check_mine(m) for m in mines]
    try:
        info = await js.stream_info(GROUP_STREAM)
    except NotFoundError:
        return await js.add_stream(group_stream_config(mines, replicas))
    have = sourced_mines(info)
    missing = [m for m in mines if m not in have]
    if not missing:
        return info
    cfg = info.config
    cfg.sources = [*(cfg.sources or []), *(mine_source(m) for m in missing)]
    return await js.update_stream(cfg)


async def add_mine(js: JetStreamContext, mine: str) -> StreamInfo:
    """Source one more mine into ``GROUP`` (nothing changes if it is already sourced)."""
    return await ensure_group_stream(js, [mine])


async def remove_mine(js: JetStreamContext, mine: str) -> StreamInfo:
    """Stop sourcing ``mine`` (what ``GROUP`` already holds of it stays)."""
    info = await js.stream_info(GROUP_STREAM)
    cfg = info.config
    api = js_api_prefix(check_mine(mine))
    cfg.sources = [s for s in cfg.sources or [] if s.external is None or s.external.api != api]
    return await js.update_stream(cfg)
