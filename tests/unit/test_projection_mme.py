"""MME tables: shipped data, tiers, patches, missing factors, site tables."""
from __future__ import annotations

import json

import pytest

from mar.errors import MarError
from projections import mme
from projections.mme import UnknownMmeTable, load_table, tables
from projections.report import totals
from projections.timeline import zone
from projections.totals import Amount


@pytest.fixture(autouse=True)
def _fresh_cache():
    mme._tables.cache_clear()
    yield
    mme._tables.cache_clear()


def test_shipped_tables_have_source_and_edition():
    found = tables()
    assert {"cdc-2022", "cdc-2016", "cdc-2022-nci"} <= set(found)
    for t in found.values():
        assert t.source and t.edition and t.origin == "shipped"


@pytest.mark.parametrize("drug, route, factor", [
    ("morphine", "po", 1), ("hydromorphone", "po", 5), ("oxycodone", "po", 1.5), ("hydrocodone", "po", 1),
    ("oxymorphone", "po", 3), ("codeine", "po", 0.15), ("tapentadol", "po", 0.4), ("tramadol", "po", 0.2),
    ("methadone", "po", 4.7), ("hydromorphone", "iv", 20), ("morphine", "iv", 3),
])
def test_cdc_2022_factors(drug, route, factor):
    assert load_table("cdc-2022").mme(drug, route, 10, 10, 24) == pytest.approx(10 * factor)


def test_default_is_cdc_2022_and_nci_changes_only_parenteral_hydromorphone():
    assert load_table().name == "cdc-2022"
    nci = load_table("cdc-2022-nci")
    assert nci.mme("hydromorphone", "iv", 1, 1, 24) == 15
    assert nci.mme("hydromorphone", "po", 1, 1, 24) == 5
    assert nci.mme("methadone", "po", 10, 10, 24) == pytest.approx(47)


@pytest.mark.parametrize("day_mg, factor", [(10, 4), (20, 4), (20.5, 8), (40, 8), (40.01, 10), (60, 10),
                                            (60.5, 12), (120, 12)])
def test_cdc_2016_methadone_tiers_on_the_days_total(day_mg, factor):
    t = load_table("cdc-2016")
    assert t.mme("methadone", "po", day_mg, day_mg, 24) == pytest.approx(day_mg * factor)
    # an hour's share is priced at the day's tier
    assert t.mme("methadone", "po", 1, day_mg, 24) == factor


def test_transdermal_fentanyl_per_mean_mcg_per_h_over_the_real_day():
    t = load_table("cdc-2022")
    # a 25 mcg/h patch: 0.6 mg on a 24-hour day, 0.625 mg on the 25-hour day -> 60 MME both
    assert t.mme("fentanyl", "td", 0.6, 0.6, 24) == pytest.approx(60)
    assert t.mme("fentanyl", "td", 0.625, 0.625, 25) == pytest.approx(60)


def test_buprenorphine_and_unlisted_routes_get_no_mme_and_say_why():
    tz = zone("America/Los_Angeles")
    rows = [Amount("2007-10-15", None, 0, 0, "buprenorphine", "sl", 8.0),
            Amount("2007-10-15", None, 0, 0, "methadone", "iv", 10.0),
            Amount("2007-10-15", None, 0, 0, "oxycodone", "po", 10.0),
            Amount("2007-10-15", None, 0, 0, "gabapentin", "po", 900.0)]
    day = totals("p", tz, rows, load_table("cdc-2022"))["days"][0]
    by_drug = {x["drug"]: x for x in day["drugs"]}
    assert day["mme"] == 15 and day["mme_missing"] == ["buprenorphine sl", "methadone iv"]
    assert "buprenorphine" in by_drug["buprenorphine"]["mme_note"]
    assert by_drug["methadone"]["mme_note"] == "no factor for methadone iv in cdc-2022"
    assert by_drug["gabapentin"]["mme"] is None and "mme_note" not in by_drug["gabapentin"]


def test_unknown_table_names_the_known_ones():
    with pytest.raises(UnknownMmeTable, match="no MME table 'who-1996'; known: cdc-2016, cdc-2022, cdc-2022-nci"):
        load_table("who-1996")


def test_a_site_adds_a_table_that_extends_a_shipped_one(tmp_path, monkeypatch):
    (tmp_path / "site.json").write_text(json.dumps({
        "name": "st-mary-2024", "extends": "cdc-2022", "edition": "2024-01", "source": "pharmacy committee",
        "factors": [{"drug": "methadone", "route": "iv", "factor": 9.4, "source": "local"}]}))
    monkeypatch.setenv("MAR_MME_TABLES", str(tmp_path))
    site = load_table("st-mary-2024")
    assert site.origin.endswith("site.json")
    assert site.mme("methadone", "iv", 10, 10, 24) == pytest.approx(94)
    assert site.mme("oxycodone", "po", 10, 10, 24) == pytest.approx(15)  # inherited


def test_a_site_table_cannot_replace_a_shipped_one(tmp_path, monkeypatch):
    (tmp_path / "bad.json").write_text(json.dumps({"name": "cdc-2022", "edition": "x", "source": "y", "factors": []}))
    monkeypatch.setenv("MAR_MME_TABLES", str(tmp_path))
    with pytest.raises(MarError, match="is a shipped table"):
        load_table("cdc-2022")


def test_a_malformed_factor_is_refused_with_its_place(tmp_path, monkeypatch):
    (tmp_path / "t.json").write_text(json.dumps({"name": "t", "edition": "1", "source": "s",
                                                 "factors": [{"drug": "x", "route": "po", "per": "mg/kg"}]}))
    monkeypatch.setenv("MAR_MME_TABLES", str(tmp_path / "t.json"))
    with pytest.raises(MarError, match=r"factors\[0\]: per='mg/kg'"):
        load_table("t")
