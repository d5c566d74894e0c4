"""Figures, tables and the HTML report, all built from a results frame (``ResultsStore.frame()``).

Data flows one way: the store's rows -> :mod:`.frames` (dataset means per rate point) -> figures
(:mod:`.rd`, :mod:`.compare`, :mod:`.speed`), tables (:mod:`.bdrate`) and :mod:`.report`. Nothing here writes to
the store.
"""
