"""The group deployment's moving parts (issue #19): NATS servers, streams, the forwarder, ``group up``.

The names (subjects, partitions, streams) live in :mod:`minewatch.group`; ``docs/scale.md``
shows the whole picture.
"""
