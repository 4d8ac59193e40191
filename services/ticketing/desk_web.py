"""The desk app's files under /desk/: a small installable web app (manifest, service worker) in
plain files, no build step (services/ticketing/desk/). Its third-party code comes from the npm
registry, pinned by services/ticketing/desk/package-lock.json and installed by `make desk`
(`npm ci`) into services/ticketing/desk/node_modules; each file is served from there under a
fixed name (VENDOR), never from a CDN.

Each file is a route of its own (nothing else under /desk/ is served, and no path is joined
from the request), with a Content-Security-Policy that allows only this origin (and the
compilation of the QR reader's WebAssembly).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

ROOT = Path(__file__).parent / "desk"
MODULES = ROOT / "node_modules"

# URL name under /desk/ -> file
FILES: dict[str, Path] = {
    "": ROOT / "index.html",
    "app.js": ROOT / "app.js",
    "i18n.js": ROOT / "i18n.js",
    "store.js": ROOT / "store.js",
    "verify.js": ROOT / "verify.js",
    "desk.css": ROOT / "desk.css",
    "sw.js": ROOT / "sw.js",
    "manifest.webmanifest": ROOT / "manifest.webmanifest",
    "icon.svg": ROOT / "icon.svg",
    "icon-192.png": ROOT / "icon-192.png",
    "icon-512.png": ROOT / "icon-512.png",
}
# Why these: docs in services/ticketing/desk/README.md.
VENDOR: dict[str, Path] = {
    "vendor/zxing-reader.js": MODULES / "zxing-wasm/dist/iife/reader/index.js",
    "vendor/zxing_reader.wasm": MODULES / "zxing-wasm/dist/reader/zxing_reader.wasm",
    "vendor/noble-ed25519.js": MODULES / "@noble/ed25519/index.js",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".wasm": "application/wasm",
}
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load (ETag): the service worker keeps the offline copy.
    "Cache-Control": "no-cache",
}

log = structlog.get_logger()


def _serve(path: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    content_type = TYPES[path.suffix or ".html"]
    installed = path.is_file()  # once, at startup (`make desk` installs the vendor files)

    async def serve(request: web.Request) -> web.StreamResponse:
        if not installed:
            return web.json_response(
                {"error": "not_installed", "detail": f"{path.name} is missing: run `make desk`"},
                status=404,
            )
        return web.FileResponse(path, headers={**HEADERS, "Content-Type": content_type})

    return serve


async def _to_app(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/desk/")


def missing_vendor_files() -> list[Path]:
    return [path for path in VENDOR.values() if not path.is_file()]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/desk", _to_app)
    for name, path in {**FILES, **VENDOR}.items():
        app.router.add_get(f"/desk/{name}", _serve(path))
    missing = missing_vendor_files()
    if missing:
        log.warning(
            "desk app's browser libraries are not installed: run `make desk`",
            missing=[str(p.relative_to(ROOT)) for p in missing],
        )
