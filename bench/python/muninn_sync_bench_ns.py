"""The `eo` namespace of muninn-sync-bench's feeds (bench/src/feed.rs), for
Python muninn.

A muninn namespace extension: Python muninn knows a namespace's properties
and their types only from such a module, named in the archive's
`namespace_extensions`. The types are those muninn-sync's jsonl synchronizer
gives the feed's JSON values (docs/jsonl.md): a whole number is a 64-bit
integer (muninn's Long), a fraction a Real, a string with a time zone a
Timestamp.
"""

from muninn.schema import Long, Mapping, Real, Text, Timestamp, optional


class EO(Mapping):
    cloud_cover = optional(Real)
    platform = optional(Text)
    orbit = optional(Long)
    sensing_time = optional(Timestamp)


NAMESPACES = {"eo": EO}


def namespaces():
    return list(NAMESPACES)


def namespace(name):
    return NAMESPACES[name]
