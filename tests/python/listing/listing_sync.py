"""A Python muninn synchronizer: keeps one product type in step with a JSON
listing, a file holding a list of {"name", "modified", "size", "url"} and
{"name", "modified", "deleted": true} entries.

docs/migrating-from-muninn.md shows it beside its port to a muninn-sync
plugin (plugin/src/lib.rs); tests/tests/python_muninn.rs runs both, with
muninn's muninn-sync and with ours, on the same listing.

    [synchronizer:listing]
    module = listing_sync
    path = /srv/listing.json
    product_type = S2MSI1C
"""

import datetime
import json

from muninn.struct import Struct


class ListingSynchronizer(object):
    def __init__(self, config):
        # The section without `module`: every value is a string.
        self.path = config["path"]
        self.product_type = config["product_type"]

    def sync(self, archive, product_types=None, start=None, end=None, force=False):
        if product_types is not None and self.product_type not in product_types:
            return
        with open(self.path) as listing:
            entries = sorted(json.load(listing), key=lambda entry: entry["modified"])
        for entry in entries:
            modified = datetime.datetime.strptime(entry["modified"], "%Y-%m-%dT%H:%M:%S")
            # muninn leaves the window's meaning to the synchronizer: here
            # [start, end), as muninn-sync has it.
            if (start is not None and modified < start) or (end is not None and modified >= end):
                continue
            found = archive.search("product_type == @type and product_name == @name",
                                   parameters={"type": self.product_type, "name": entry["name"]},
                                   property_names=["uuid", "size", "remote_url"])
            if entry.get("deleted"):
                if found:
                    archive.remove(found[0].core.uuid)
                continue
            properties = Struct()
            properties.core = Struct()
            properties.core.size = entry["size"]
            properties.core.remote_url = entry["url"]
            if not found:
                properties.core.uuid = archive.generate_uuid()
                properties.core.active = True
                properties.core.product_type = self.product_type
                properties.core.product_name = entry["name"]
                properties.core.physical_name = entry["name"]
                archive.create_properties(properties)
            elif force or (found[0].core.size, found[0].core.remote_url) != (entry["size"], entry["url"]):
                archive.update_properties(properties, uuid=found[0].core.uuid)


def synchronizer(config):
    return ListingSynchronizer(config)
