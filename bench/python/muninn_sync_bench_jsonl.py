"""A Python muninn synchronizer for muninn-sync's JSON Lines feeds: what
muninn-sync's jsonl plugin (plugins/jsonl, docs/jsonl.md) does with a feed,
written as a muninn 7.5 user would write it. muninn-sync-bench runs it with
muninn's own muninn-sync beside ours on the same feed (bench/src/python_muninn.rs).

    [synchronizer:feed]
    module = muninn_sync_bench_jsonl
    path = /srv/feed.jsonl
    product_types = S2MSI1C S2MSI2A   (optional; whitespace-separated)

Like the plugin it applies the lines of the window [start, end) in order of
`modified`, only the newest line of each product; looks the products of
256 lines up in one search per product type; creates a product the
catalogue lacks, updates the properties that differ of one it has (every
property of the line with --force; a product keeps its uuid, active,
archive_path and archive_date), and writes nothing when nothing differs;
manages every namespace the feed mentions (a property the line lacks is
made null, a namespace it lacks is removed); removes the product of a
deletion line, found by uuid when the line has one.

What it leaves out, being what the plugin keeps in muninn-sync's own
tables and namespace: the `jsonl` namespace (a line's fingerprint, so an
unchanged line is compared property by property here instead of skipped
unparsed), tombstones, watermarks and owner records.

Namespace values are converted by the namespace's schema (a muninn
namespace extension declares it): a time string for a Timestamp, a whole
number for a Real.
"""

import datetime
import json
import logging
import re
import uuid
from collections import defaultdict

import muninn
from muninn import language
from muninn.geometry import Geometry
from muninn.schema import Real, Timestamp
from muninn.struct import Struct

# Lines looked up in the catalogue together, as the plugin does.
CHUNK = 256

# The namespace of the uuids derived from type and name (docs/jsonl.md).
DERIVED_UUIDS = uuid.UUID("6d756e69-6e6e-5379-6e63-000000000001")

TIME_FIELDS = ("validity_start", "validity_stop", "creation_date")
# The core properties a line sets, beside product_type and product_name.
LINE_FIELDS = ("physical_name", "size", "hash") + TIME_FIELDS + ("remote_url", "footprint")

_EXTRA_FRACTION = re.compile(r"(\.\d{6})\d+")

log = logging.getLogger(__name__)


def parse_time(text):
    """A feed time as muninn keeps it: naive, in UTC."""
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        # Digits past the microsecond are dropped.
        value = datetime.datetime.fromisoformat(_EXTRA_FRACTION.sub(r"\1", text, count=1))
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def parse_footprint(wkt):
    """A WKT footprint as a muninn geometry, by muninn's own parser."""
    literal = language.parse(wkt)
    if not isinstance(getattr(literal, "value", None), Geometry):
        raise muninn.Error("footprint: not a WKT geometry: %r" % wkt)
    return literal.value


