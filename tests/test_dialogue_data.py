"""The dialogue files agree with each other: every intent a form's text slots exclude has a rule
for that form, and every action the rules use is declared."""

import yaml

from crm.settings import ROOT


def load(name):
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def test_every_excluded_intent_has_a_rule_inside_its_form():
    domain, rules = load("domain.yml"), load("data/rules.yml")["rules"]
    for form, spec in domain["forms"].items():
        excluded = set()
        for slot in spec["required_slots"]:
            for mapping in domain["slots"][slot]["mappings"]:
                excluded |= set(mapping.get("not_intent", []))
        covered = {step["intent"] for r in rules if {"active_loop": form} in (r.get("condition") or [])
                   for step in r["steps"][:1] if "intent" in step}
        assert excluded == covered, f"{form}: without a rule {excluded - covered}, not excluded {covered - excluded}"


def test_rules_use_declared_actions_and_intents():
    domain, rules = load("domain.yml"), load("data/rules.yml")["rules"]
    known = set(domain["actions"]) | set(domain["responses"]) | set(domain["forms"]) | {
        "action_listen", "action_default_fallback"}
    for r in rules:
        for step in r["steps"]:
            if "action" in step:
                assert step["action"] in known, step
            if "intent" in step:
                assert step["intent"] in domain["intents"] or step["intent"] == "nlu_fallback", step


def test_the_action_server_registers_every_custom_action_of_the_domain():
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    custom = {a for a in load("domain.yml")["actions"] if a.startswith(("action_", "validate_"))}
    assert custom <= set(executor.actions), custom - set(executor.actions)
