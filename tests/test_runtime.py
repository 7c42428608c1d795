"""advlab.runtime: glibc's malloc thresholds set through mallopt, once per process."""

from __future__ import annotations

import ctypes
import platform
import sys
import types

import pytest

from advlab import runtime


def test_keep_freed_memory_sets_both_thresholds_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def mallopt(param: int, value: int) -> int:
        calls.append((param, value))
        return 1

    monkeypatch.setattr(runtime, "_applied", False)
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: types.SimpleNamespace(mallopt=mallopt))
    assert runtime.keep_freed_memory(mmap_threshold=1 << 20, trim_threshold=1 << 28)
    assert calls == [(runtime.M_MMAP_THRESHOLD, 1 << 20), (runtime.M_TRIM_THRESHOLD, 1 << 28)]
    assert runtime.keep_freed_memory() and len(calls) == 2  # applied once per process


def test_keep_freed_memory_reports_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_applied", False)
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    refuse = types.SimpleNamespace(mallopt=lambda param, value: 0)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: refuse)
    assert runtime.keep_freed_memory() is False
    assert runtime._applied is False


def test_keep_freed_memory_elsewhere_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(name: object) -> object:
        raise OSError("no such library")

    monkeypatch.setattr(runtime, "_applied", False)
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert runtime.keep_freed_memory() is False
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.keep_freed_memory() is False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="needs Linux with glibc",
)
def test_keep_freed_memory_with_the_real_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_applied", False)
    assert runtime.keep_freed_memory() is True
