"""Namespaces of the products the python_muninn tests sync, for Python muninn.

A muninn namespace extension (muninn's "Namespace extension API"): Python
muninn knows a namespace's properties and their types only from such a
module, named in the archive's `namespace_extensions`. The types are those
muninn-sync's jsonl synchronizer writes for the feed's JSON values
(docs/jsonl.md): a whole number is a 64-bit integer (muninn's Long), a
fraction a Real, a string with a time zone a Timestamp, an object JSON.
"""

from muninn.schema import JSON, Boolean, Long, Mapping, Real, Text, Timestamp, optional


class EO(Mapping):
    cloud_cover = optional(Real)
    platform = optional(Text)


class Props(Mapping):
    n = optional(Long)
    r = optional(Real)
    b = optional(Boolean)
    t = optional(Text)
    ts = optional(Timestamp)
    j = optional(JSON)


NAMESPACES = {"eo": EO, "props": Props}


def namespaces():
    return list(NAMESPACES)


def namespace(name):
    return NAMESPACES[name]
