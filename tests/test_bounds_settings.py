"""The settings of the connection and body bounds: flags, variables, checks."""

from __future__ import annotations

import resource

import pytest

from itemstore_service.cli import build_parser, config_from_args
from itemstore_service.config import Config, ConfigError
from itemstore_service.connections import FD_RESERVE, default_max_connections


def parse(*argv: str) -> Config:
    return config_from_args(build_parser().parse_args(["serve", *argv]))


def test_flags_set_the_bounds() -> None:
    config = parse(
        *("--read-timeout", "2.5", "--write-timeout", "1", "--max-connections", "10"),
        *("--max-batch-bytes", "1000"),
    )
    assert (config.read_timeout, config.write_timeout, config.max_connections) == (2.5, 1, 10)
    assert config.limits.max_batch_bytes == 1000


def test_variables_set_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITEMSTORE_READ_TIMEOUT", "3")
    monkeypatch.setenv("ITEMSTORE_WRITE_TIMEOUT", "4")
    monkeypatch.setenv("ITEMSTORE_MAX_CONNECTIONS", "5")
    monkeypatch.setenv("ITEMSTORE_MAX_BATCH_BYTES", "6000")
    config = parse()
    assert (config.read_timeout, config.write_timeout, config.max_connections) == (3, 4, 5)
    assert config.limits.max_batch_bytes == 6000


def test_the_default_connection_cap_leaves_descriptors_for_the_rest() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = max(1, (65536 if soft == resource.RLIM_INFINITY else soft) - FD_RESERVE)
    assert default_max_connections() == expected == Config().max_connections


@pytest.mark.parametrize(
    ("settings", "flag"),
    [
        ({"read_timeout": 0}, "--read-timeout"),
        ({"write_timeout": -1}, "--write-timeout"),
        ({"max_connections": 0}, "--max-connections"),
    ],
)
def test_out_of_range_bounds_are_refused(settings: dict[str, float], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        Config(**settings)  # type: ignore[arg-type]
