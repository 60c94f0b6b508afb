"""Run by .venv-rasa's Python (our code never imports rasa): parse every example of a Rasa NLU
file with a trained model, exactly as the server would (FallbackClassifier included), and print
one JSON line per example: {"text", "intent", "prediction", "confidence", "ranking", "ms"}, where
"ranking" lists the classifier's top intents with their confidences before the fallback decided
(so a benchmark can try other thresholds without parsing again), and "ms" the parse time.

Usage: .venv-rasa/bin/python tools/rasa_parse.py MODEL.tar.gz FILE.yml [FILE.yml ...]
(the model is loaded once; each line also names its "file")
"""

import asyncio
import json
import logging
import sys
import time


async def main(model: str, paths: list[str]) -> None:
    from rasa.core.agent import Agent
    from rasa.shared.nlu.training_data.loading import load_data

    agent = Agent.load(model)
    for path in paths:
        for example in load_data(path).intent_examples:
            started = time.perf_counter()
            result = await agent.parse_message(example.get("text"))
            milliseconds = (time.perf_counter() - started) * 1000
            intent = result.get("intent") or {}
            ranking = [[r.get("name"), round(float(r.get("confidence") or 0.0), 5)]
                       for r in result.get("intent_ranking") or [] if r.get("name") != "nlu_fallback"][:3]
            print(json.dumps({
                "file": path,
                "text": example.get("text"),
                "intent": example.get("intent"),
                "prediction": intent.get("name"),
                "confidence": intent.get("confidence"),
                "ranking": ranking,
                "ms": round(milliseconds, 2),
            }, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
