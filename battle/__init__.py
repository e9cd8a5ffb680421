"""The battle harness: fuzzing and chaos against real providers, judged by measured SLOs.

The measured heart is pure and I/O-free: :mod:`battle.events` records what happened (time is
passed in, monotonic seconds), :mod:`battle.slo` computes every SLO from those events only, and
:mod:`battle.thresholds` judges them against a scenario's declared thresholds.
"""
