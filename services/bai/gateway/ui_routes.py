"""The web UI's static files as Envoy routes (Envoy has no directory server)."""

from __future__ import annotations

import mimetypes
import urllib.parse
from pathlib import Path
from typing import Any

FILTER_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
# Routes that are not API calls switch the JSON transcoder off (it rejects unknown methods).
TRANSCODER_OFF = {
    "envoy.filters.http.grpc_json_transcoder": {"@type": FILTER_CONFIG_TYPE, "disabled": True}
}


_UTF8_TYPES = frozenset({"application/javascript", "application/json", "image/svg+xml"})


def ui_routes(web_root: Path) -> tuple[list[dict[str, Any]], int]:
    """Static files under /ui/, one direct_response route per file.

    Envoy has no directory server, so the files are listed when the config is
    rendered and Envoy reads them into memory at start: re-render and restart
    after the UI is rebuilt. Unknown paths under /ui/ get index.html (for a
    single-page app's client-side routes). Returns the routes and the largest
    body size (for max_direct_response_body_size_bytes).
    """
    # Static files are not API calls: the transcoder is switched off here too.
    off = TRANSCODER_OFF
    root = web_root.resolve()
    # "/" and "/ui" lead a browser to the UI; no gRPC or REST path is either.
    routes: list[dict[str, Any]] = [
        {
            "match": {"path": path},
            "redirect": {"path_redirect": "/ui/"},
            "typed_per_filter_config": off,
        }
        for path in ("/", "/ui")
    ]
    largest = 0
    index = root / "index.html"

    def serve(path: str, file: Path) -> dict[str, Any]:
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in _UTF8_TYPES:
            ctype += "; charset=utf-8"
        return {
            "match": {"path": path},
            "direct_response": {"status": 200, "body": {"filename": str(file)}},
            "response_headers_to_add": [
                {
                    "header": {"key": "content-type", "value": ctype},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
            ],
            "typed_per_filter_config": off,
        }

    files = sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        largest = max(largest, file.stat().st_size)
        rel = file.relative_to(root).as_posix()
        routes.append(serve("/ui/" + urllib.parse.quote(rel), file))
    if index.is_file():
        routes.append(serve("/ui/", index))
        fallback = serve("/ui/", index)
        fallback["match"] = {"prefix": "/ui/"}
        routes.append(fallback)
    else:
        routes.append(
            {
                "match": {"prefix": "/ui/"},
                "direct_response": {"status": 404},
                "typed_per_filter_config": off,
            }
        )
    return routes, largest
