"""Alert rule settings: the shipped defaults (mar/reference/alert_rules.json) and a site file.

A site names its file with MAR_ALERT_RULES: a JSON object `{"rules": {RULE: {SETTING: value}}}`
whose settings replace the shipped ones one by one (a rule it does not name keeps its
defaults). A rule or setting the defaults do not know, or a value of the wrong kind, is an
error naming the file, the rule, the setting and the value: a typo must never silently leave
a default threshold in place.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from mar.errors import MarError

SEVERITIES = ("high", "moderate", "low")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


class AlertRulesError(MarError):
    pass


@dataclass(frozen=True)
class RuleSettings:
    name: str
    edition: str
    rules: dict  # rule name -> settings dict
    origin: str  # "shipped" or "shipped + <site file>"
    fingerprint: str  # digest of the effective settings: stored alerts are recomputed when it changes

    def rule(self, name: str) -> dict:
        return self.rules[name]

    def enabled(self, name: str) -> bool:
        return bool(self.rules[name]["enabled"])


def _shipped() -> dict:
    return json.loads(resources.files("mar.reference").joinpath("alert_rules.json").read_text())


@lru_cache(maxsize=8)
def load_rules(site_file: str | None = None) -> RuleSettings:
    data = _shipped()
    rules = copy.deepcopy(data["rules"])
    origin = "shipped"
    edition = str(data["edition"])
    if site_file:
        site = _read_site(site_file)
        for rule, settings in site.get("rules", {}).items():
            _merge(rules, rule, settings, site_file)
        origin = f"shipped + {site_file}"
        edition += f"+site:{site.get('edition', Path(site_file).name)}"
    text = json.dumps(rules, sort_keys=True)
    return RuleSettings(data["name"], edition, rules, origin, hashlib.sha256(text.encode()).hexdigest()[:16])


def default_rules() -> RuleSettings:
    return load_rules(os.environ.get("MAR_ALERT_RULES") or None)


def _read_site(path: str) -> dict:
    try:
        site = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AlertRulesError(f"cannot read alert rules {path} (MAR_ALERT_RULES): {exc}") from exc
    if not isinstance(site, dict) or not isinstance(site.get("rules", {}), dict):
        raise AlertRulesError(f"{path}: alert rules are a JSON object {{\"rules\": {{RULE: {{SETTING: value}}}}}}")
    unknown = set(site) - {"name", "edition", "title", "source", "rules"}
    if unknown:
        raise AlertRulesError(f"{path}: unknown top-level field(s) {', '.join(sorted(unknown))}")
    return site


def _merge(rules: dict, rule: str, settings, where: str) -> None:
    if rule not in rules:
        raise AlertRulesError(f"{where}: rules.{rule}: unknown rule; known: {', '.join(sorted(rules))}")
    if not isinstance(settings, dict):
        raise AlertRulesError(f"{where}: rules.{rule}={settings!r}: give an object of settings")
    for key, value in settings.items():
        if key not in rules[rule]:
            raise AlertRulesError(f"{where}: rules.{rule}.{key}: unknown setting; "
                                  f"known: {', '.join(sorted(rules[rule]))}")
        _check(f"{where}: rules.{rule}.{key}", key, rules[rule][key], value)
        rules[rule][key] = value


def _check(path: str, key: str, default, value) -> None:
    if key == "severity":
        if value not in SEVERITIES:
            raise AlertRulesError(f"{path}={value!r}: use one of {', '.join(SEVERITIES)}")
    elif key == "mme_table":
        if value is not None and not isinstance(value, str):
            raise AlertRulesError(f"{path}={value!r}: the name of an MME table, or null for the default")
    elif key == "thresholds":
        _check_thresholds(path, value)
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise AlertRulesError(f"{path}={value!r}: use true or false")
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise AlertRulesError(f"{path}={value!r}: a number, 0 or more")
    elif isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AlertRulesError(f"{path}={value!r}: a list of names")
    elif isinstance(default, str) and not isinstance(value, str):
        raise AlertRulesError(f"{path}={value!r}: text")


def _check_thresholds(path: str, value) -> None:
    ok = isinstance(value, list) and all(
        isinstance(t, dict) and set(t) == {"mme", "severity"} and isinstance(t["mme"], (int, float))
        and not isinstance(t["mme"], bool) and t["mme"] > 0 and t["severity"] in SEVERITIES for t in value)
    if not ok:
        raise AlertRulesError(f"{path}={value!r}: a list of {{\"mme\": number > 0, \"severity\": "
                              f"{'|'.join(SEVERITIES)}}}")
