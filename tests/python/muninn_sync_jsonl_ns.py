"""The `jsonl` namespace muninn-sync's jsonl synchronizer keeps for itself
(docs/jsonl.md), declared for Python muninn: optional, because products
muninn made itself do not have it."""

from muninn.schema import Long, Mapping, Timestamp, optional


class Jsonl(Mapping):
    modified = optional(Timestamp)
    fingerprint = optional(Long)
    key = optional(Long)


def namespaces():
    return ["jsonl"]


def namespace(name):
    if name != "jsonl":
        raise KeyError(name)
    return Jsonl
