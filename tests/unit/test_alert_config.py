"""Alert rule settings: shipped defaults, a site file overriding them, and clear refusals."""
from __future__ import annotations

import copy
import json

import pytest

from projections.alerts.config import AlertRulesError, RuleSettings, default_rules, load_rules
from projections.alerts.engine import RULES


def only(*names, **changes) -> RuleSettings:
    """The shipped settings with only `names` enabled, and some settings changed (for rule tests)."""
    base = load_rules()
    rules = copy.deepcopy(base.rules)
    for name, settings in rules.items():
        settings["enabled"] = name in names
        settings.update(changes.get(name, {}))
    return RuleSettings(base.name, base.edition, rules, "test", "test")


def site(tmp_path, data) -> str:
    path = tmp_path / "site-rules.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_every_rule_has_shipped_settings_severity_and_rationale():
    rules = load_rules()
    assert set(rules.rules) == set(RULES)
    for name, settings in rules.rules.items():
        assert settings["enabled"] is True, name
        assert settings.get("rationale"), name
        assert "severity" in settings or "thresholds" in settings, name
    assert [t["mme"] for t in rules.rule("mme_threshold")["thresholds"]] == [50, 90]
    assert rules.rule("mme_rise")["rise_percent"] == 100
    assert rules.origin == "shipped"


def test_a_site_file_replaces_single_settings_and_keeps_the_rest(tmp_path, monkeypatch):
    path = site(tmp_path, {"edition": "north-2026", "rules": {
        "mme_threshold": {"thresholds": [{"mme": 120, "severity": "high"}]},
        "adjuvant_taper": {"rise_percent": 50},
        "duplicate_opioid": {"enabled": False}}})
    monkeypatch.setenv("MAR_ALERT_RULES", path)
    rules = default_rules()
    assert rules.rule("mme_threshold")["thresholds"] == [{"mme": 120, "severity": "high"}]
    assert rules.rule("adjuvant_taper")["rise_percent"] == 50
    assert rules.rule("adjuvant_taper")["window_hours"] == 24  # untouched default
    assert not rules.enabled("duplicate_opioid")
    assert rules.edition == "2026.1+site:north-2026"
    assert rules.fingerprint != load_rules().fingerprint


@pytest.mark.parametrize("rules, message", [
    ({"mme_treshold": {}}, "rules.mme_treshold: unknown rule; known: "),
    ({"mme_rise": {"rise_pct": 50}}, "rules.mme_rise.rise_pct: unknown setting; known: enabled, min_previous_mme"),
    ({"mme_rise": {"rise_percent": "50"}}, "rules.mme_rise.rise_percent='50': a number, 0 or more"),
    ({"mme_rise": {"rise_percent": -5}}, "rules.mme_rise.rise_percent=-5: a number, 0 or more"),
    ({"pca_limit": {"severity": "critical"}}, "rules.pca_limit.severity='critical': use one of high, moderate, low"),
    ({"pca_limit": {"enabled": "yes"}}, "rules.pca_limit.enabled='yes': use true or false"),
    ({"mme_threshold": {"thresholds": [{"mme": 0, "severity": "high"}]}},
     "rules.mme_threshold.thresholds=[{'mme': 0, 'severity': 'high'}]: a list of "),
    ({"adjuvant_taper": {"classes": "nmda_antagonist"}}, "rules.adjuvant_taper.classes='nmda_antagonist': a list of names"),
])
def test_a_wrong_site_setting_is_refused_naming_rule_setting_and_value(tmp_path, rules, message):
    path = site(tmp_path, {"rules": rules})
    with pytest.raises(AlertRulesError) as err:
        load_rules(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_an_unreadable_site_file_is_an_error_naming_the_variable(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(AlertRulesError, match=r"cannot read alert rules .*broken.json \(MAR_ALERT_RULES\)"):
        load_rules(str(path))
