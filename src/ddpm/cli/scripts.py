"""The installed commands: ``ddpm-train``, ``ddpm-sample``, ``ddpm-evaluate`` (the same as
``python train.py``, ``sample.py``, ``evaluate.py`` in a checkout, with the configs the package
carries) and ``ddpm-export`` (``python -m ddpm.export``). Each imports its library call only when
it runs."""

from __future__ import annotations


def train() -> None:
    from ddpm.cli import run
    from ddpm.training import train as fn

    run("train", fn)


def sample() -> None:
    from ddpm.cli import run
    from ddpm.evaluation import sample as fn

    run("sample", fn)


def evaluate() -> None:
    from ddpm.cli import run
    from ddpm.evaluation import evaluate as fn

    run("evaluate", fn)


def export() -> None:
    from ddpm.export.__main__ import main

    main()
