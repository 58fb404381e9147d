"""The front door of lowdose: the ``lowdose`` command (:mod:`lowdose.main`), its subcommands
(:mod:`lowdose.commands`) and the clinical validation harness (:mod:`lowdose.validation`).

Nothing in the product imports this package; it imports every layer below it
(docs/architecture.md).
"""
