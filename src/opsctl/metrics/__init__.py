"""Prometheus metrics: the catalog of names, registry helpers and publishing.

Every metric opsctl exports is declared once in :mod:`opsctl.metrics._catalog`; the
helpers here create it on a registry with the catalog's help text, unit and labels, so a
name can never drift between the monitor, the batch commands, the rendered rules and the
documentation. prometheus_client is imported only when a registry is made.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from opsctl.metrics._catalog import CATALOG, LABEL_BOUNDS, MetricSpec, spec_for

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = [
    "CATALOG",
    "LABEL_BOUNDS",
    "MetricSpec",
    "counter",
    "gauge",
    "new_registry",
    "publish",
    "spec_for",
]

_lock = threading.Lock()
# Metrics already made per registry, so that asking twice returns the same metric instead
# of prometheus_client's "Duplicated timeseries" error (the monitor asks every cycle).
_made: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def new_registry() -> CollectorRegistry:
    """Return a fresh registry, without the process and platform collectors of the default."""
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def gauge(registry: CollectorRegistry, name: str) -> Gauge:
    """Return the gauge ``name`` on ``registry``, created from the catalog on first use.

    Raises ``KeyError`` for a name not in the catalog and ``ValueError`` for a counter.
    """
    return cast("Gauge", _metric(registry, spec_for(name), "gauge"))


def counter(registry: CollectorRegistry, name: str) -> Counter:
    """Return the counter ``name`` on ``registry``, created from the catalog on first use.

    Raises ``KeyError`` for a name not in the catalog and ``ValueError`` for a gauge.
    """
    return cast("Counter", _metric(registry, spec_for(name), "counter"))


def publish(
    registry: CollectorRegistry,
    *,
    job: str,
    push_gateway: str | None = None,
    textfile_dir: str | Path | None = None,
) -> None:
    """Push ``registry`` to a Pushgateway and/or write it as a node_exporter textfile.

    The push replaces the group of ``job`` with grouping key ``instance=<hostname>``; the
    textfile is ``<textfile_dir>/opsctl_<job>.prom``, replaced atomically. Both are done
    when both are given; nothing when neither is. Raises
    :class:`opsctl.errors.UsageError` for a malformed URL or job name and
    :class:`opsctl.errors.OperationFailedError` when the gateway refuses or does not answer
    or the folder is missing or not writable; the URL is shown without its credentials.
    """
    from opsctl.metrics._publish import publish as publish_registry

    publish_registry(registry, job=job, push_gateway=push_gateway, textfile_dir=textfile_dir)


def _metric(registry: CollectorRegistry, spec: MetricSpec, wanted: str) -> Any:
    if spec.type != wanted:
        message = f"{spec.name!r} is a {spec.type} in opsctl's metric catalog; use {spec.type}()."
        raise ValueError(message)

    with _lock:
        made = _made.setdefault(registry, {})
        if spec.name not in made:
            made[spec.name] = _create(registry, spec)
        return made[spec.name]


def _create(registry: CollectorRegistry, spec: MetricSpec) -> Any:
    from prometheus_client import Counter, Gauge

    # prometheus_client appends the unit to a name that does not end with it; the GPU's
    # verbatim names carry their unit only in the documentation.
    unit = spec.unit if spec.unit and spec.name.endswith(f"_{spec.unit}") else ""
    kind = Gauge if spec.type == "gauge" else Counter
    return kind(spec.name, spec.help, labelnames=spec.labels, unit=unit, registry=registry)
