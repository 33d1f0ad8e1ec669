"""Compute drivers by flavour: the `netfate.compute` entry points and the loader's errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import EntryPoint, EntryPoints
from pathlib import Path
from typing import Any

import pytest

from netfate.bundle import BundleStore
from netfate.drivers import capabilities, registry
from netfate.drivers.native import NativeCompute
from netfate.errors import NetfateError, UnknownFlavour
from netfate.interfaces import ComputeContext, ComputeDriver, NFInfo, NotificationSource


class FakeQueue:
    def drain(self) -> list[dict[str, Any]]:
        return []


class FakeCompute:
    """Just enough of a compute driver to be built and named."""

    def __init__(self, ctx: ComputeContext, flavour: str = "fake") -> None:
        self.ctx = ctx
        self._flavour = flavour

    @property
    def flavour(self) -> str:
        return self._flavour

    @property
    def queue(self) -> NotificationSource:
        return FakeQueue()

    def list_nfs(self) -> list[NFInfo]:
        return []


@pytest.fixture
def ctx(tmp_path: Path) -> ComputeContext:
    return ComputeContext(node="n1", rundir=tmp_path, store=BundleStore(tmp_path / "bundles"))


@pytest.fixture
def clean() -> Iterator[None]:
    yield
    for name in ("fake", "fake2", "broken"):
        registry.unregister(name)


def test_native_is_registered_through_its_entry_point(ctx: ComputeContext) -> None:
    eps = {ep.name: ep.value for ep in registry._entry_points()}
    assert eps.get("native") == "netfate.drivers.native:NativeCompute.from_context"
    assert "native" in registry.available()
    driver = registry.build("native", ctx)
    assert isinstance(driver, NativeCompute)
    assert driver.flavour == "native" and driver.node == "n1"


def test_unknown_flavour_names_it_and_the_known_ones(ctx: ComputeContext) -> None:
    with pytest.raises(UnknownFlavour) as err:
        registry.factory("wasm")
    msg = str(err.value)
    assert "'wasm'" in msg and "known: " in msg and "native" in msg
    with pytest.raises(UnknownFlavour, match="'wasm'"):
        registry.build_all(ctx, ["native", "wasm"])


def test_register_in_code(ctx: ComputeContext, clean: None) -> None:
    registry.register("fake", FakeCompute)
    assert "fake" in registry.available()
    assert isinstance(registry.build("fake", ctx), FakeCompute)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("fake", lambda c: FakeCompute(c))
    with pytest.raises(ValueError, match="flavour"):
        registry.register("Not A Name", FakeCompute)


def test_a_driver_must_run_the_flavour_it_is_registered_as(
    ctx: ComputeContext, clean: None
) -> None:
    registry.register("fake2", FakeCompute)  # its driver says "fake"
    with pytest.raises(NetfateError, match="registered as 'fake2' runs flavour 'fake'"):
        registry.build("fake2", ctx)


def test_build_all_leaves_out_what_cannot_run(ctx: ComputeContext, clean: None,
                                             caplog: pytest.LogCaptureFixture) -> None:
    def broken(c: ComputeContext) -> ComputeDriver:
        raise NetfateError("runc is missing")

    registry.register("fake", FakeCompute)
    registry.register("broken", broken)
    with caplog.at_level(logging.DEBUG, logger=registry.log.name):
        drivers = registry.build_all(ctx)
    assert "fake" in drivers and "native" in drivers and "broken" not in drivers
    # Found by trying every flavour (the direct CLI, on every command): not a warning.
    left_out = [r for r in caplog.records if "broken" in r.getMessage()]
    assert left_out and all(r.levelno == logging.DEBUG for r in left_out)
    caplog.clear()
    assert set(registry.build_all(ctx, ["fake", "broken"])) == {"fake"}
    assert any(r.levelno == logging.WARNING and "broken" in r.getMessage()
               for r in caplog.records)  # asked for by name: news
    assert set(registry.build_all(ctx, ["fake"])) == {"fake"}
    with pytest.raises(UnknownFlavour, match=r"no compute driver could be built.*runc is missing"):
        registry.build_all(ctx, ["broken"])


def test_entry_point_that_fails_to_load_is_reported(
    ctx: ComputeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = EntryPoint(name="broken", value="netfate.no_such_module:Driver",
                     group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: EntryPoints([bad]))
    with pytest.raises(UnknownFlavour) as err:
        registry.factory("broken")
    assert "netfate.no_such_module:Driver failed to load" in str(err.value)
    assert "known: broken" in str(err.value)


def test_capability_report_lists_the_flavours_hosted(clean: None) -> None:
    assert capabilities.infrastructure(["native"])["flavours"] == ["native"]
    registry.register("fake", FakeCompute)
    assert capabilities.infrastructure()["flavours"] == registry.available()
    assert "fake" in registry.available()


def test_pyproject_and_docs_agree_on_the_native_entry_point() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    value = project["entry-points"][registry.ENTRY_POINT_GROUP]["native"]
    assert value == "netfate.drivers.native:NativeCompute.from_context"
    assert f'native = "{value}"' in (root / "docs" / "drivers.md").read_text()
