"""One mapping between the team's Dagster asset keys and dbt nodes.

Every check, sensor and op finds a dbt node from an asset key (and back) through :class:`DbtAssetKeys`,
built with the team's own ``DagsterDbtTranslator`` and settings, so nothing assumes dagster-dbt's
default keys: a translator that prefixes keys (``["analytics", "fct_orders"]``) moves every check and
finding onto the assets people look at.

The translator comes from, in order: the instance passed to the library-mode factory, the import path
in ``AGENT_DE_DBT_TRANSLATOR`` (``package.module:ClassName``, instantiated with no arguments), a key
prefix in ``AGENT_DE_ASSET_KEY_PREFIX`` (``analytics`` or ``analytics/dbt``), else dagster-dbt's default
(with dbt tests, source tests included, as checks).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetCheckKey, AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from dagster_agent_de.errors import ConfigError
from dagster_agent_de.manifest import Manifest, Node

_ASSET_TYPES = ("model", "seed", "snapshot", "source")
_REGISTERED: dict[str, DagsterDbtTranslator] = {}


def default_translator_settings() -> DagsterDbtTranslatorSettings:
    return DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_tests_as_checks=True)


class PrefixedDbtTranslator(DagsterDbtTranslator):
    """dagster-dbt's translator with every dbt asset key under ``prefix`` (the common custom translator).

    >>> PrefixedDbtTranslator(["analytics"]).get_asset_key(
    ...     {"resource_type": "model", "name": "fct_orders", "config": {}, "meta": {}}).path
    ['analytics', 'fct_orders']
    """

    def __init__(self, prefix: Sequence[str], settings: DagsterDbtTranslatorSettings | None = None) -> None:
        super().__init__(settings or default_translator_settings())
        self.prefix = list(prefix)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        return super().get_asset_key(dbt_resource_props).with_prefix(self.prefix)


def translator_ref(translator: DagsterDbtTranslator) -> str:
    """A name for a translator instance, registered so run workers that load the same code find it."""
    ref = f"{type(translator).__module__}:{type(translator).__qualname__}"
    _REGISTERED[ref] = translator
    return ref


def resolve_translator(ref: str | None = None, prefix: Sequence[str] | None = None) -> DagsterDbtTranslator:
    """The team's translator: a registered instance or import path, a key prefix, else the default."""
    ref = ref if ref is not None else os.environ.get("AGENT_DE_DBT_TRANSLATOR") or None
    if prefix is None:
        raw = os.environ.get("AGENT_DE_ASSET_KEY_PREFIX", "")
        prefix = [p for p in raw.replace(".", "/").split("/") if p]
    if ref:
        if ref in _REGISTERED:
            return _REGISTERED[ref]
        module_name, _, attr = ref.partition(":")
        if not module_name or not attr:
            raise ConfigError(f"AGENT_DE_DBT_TRANSLATOR={ref!r}: use package.module:ClassName")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"cannot import the dbt translator {ref!r} ({e}); is its package installed "
                              "in the agent's code location?") from e
        translator = cls()
        if not isinstance(translator, DagsterDbtTranslator):
            raise ConfigError(f"{ref!r} is not a DagsterDbtTranslator subclass")
        return translator
    if prefix:
        return PrefixedDbtTranslator(prefix)
    return DagsterDbtTranslator(default_translator_settings())


@dataclass(frozen=True)
class DbtAssetKeys:
    """Asset keys of every dbt model, seed, snapshot and source, and check keys of every dbt test,
    as the team's translator makes them."""

    by_uid: Mapping[str, AssetKey]
    by_key: Mapping[AssetKey, str]
    test_checks: Mapping[str, AssetCheckKey]
    """dbt test unique_id -> the check key dagster-dbt gives it (where the translator makes checks)."""

    @classmethod
    def build(cls, manifest: Mapping[str, Any], translator: DagsterDbtTranslator) -> DbtAssetKeys:
        """One pass over the manifest with the translator (``get_asset_spec`` is memoized by dagster-dbt)."""
        from dagster_dbt.asset_utils import build_dbt_specs  # what @dbt_assets itself calls: same keys

        by_uid: dict[str, AssetKey] = {}
        nodes = {**(manifest.get("nodes") or {}), **(manifest.get("sources") or {})}
        for uid, raw in nodes.items():
            if raw.get("resource_type") in _ASSET_TYPES and (raw.get("config") or {}).get("materialized") != "ephemeral":
                by_uid[uid] = translator.get_asset_spec(manifest, uid, None).key
        _, check_specs = build_dbt_specs(translator=translator, manifest=manifest, select="fqn:*", exclude="",
                                         selector="", io_manager_key=None, project=None)
        test_checks: dict[str, AssetCheckKey] = {}
        for spec in check_specs:
            uid = (spec.metadata or {}).get("dagster_dbt/unique_id") if spec.metadata else None
            test_checks[str(uid or spec.name)] = spec.key
        return cls(by_uid, {k: u for u, k in by_uid.items()}, test_checks)

    def key(self, node: Node | str) -> AssetKey:
        """The asset key of a node (or unique_id)."""
        uid = node.unique_id if isinstance(node, Node) else node
        try:
            return self.by_uid[uid]
        except KeyError:
            raise ConfigError(f"{uid} has no asset key (not a model, seed, snapshot or source?)") from None

    def node(self, manifest: Manifest, key: AssetKey | Sequence[str]) -> Node:
        """The dbt node of an asset key; a plain model name (``['fct_orders']``) also works, for
        investigations started by hand."""
        asset_key = key if isinstance(key, AssetKey) else AssetKey(list(key))
        uid = self.by_key.get(asset_key)
        if uid is not None and uid in manifest.nodes:
            return manifest.nodes[uid]
        return manifest.find("/".join(asset_key.path))

    def model_keys(self, manifest: Manifest) -> dict[str, AssetKey]:
        """Model name -> asset key, for the checks built per model."""
        return {n.name: self.by_uid[n.unique_id] for n in manifest.nodes.values()
                if n.resource_type != "source" and n.unique_id in self.by_uid}

    @property
    def dbt_test_check_keys(self) -> list[AssetCheckKey]:
        return sorted(set(self.test_checks.values()), key=lambda k: k.to_user_string())
