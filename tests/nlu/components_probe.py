"""Run by .venv-rasa's Python from tests/test_nlu_components.py (our test suite never imports rasa):
train a small NLU model with our pipeline components, load it as the server does, parse the
messages given on standard input (one JSON list of texts) and print one JSON object with the
results. Every network connection is refused in this process: the encoders must work offline.

Usage: .venv-rasa/bin/python tests/nlu/components_probe.py CONFIG.yml NLU.yml OUT_DIR < texts.json
"""

import asyncio
import json
import logging
import socket
import sys


def refuse_network() -> list:
    attempts = []

    def refused(self, address, *args, **kwargs):
        attempts.append(str(address))
        raise OSError("network refused by components_probe")

    socket.socket.connect = refused
    socket.socket.connect_ex = refused
    return attempts


async def main(config: str, nlu: str, out: str) -> None:
    attempts = refuse_network()
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    texts = json.load(sys.stdin)
    model = train_nlu(config=config, nlu_data=nlu, output=out, fixed_model_name="probe")
    agent = Agent.load(model)
    results = []
    for text in texts:
        parsed = await agent.parse_message(text)
        results.append({"text": text[:80], "intent": (parsed.get("intent") or {}).get("name"),
                        "confidence": (parsed.get("intent") or {}).get("confidence"),
                        "ranking": [r["name"] for r in parsed.get("intent_ranking") or []][:3]})
    print(json.dumps({"results": results, "network_attempts": attempts}, ensure_ascii=False))


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    asyncio.run(main(*sys.argv[1:4]))
