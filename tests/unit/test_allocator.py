"""The runner's malloc settings (jobledger.runner.allocator): applied on glibc
unless the environment names them (the operator's choice wins)."""

from __future__ import annotations

import platform

import pytest

from jobledger.runner import allocator

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


@glibc
def test_both_settings_are_applied_without_an_environment() -> None:
    assert allocator.configure({}) == {"MALLOC_ARENA_MAX": 1, "MALLOC_MMAP_THRESHOLD_": 128 * 1024}


@glibc
def test_a_setting_in_the_environment_is_left_to_glibc() -> None:
    assert allocator.configure({"MALLOC_ARENA_MAX": "4"}) == {"MALLOC_MMAP_THRESHOLD_": 128 * 1024}
    assert allocator.configure({"MALLOC_ARENA_MAX": "4", "MALLOC_MMAP_THRESHOLD_": "65536"}) == {}
