"""The FastAPI application factory."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from caisse import console
from caisse.api.routes import admin, terminals
from caisse.config import Settings
from caisse.db import make_engine, session_factory
from caisse.errors import CaisseError, SyncUnauthorized

logger = logging.getLogger("caisse")
# 400 is what FastAPI raises for a body it cannot parse (bad JSON, nesting too deep for its parser).
_HTTP_CODES = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """The app, on the settings' database unless an engine is given (tests share theirs)."""
    settings = settings or Settings()
    engine = engine or make_engine(settings.database_url)
    # /docs and /redoc with their Swagger UI and ReDoc assets served from the package: no CDN, so
    # they work on a server or a laptop without internet.
    app = FastAPIOffline(title="Caisse", version="0.1.0", static_url="/docs-assets")
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    app.include_router(terminals.router)
    app.include_router(admin.router)
    console.install(app)

    @app.exception_handler(CaisseError)
    async def _caisse_error(request: Request, error: CaisseError) -> Response:
        if console.is_console(request):
            return console.error_page(request, status_code=error.status_code, error=error)
        body: dict[str, object] = {"error": error.code, "detail": error.detail}
        if isinstance(error, SyncUnauthorized) and error.server_time is not None:
            body["server_time"] = error.server_time
        return JSONResponse(body, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> Response:
        if console.is_console(request):
            return console.error_page(request, status_code=422)
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        code = "invalid_batch" if request.url.path.endswith("/batches") else "invalid_request"
        return JSONResponse({"error": code, "detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        if console.is_console(request):
            return console.error_page(request, status_code=error.status_code)
        code = _HTTP_CODES.get(error.status_code, "http_error")
        return JSONResponse({"error": code, "detail": str(error.detail)}, status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        # The request's transaction was rolled back when its session closed: nothing half-written.
        logger.exception("unexpected error", exc_info=error)
        if console.is_console(request):
            return console.error_page(request, status_code=500)
        return JSONResponse({"error": "internal_error", "detail": "unexpected error, nothing was stored"}, status_code=500)

    return app
