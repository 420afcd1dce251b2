"""/docs: Swagger UI served from the installed swagger-ui-bundle-v2 package, never a CDN,
so the page works on a network that reaches nothing outside."""

from swagger_ui_bundle import swagger_ui_path

from services.booking.entrypoints.api.http import Call, Endpoint, Handler
from services.booking.entrypoints.api.messages import Response

PREFIX = "/docs/"
# The distribution's files the page loads, and how each is served.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# The assets are named by the package's version, so a new version is a new URL.
CACHE = {"cache-control": "public, max-age=86400"}
PAGE = """<!doctype html>
<html><head><title>{title}</title><meta charset="utf-8">
<link rel="stylesheet" href="{prefix}swagger-ui.css">
<link rel="icon" type="image/png" href="{prefix}favicon-32x32.png">
</head><body><div id="swagger-ui"></div>
<script src="{prefix}swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}})</script>
</body></html>"""


def _constant(response: Response) -> Handler:
    async def answer(_: Call) -> Response:
        return response

    return answer


def endpoints(title: str) -> list[Endpoint]:
    """GET /docs and the files it loads, read once from the installed package."""
    version = swagger_ui_path.name.removeprefix("swagger-ui-")
    prefix = f"{PREFIX}{version}/"
    found = [Endpoint("GET", "/docs", _constant(Response(
        PAGE.format(title=title, prefix=prefix), media_type="text/html; charset=utf-8")),
        access="public", documented=False)]
    for name, media_type in ASSETS.items():
        body = (swagger_ui_path / name).read_bytes()
        found.append(Endpoint("GET", prefix + name, _constant(Response(body, headers=CACHE,
                              media_type=media_type)), access="public", documented=False))
    return found
