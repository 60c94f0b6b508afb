from bot.nlu_eval import nlu_examples, score
from bot.rasa_model import training_files, training_hash


def test_fallback_counts_as_out_of_scope():
    result = score([("out_of_scope", "nlu_fallback"), ("out_of_scope", "greet"), ("greet", "greet"),
                    ("greet", "nlu_fallback")])
    assert result["accuracy"] == 0.5
    assert result["per_intent"]["out_of_scope"]["recall"] == 0.5
    assert result["per_intent"]["greet"]["precision"] == 0.5
    assert result["confusions"][0]["count"] == 1


def test_macro_f1_is_over_the_labels_of_the_file():
    result = score([("out_of_scope", "out_of_scope")] * 9 + [("out_of_scope", "ask_catalog")])
    assert result["accuracy"] == 0.9
    assert round(result["macro_f1"], 3) == round(2 * 1 * 0.9 / 1.9, 3)


def test_the_model_cache_key_covers_every_training_input():
    names = {p.name for p in training_files()}
    assert {"config.yml", "domain.yml", "rules.yml", "stories.yml", "basics.yml", "catalog.yml"} <= names
    assert "heldout.yml" not in names, "the held-out set must never be trained on"
    assert len(training_hash()) == 16 and training_hash() == training_hash()


def test_the_managers_labels_make_another_model_and_both_are_kept(tmp_path):
    from bot.rasa_model import keep_only, model_path

    (tmp_path / "var").mkdir()
    labels = tmp_path / "var" / "labelled.yml"
    assert training_hash(labels) == training_hash(), "no file yet: the repository's model"
    labels.write_text('version: "3.1"\nnlu:\n- intent: ask_catalog\n  examples: |\n    - le bidule\n')
    assert labels in training_files(labels) and training_hash(labels) != training_hash()
    labels.write_text(labels.read_text() + "    - le machin\n")
    assert training_hash(labels) != training_hash(), "every label counts"
    for name in ("a.tar.gz", "a.training.json", "b.tar.gz", "c.tar.gz"):
        (tmp_path / name).write_bytes(b"x")
    keep_only(tmp_path / "b.tar.gz", tmp_path / "a.tar.gz")
    assert sorted(p.name for p in tmp_path.glob("*.tar.gz")) == ["a.tar.gz", "b.tar.gz"]
    assert model_path(labels) != model_path()


def test_a_new_model_replaces_the_old_ones_but_not_the_benchmarks_folder(tmp_path):
    from bot.rasa_model import keep_only

    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "baseline-1.tar.gz").write_bytes(b"x")
    for name in ("old.tar.gz", "old.training.json", "new.tar.gz", "new.training.json"):
        (tmp_path / name).write_bytes(b"x")
    keep_only(tmp_path / "new.tar.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "new.tar.gz", "new.training.json"]
    assert (tmp_path / "bench" / "baseline-1.tar.gz").exists()


def test_the_held_out_set_shares_no_sentence_with_the_training_data():
    from crm.settings import ROOT

    def examples(path):
        return {text.lower() for text, _ in nlu_examples(path)}

    training = set().union(*(examples(p) for p in (ROOT / "nlu").glob("*.yml")))
    held_out = examples(ROOT / "tests" / "nlu" / "heldout.yml")
    assert held_out and not training & held_out
