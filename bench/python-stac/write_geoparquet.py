"""Writes the bench's STAC items (one JSON item per line) as stac-geoparquet,
with rustac's own writer, for stac-fastapi-geoparquet to serve.

    write_geoparquet.py ITEMS.ndjson OUT.parquet
"""

import asyncio
import json
import sys


async def main(items_path: str, out: str) -> None:
    import rustac

    with open(items_path) as lines:
        items = [json.loads(line) for line in lines if line.strip()]
    await rustac.write(out, items)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
