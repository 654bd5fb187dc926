"""The installed commands: ``ddpm-train``, ``ddpm-sample``, ``ddpm-evaluate`` (the same as
``python train.py``, ``sample.py``, ``evaluate.py`` in a checkout, with the configs the package
carries) and ``ddpm-export`` (``python -m ddpm.export``). Each imports its library call only when
it runs."""

from __future__ import annotations


def train() -> None:
    from ddpm.cli import run

    run("train", "ddpm.training:train")


def sample() -> None:
    from ddpm.cli import run

    run("sample", "ddpm.evaluation:sample")


def evaluate() -> None:
    from ddpm.cli import run

    run("evaluate", "ddpm.evaluation:evaluate")


def export() -> None:
    from ddpm.export.__main__ import main

    main()
