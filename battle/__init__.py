"""The battle harness: differential fuzzing and chaos against real providers.

Not part of the production install (``lasso*`` only is packaged); it runs from a
checkout. :mod:`battle.chaindata` seeds a devnet, :mod:`battle.strategies` draws
JSON-RPC requests from what it holds, :mod:`battle.oracle` judges Lasso's answer
against a node's.
"""
