"""The action server: rasa-sdk's own Sanic app, closed to everybody but our Rasa server.

rasa-sdk 3.6.2 has no authentication, listens on every interface (SANIC_HOST, 0.0.0.0 by
default), allows every CORS origin and, when an action raises, answers 500 with the whole tracker
in the body (which Rasa then writes into its log). The actions trust the tracker's `sender_id`,
so whoever can reach the server could read and change any client's data. Here:

- every request but `/health` must carry `Authorization: Bearer <ACTION_SERVER_TOKEN>` (Rasa
  sends it: `action_endpoint.headers` in endpoints.yml); anything else is answered 401 and runs
  nothing;
- it listens on ACTION_SERVER_HOST, 127.0.0.1 by default;
- no CORS origin is allowed (Rasa calls it server to server);
- an action that raises (a form validator included) answers the client with an apology in their
  language and no events, so the conversation goes on (a form asks its question again); it is
  logged with where it failed, never with the tracker. Anything else unexpected is answered 500
  with no tracker in the body.

Run with `python -m actions.server --port 5055` (bot/services.py does).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys
import threading
import traceback

from crm.i18n import normalise_language, t
from crm.settings import SettingError, install, read

log = logging.getLogger("actions.server")
OPEN_PATHS = ("/health",)


def _where(exception: BaseException) -> str:
    # Where it failed, not what it held: an exception's message can quote the tracker.
    return "".join(traceback.format_tb(exception.__traceback__)[-3:])


def _language(action_call: dict) -> str:
    tracker = action_call.get("tracker") or {}
    language = (tracker.get("slots") or {}).get("language") or \
        ((tracker.get("latest_message") or {}).get("metadata") or {}).get("language")
    return normalise_language(language)


def safe_executor():
    """rasa-sdk's executor, but an action that raises answers with an apology instead of a 500:
    on a 500 Rasa drops the whole turn, the bot apologises for Rasa being down, and the same
    message would fail again when it is answered later."""
    from rasa_sdk.executor import ActionExecutor
    from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

    class SafeExecutor(ActionExecutor):
        async def run(self, action_call):
            try:
                return await super().run(action_call)
            except (ActionExecutionRejection, ActionNotFoundException):
                raise  # rasa-sdk's own answers (400, 404): Rasa knows what to do with them
            except Exception as exc:
                log.error("action %s failed: %s\n%s", action_call.get("next_action"), type(exc).__name__, _where(exc))
                return {"events": [], "responses": [{"text": t("chat.apology", _language(action_call))}]}

    return SafeExecutor


def create_app(token: str):
    from rasa_sdk import endpoint
    from sanic import response

    # endpoint.create_app builds its executor from this module global: ours in its place.
    endpoint.ActionExecutor = safe_executor()
    app = endpoint.create_app("actions", cors_origins=[])
    expected = f"Bearer {token}".encode()

    @app.middleware("request")
    async def require_the_secret(request):
        if request.path in OPEN_PATHS:
            return None
        given = (request.headers.get("authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("refused a call to %s without the shared secret from %s", request.path, request.ip)
            return response.json({"error": "unauthorised"}, status=401)
        return None

    async def failed(request, exception):
        log.error("the action server failed on %s: %s\n%s", request.path, type(exception).__name__, _where(exception))
        return response.json({"error": "the action failed"}, status=500)

    app.error_handler.add(Exception, failed)
    return app


def warm_up() -> None:
    """Load the sentence encoder and build the catalogue's search index while the server starts,
    so the first client who asks about a product does not wait for them (about a second)."""
    try:
        from actions.common import run_in_unit_of_work
        from crm.catalog import search_index
        from crm.meaning import available

        available()
        run_in_unit_of_work(search_index)
    except Exception as exc:  # a database not migrated yet, say: the first search builds it
        log.warning("warm-up skipped: %s", type(exc).__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actions.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="default: ACTION_PORT, else 5055")
    args = parser.parse_args(argv)
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = install(read())  # read once; the actions and crm/ use these
    except SettingError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    from crm.company import ProfileError, company_profile

    try:
        company_profile()  # the actions answer from it: checked whole before the first call
    except ProfileError as exc:
        print(f"Error in the company profile: {exc}", file=sys.stderr)
        return 2
    # numpy's OpenBLAS on one thread (search by meaning: encoding the question, comparing it with
    # the products' vectors): its idle threads wait busily long after each call, which cost the
    # action server 25 ms of CPU a message on 2 cores against 5 on one thread (`make bench` e2e
    # rows), for a millisecond or two less search.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    port = args.port or settings.action_port
    app = create_app(settings.action_token)
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    log.info("action server on http://%s:%s (shared secret required)", settings.action_host, port)
    app.run(host=settings.action_host, port=port, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
