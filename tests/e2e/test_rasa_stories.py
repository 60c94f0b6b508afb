"""Rasa's own test stories: the dialogue policies predict every action of tests/stories/."""

from __future__ import annotations

import subprocess

import pytest

from bot.rasa_model import RASA, rasa_environment, train_if_needed
from crm.settings import ROOT

pytestmark = pytest.mark.e2e


def test_rasa_test_stories_pass(tmp_path):
    model = train_if_needed()
    result = subprocess.run(
        [str(RASA), "test", "core", "--stories", "tests/stories", "--model", str(model),
         "--out", str(tmp_path), "--fail-on-prediction-errors", "--no-plot"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=rasa_environment(),
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, details
    assert "stories:" not in (failed.read_text() if failed.exists() else ""), details
