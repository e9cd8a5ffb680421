"""A ``/metrics`` exposition as prometheus-client's own parser reads it."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "parse"]


class Scrape:
    """Families by name; samples looked up by sample name and a subset of labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families: dict[str, Metric] = {}
        for family in text_string_to_metric_families(text):
            assert family.name not in self.families, f"family {family.name} twice"
            self.families[family.name] = family

    def samples(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [
            (sample.labels, sample.value)
            for family in self.families.values()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample named ``name`` whose labels include ``labels``."""
        return sum(value for _, value in self.samples(name, **labels))

    def value(self, name: str, **labels: str) -> float:
        """The one sample with exactly these labels."""
        found = [v for got, v in self.samples(name, **labels) if got == labels]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
        return found[0]

    def label_values(self, name: str, label: str) -> set[str]:
        return {got[label] for got, _ in self.samples(name) if label in got}


def parse(text: str | bytes) -> Scrape:
    return Scrape(text.decode() if isinstance(text, bytes) else text)
