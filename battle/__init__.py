"""The battle harness: differential fuzzing and chaos against real providers, judged by
measured SLOs.

Not part of the production install (``lasso*`` only is packaged); it runs from a
checkout. :mod:`battle.chaindata` seeds a devnet, :mod:`battle.strategies` draws
JSON-RPC requests from what it holds, :mod:`battle.oracle` judges Lasso's answer
against a node's. The measured heart is pure and I/O-free: :mod:`battle.events`
records what happened (time is passed in, monotonic seconds), :mod:`battle.slo`
computes every SLO from those events only, and :mod:`battle.thresholds` judges them
against a scenario's declared thresholds.
"""
