"""The web dashboard (the ``web`` extra): ``create_app()`` returns a plain ASGI application.

    from goodjob_mp.web import create_app, BasicAuth
    app = create_app(auth=BasicAuth("admin", "s3cret"))

``goodjob-supervisor dashboard`` serves it with uvicorn; docs/dashboard.md shows how to mount
it inside FastAPI, Django and Flask.
"""

from goodjob_mp.web.security import BasicAuth

try:
    from goodjob_mp.web.app import create_app
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    _missing = exc

    def create_app(**_: object):  # type: ignore[misc]  # the fallback when the extra is missing
        raise ImportError(
            f"the dashboard needs the 'web' extra ({_missing}); "
            "install it with: pip install 'goodjob-mp[web]'"
        )


__all__ = ["BasicAuth", "create_app"]
