"""The intent classifier: a regularised logistic regression over the message's word counts and
its sentence vectors (encoders.py), as a Rasa graph component.

Each block of features is scaled to unit length, then weighted: the sentence vectors carry the
meaning (`dense_weight`), the word counts the exact words of our trade (`sparse_weight`). With
1,700 sentences and 30 intents a linear model generalises better than a deep one: it trains in
seconds, and its probabilities, once the fallback threshold is tuned (see the README), say well
when it does not know. The weights are stored as plain arrays (numpy's .npz, no pickle).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Text, Type

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)


def _unit_rows(matrix: scipy.sparse.csr_matrix) -> scipy.sparse.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    return scipy.sparse.diags(scale) @ matrix


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    """Multinomial logistic regression on weighted, unit-length feature blocks."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Featurizer]

    @staticmethod
    def required_packages() -> List[Text]:
        return ["sklearn", "scipy"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"C": 100.0, "sparse_weight": 1.0, "dense_weight": 3.0, "max_iter": 3000,
                "ranking_length": 10, "class_weight": "balanced"}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 classes: Optional[List[Text]] = None, coef: Optional[np.ndarray] = None,
                 intercept: Optional[np.ndarray] = None) -> None:
        self.config = {**self.get_default_config(), **config}
        for key in ("C", "sparse_weight", "dense_weight"):
            if not isinstance(self.config[key], (int, float)) or self.config[key] < 0:
                raise InvalidConfigException(f"LinearIntentClassifier: '{key}' must be a number >= 0.")
        self._model_storage = model_storage
        self._resource = resource
        self.classes = classes or []
        self.coef = coef
        self.intercept = intercept

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "LinearIntentClassifier":
        return cls(config, model_storage, resource)

    # --- features ------------------------------------------------------------------------------

    def features(self, messages: List[Message]) -> Optional[scipy.sparse.csr_matrix]:
        """One row per message: [word counts (unit length) * w_sparse, sentence vectors * w_dense]."""
        sparse_rows, dense_rows = [], []
        for message in messages:
            sparse = message.get_sparse_features(TEXT)[1]
            dense = message.get_dense_features(TEXT)[1]
            sparse_rows.append(None if sparse is None else scipy.sparse.csr_matrix(sparse.features))
            dense_rows.append(None if dense is None else np.asarray(dense.features, dtype=np.float64))
        blocks = []
        if any(r is not None for r in sparse_rows):
            width = max(r.shape[1] for r in sparse_rows if r is not None)
            rows = [r if r is not None else scipy.sparse.csr_matrix((1, width)) for r in sparse_rows]
            blocks.append(_unit_rows(scipy.sparse.vstack(rows).tocsr()) * self.config["sparse_weight"])
        if any(r is not None for r in dense_rows):
            width = max(r.shape[1] for r in dense_rows if r is not None)
            rows = [r if r is not None else np.zeros((1, width)) for r in dense_rows]
            blocks.append(scipy.sparse.csr_matrix(np.vstack(rows)) * self.config["dense_weight"])
        return scipy.sparse.hstack(blocks).tocsr() if blocks else None

    # --- training ------------------------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.linear_model import LogisticRegression

        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        labels = [e.get(INTENT) for e in examples]
        X = self.features(examples)
        self.classes = sorted(set(labels))
        if X is None or len(self.classes) < 2:
            logger.warning("LinearIntentClassifier: fewer than two intents with features; "
                           "every message will get the one intent there is.")
            self.coef = np.zeros((len(self.classes), 0 if X is None else X.shape[1]))
            self.intercept = np.zeros(len(self.classes))
        else:
            model = LogisticRegression(C=self.config["C"], max_iter=self.config["max_iter"],
                                       class_weight=self.config["class_weight"], random_state=0,
                                       multi_class="multinomial")
            model.fit(X, labels)
            self.classes = [str(c) for c in model.classes_]
            self.coef, self.intercept = model.coef_, model.intercept_
        self.persist()
        return self._resource

    def probabilities(self, X: scipy.sparse.csr_matrix) -> np.ndarray:
        if len(self.classes) < 2:
            return np.ones((X.shape[0], len(self.classes)))
        return softmax(np.asarray(X @ self.coef.T) + self.intercept)

    # --- inference -----------------------------------------------------------------------------

    def process(self, messages: List[Message]) -> List[Message]:
        positions = [i for i, m in enumerate(messages) if m.get(TEXT)] if self.classes else []
        X = self.features([messages[i] for i in positions]) if positions else None
        rows = dict(zip(positions, self.probabilities(X))) if X is not None else {}
        for i, message in enumerate(messages):
            if i not in rows:  # no text (an empty message): no intent, so the fallback answers
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
                message.set("intent_ranking", [], add_to_output=True)
                continue
            ranking = self.ranking(rows[i])
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking[: max(1, self.config["ranking_length"])], add_to_output=True)
        return messages

    def ranking(self, row: np.ndarray) -> List[Dict[Text, Any]]:
        order = np.argsort(-row, kind="stable")
        return [{INTENT_NAME_KEY: self.classes[i], PREDICTED_CONFIDENCE_KEY: float(row[i])} for i in order]

    # --- storage -------------------------------------------------------------------------------

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as folder:
            (folder / "classes.json").write_text(json.dumps(self.classes), encoding="utf-8")
            np.savez(folder / "weights.npz", coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "LinearIntentClassifier":
        try:
            with model_storage.read_from(resource) as folder:
                classes = json.loads((folder / "classes.json").read_text(encoding="utf-8"))
                with np.load(folder / "weights.npz", allow_pickle=False) as weights:
                    coef, intercept = weights["coef"], weights["intercept"]
        except (ValueError, FileNotFoundError):
            logger.warning("LinearIntentClassifier: no trained weights in the model; it predicts nothing.")
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, classes, coef, intercept)


