"""Prints, as JSON, every product of a muninn archive as Python muninn's API
reads it: each property's Python type and value.

    python dump_products.py ARCHIVE [EXPRESSION]

The output is a list, ordered by product_name, of
{"<namespace>.<property>": {"type": "<module>.<class>", "value": ...}}:
timestamps as isoformat(), uuids as str(), geometries as muninn's WKT.
"""

import datetime
import json
import sys
import uuid

import muninn
import muninn.geometry


def describe(value):
    kind = type(value)
    if isinstance(value, datetime.datetime):
        shown = value.isoformat()
    elif isinstance(value, uuid.UUID):
        shown = str(value)
    elif isinstance(value, muninn.geometry.Geometry):
        shown = value.as_wkt()
    else:
        shown = value
    return {"type": "%s.%s" % (kind.__module__, kind.__name__), "value": shown}


def main():
    archive_id = sys.argv[1]
    expression = sys.argv[2] if len(sys.argv) > 2 else ""
    with muninn.open(archive_id) as archive:
        products = archive.search(expression, order_by=["+core.product_name"],
                                  namespaces=archive.namespaces())
        dumped = []
        for product in products:
            properties = {}
            for namespace in vars(product):
                for name, value in vars(product[namespace]).items():
                    properties["%s.%s" % (namespace, name)] = describe(value)
            dumped.append(properties)
    json.dump(dumped, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
