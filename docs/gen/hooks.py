"""mkdocs hook (mkdocs.yml `hooks:`): the generated parts of the pages, made at every build.

A page asks for one with a marker line; the hook replaces it:

| marker | replaced by | source |
| --- | --- | --- |
| `<!-- generate: openapi -->` | endpoints, schemas, status codes | `python -m serving.openapi` (docs/gen/openapi_md.py) |
| `<!-- generate: settings -->` | every environment variable | `data.settings.markdown()` |
| `<!-- generate: results bench -->` | collected `make bench` runs | docs/results/*/meta.json (docs/gen/results_md.py) |
| `<!-- generate: results evaluate -->` | collected `fanzha evaluate` runs | the same |
| `<!-- generate: results gate -->` | collected gate reports (`fanzha promote`'s gate) | the same |

A source that fails stops the build (`mkdocs build --strict` turns the logged error into a
failure), so a page never ships with a stale or missing table.
"""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for path in (str(REPO), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import openapi_md  # noqa: E402
import results_md  # noqa: E402

log = logging.getLogger("mkdocs.plugins.fanzha")
MARKER = re.compile(r"^<!--\s*generate:\s*([a-z]+)(?:\s+([a-z-]+))?\s*-->\s*$", re.M)
_cache: dict[str, str] = {}


def settings_markdown() -> str:
    from data import settings  # helper-10's module: one definition of every environment variable

    return settings.markdown()


def generate(what: str, arg: str | None) -> str:
    key = f"{what} {arg or ''}"
    if key not in _cache:
        if what == "openapi":
            _cache[key] = openapi_md.render(openapi_md.load_document())
        elif what == "settings":
            _cache[key] = settings_markdown()
        elif what == "results" and arg in results_md.HOW:
            _cache[key] = results_md.render(arg)
        else:
            raise ValueError(f"unknown marker: generate: {key.strip()}")
    return _cache[key]


def on_config(config, **kwargs):
    _cache.clear()  # `mkdocs serve` rebuilds: regenerate from the code as it is now
    return config


def on_page_markdown(markdown: str, page, config, files, **kwargs):
    def replace(match: re.Match) -> str:
        try:
            return generate(match.group(1), match.group(2))
        except Exception as e:  # noqa: BLE001 — reported as a build error below
            log.error(f"{page.file.src_uri}: cannot generate {match.group(0).strip()}: {type(e).__name__}: {e}")
            return f"!!! failure \"Not generated\"\n    {type(e).__name__}: {e}\n"

    return MARKER.sub(replace, markdown)
