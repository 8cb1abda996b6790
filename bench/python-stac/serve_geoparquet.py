"""Serves a stac-geoparquet file with stac-fastapi-geoparquet under uvicorn
on 127.0.0.1, with the DuckDB extensions the duckdb-ext-* packages put in
the virtualenv (scripts/install-bench-python.sh), so that nothing is
downloaded at start. Prints the base URL once the server answers.

    serve_geoparquet.py ITEMS.parquet PORT
"""

import pathlib
import sys
import threading
import time
import urllib.request


def main(href: str, port: int) -> None:
    import duckdb_ext
    import rustac
    import uvicorn
    from stac_fastapi.geoparquet.api import create
    from stac_fastapi.geoparquet.settings import Settings

    extensions = pathlib.Path(duckdb_ext.__path__[0]) / "extensions"
    client = rustac.DuckdbClient(
        extension_directory=str(extensions),
        install_extensions=False,
        extensions=["spatial", "icu"],
    )
    settings = Settings(
        stac_fastapi_landing_id="muninn-sync-bench",
        stac_fastapi_title="muninn-sync-bench",
        stac_fastapi_description="The bench's items",
        stac_fastapi_geoparquet_href=str(pathlib.Path(href).absolute()),
    )
    app = create(settings=settings, duckdb_client=client).app
    base = f"http://127.0.0.1:{port}"

    def announce() -> None:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/", timeout=5).read()
                print(base, flush=True)
                return
            except OSError:
                time.sleep(0.1)
        print("the server did not answer", file=sys.stderr, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
