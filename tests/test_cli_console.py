"""The spinner of long commands (ddp_assets/cli/console.py::working)."""

import threading

import pytest
from rich.console import Console
from rich.status import Status

from ddp_assets.cli import console


def test_no_spinner_thread_when_nobody_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "err", Console(stderr=True, force_terminal=False))
    before = threading.active_count()
    with console.working("materializing ...") as spinner:
        assert spinner is None  # a nullcontext
        assert threading.active_count() == before


def test_a_spinner_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "err", Console(stderr=True, force_terminal=True))
    with console.working("materializing ...") as spinner:
        assert isinstance(spinner, Status)
