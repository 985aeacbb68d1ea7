"""Every metric the alert rules reference exists, so an alert cannot silently never fire."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

import tradebot.app  # noqa: F401 - registers every module-level metric
from tests.conftest import REPO


def test_alert_rules_reference_only_real_metrics() -> None:
    text = (REPO / "config" / "prometheus-rules.yml").read_text()
    used = set(re.findall(r"\b(tradebot_[a-z_]+)", text))
    known = set(REGISTRY._names_to_collectors)  # the registry's own index
    scraped = {"tradebot_feed_last_message_timestamp_seconds"}  # from the scrape-time collector
    missing = sorted(used - known - scraped)
    assert not missing, missing
    assert len(used) >= 10
