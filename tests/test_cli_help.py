"""``--help`` of every command is written for users: what it does, an example, no markup."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kalshi_lab import cli
from kalshi_lab.bot import cli as bot_cli

#: (command line, its entry point, an example line its help must show)
HELPS = [
    (["kalshi-lab"], cli.main, "  kalshi-lab serve --raw data/raw --port 8765"),
    (["kalshi-lab", "serve"], cli.main, "  kalshi-lab serve --raw data/raw --port 8765"),
    (["kalshi-lab", "record"], cli.main, "  kalshi-lab record --series KXU3 --duration 8h"),
    (["kalshi-lab", "summary"], cli.main, "  kalshi-lab summary --ref main --out /tmp/summary.md"),
    (["kalshi-lab", "experiments"], cli.main, "  kalshi-lab experiments -n 2 --width 160"),
    (["kalshi-bot"], bot_cli.main, "  kalshi-bot --mode backtest --capital 10000"),
]
#: reStructuredText and Sphinx markup, and the code's own words, that a user has no use for
NOT_FOR_USERS = ("``", ":class:", ":mod:", ":func:", ":data:", "run(args)", "add_*", "RawWriter")


def help_of(argv: list[str], main, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv[1:], "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "main", "example"), HELPS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_help_says_what_the_command_does_with_an_example_and_no_markup(argv, main, example, capsys):
    text = help_of(argv, main, capsys)
    assert text.startswith(f"usage: {' '.join(argv)} ")
    assert "examples:" in text and example in text.splitlines(), text
    for word in NOT_FOR_USERS:
        assert word not in text, (word, text)


@pytest.mark.parametrize("name", ["kalshi-lab", "kalshi-bot"])
def test_the_installed_commands_print_their_help(name):
    command = shutil.which(name, path=str(Path(sys.executable).parent))
    assert command is not None, f"{name} is not installed (pyproject [project.scripts])"
    proc = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    assert f"\n  {name} " in proc.stdout  # an example
