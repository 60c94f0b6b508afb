"""Run by .venv-rasa's Python (our code never imports rasa): `rasa run ...` with the HTTP API's
token taken from the environment (RASA_TOKEN) instead of the command line, where `ps` would show
it to every user of the machine. Rasa 3.6 reads the token from `--auth-token` only, so it is added
to this process's own argument list, which the kernel does not show. It stays in this process's
environment (readable by its owner only) for our REST channel (nlu_components/channel.py), which
answers only the calls that carry it.

Usage: RASA_TOKEN=... .venv-rasa/bin/python tools/rasa_server.py run --enable-api ...
"""

import os
import sys


def main() -> None:
    token = os.environ.get("RASA_TOKEN", "").strip()
    if not token:
        sys.exit("tools/rasa_server.py: RASA_TOKEN is not set")
    sys.argv = ["rasa", *sys.argv[1:], "--auth-token", token]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