class JsonlSynchronizer(object):
    def __init__(self, config):
        # The section without `module`: every value is a string.
        self.path = config["path"]
        types = config.get("product_types")
        self.product_types = None if types is None else set(types.split())

    def wanted(self, product_type, product_types):
        return (product_types is None or product_type in product_types) and \
            (self.product_types is None or product_type in self.product_types)

    def sync(self, archive, product_types=None, start=None, end=None, force=False):
        lines, managed = self.newest_lines(product_types, start, end)
        # The namespaces a product is compared in: those the feed mentions.
        namespaces = sorted(name for name in managed if name in archive.namespaces())
        counts = dict(created=0, updated=0, removed=0, unchanged=0, failed=0)
        for first in range(0, len(lines), CHUNK):
            chunk = lines[first:first + CHUNK]
            stored = self.look_up(archive, chunk, namespaces)
            for line in chunk:
                key = (line["product_type"], line["product_name"])
                try:
                    outcome = self.apply(archive, line, stored.get(key), namespaces, force)
                except (muninn.Error, ValueError, KeyError, TypeError) as error:
                    log.error("%s/%s: %s", key[0], key[1], error)
                    outcome = "failed"
                if outcome is not None:
                    counts[outcome] += 1
        log.info("sync done: %(created)d created, %(updated)d updated, %(removed)d removed, "
                 "%(failed)d failed, %(unchanged)d unchanged", counts)
        if counts["failed"]:
            raise muninn.Error("%d lines failed" % counts["failed"])

    def newest_lines(self, product_types, start, end):
        """The newest line in the window of each wanted product, in order of
        `modified` (then feed order), and every namespace the feed names."""
        newest = {}
        managed = set()
        with open(self.path, "rb") as feed:
            for number, text in enumerate(feed):
                if not text.strip():
                    continue
                line = json.loads(text)
                managed.update(line.get("namespaces") or ())
                if not self.wanted(line["product_type"], product_types):
                    continue
                modified = parse_time(line["modified"])
                if (start is not None and modified < start) or (end is not None and modified >= end):
                    continue
                key = (line["product_type"], line["product_name"])
                seen = newest.get(key)
                if seen is None or seen[0] <= modified:
                    newest[key] = (modified, number, line)
        return [line for _, _, line in sorted(newest.values(), key=lambda s: s[:2])], managed

    def look_up(self, archive, chunk, namespaces):
        """The catalogue's products of a chunk of lines, by type and name:
        one search per product type."""
        names = defaultdict(list)
        for line in chunk:
            names[line["product_type"]].append(line["product_name"])
        stored = {}
        for product_type, product_names in names.items():
            for product in archive.search("product_type == @type and product_name in @names",
                                          parameters={"type": product_type, "names": product_names},
                                          namespaces=namespaces):
                stored[(product_type, product.core.product_name)] = product
        return stored

    def apply(self, archive, line, product, namespaces, force):
        """Creates, updates or removes the product of a line; returns what
        it did."""
        if line.get("deleted"):
            if line.get("uuid"):
                found = archive.search("uuid == @uuid", parameters={"uuid": uuid.UUID(line["uuid"])},
                                       property_names=["uuid"])
                product = found[0] if found else None
            if product is None:
                return None
            archive.remove(product.core.uuid)
            return "removed"

        core = Struct()
        core.product_type = line["product_type"]
        core.product_name = line["product_name"]
        core.physical_name = line.get("physical_name") or line["product_name"]
        core.size = line.get("size")
        core.hash = line.get("hash")
        for field in TIME_FIELDS:
            core[field] = None if line.get(field) is None else parse_time(line[field])
        core.remote_url = line.get("remote_url")
        core.footprint = None if line.get("footprint") is None else parse_footprint(line["footprint"])
        values = {}
        for name, properties in (line.get("namespaces") or {}).items():
            schema = archive.namespace_schema(name)
            values[name] = {prop: self.namespace_value(schema[prop], value)
                            for prop, value in properties.items() if value is not None}

        if product is None:
            properties = Struct()
            properties.core = Struct()
            for field in core:
                if core[field] is not None:
                    properties.core[field] = core[field]
            properties.core.uuid = uuid.UUID(line["uuid"]) if line.get("uuid") else \
                uuid.uuid5(DERIVED_UUIDS, "%s/%s" % (core.product_type, core.product_name))
            properties.core.active = True
            for name, namespace_values in values.items():
                properties[name] = self.struct(namespace_values)
            archive.create_properties(properties)
            return "created"

        changes = Struct()
        changes.core = Struct()
        for field in core:
            if force or getattr(product.core, field, None) != core[field]:
                changes.core[field] = core[field]
        if not changes.core:
            del changes.core
        new_namespaces = False
        for name in namespaces:
            stored = getattr(product, name, None)
            if name not in values:
                if stored is not None:
                    changes[name] = None
                continue
            if stored is None:
                changes[name] = self.struct(values[name])
                new_namespaces = True
                continue
            changed = Struct()
            for prop in archive.namespace_schema(name):
                if prop == "uuid":
                    continue
                value = values[name].get(prop)
                if force or getattr(stored, prop, None) != value:
                    changed[prop] = value
            if changed:
                changes[name] = changed
        if not changes:
            return "unchanged"
        archive.update_properties(changes, uuid=product.core.uuid, create_namespaces=new_namespaces)
        return "updated"

    @staticmethod
    def struct(values):
        # Not Struct(values), which would make a JSON object a Struct.
        result = Struct()
        for name, value in values.items():
            result[name] = value
        return result

    @staticmethod
    def namespace_value(kind, value):
        if issubclass(kind, Timestamp) and isinstance(value, str):
            return parse_time(value)
        if issubclass(kind, Real) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


def synchronizer(config):
    return JsonlSynchronizer(config)
