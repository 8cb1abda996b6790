"""The anchor of the STAC bench: pystac-client merely paging a search, the
way a harvest would read it (every page's items as dicts, next links
followed, one kept-alive session), writing nothing. Prints the seconds and
the number of items and pages.

    page_pystac_client.py URL COLLECTION START END PAGE_SIZE
"""

import sys
import time


def main(url: str, collection: str, start: str, end: str, page_size: int) -> None:
    from pystac_client import Client

    started = time.perf_counter()
    client = Client.open(url)
    search = client.search(
        collections=[collection],
        datetime=f"{start}/{end}",
        limit=page_size,
        sortby="datetime",
        method="GET",
    )
    items = pages = 0
    for page in search.pages_as_dicts():
        pages += 1
        items += len(page["features"])
    seconds = time.perf_counter() - started
    print(f"{seconds:.3f} {items} {pages}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
