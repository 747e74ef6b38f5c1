"""The cross-call analytics, refreshed from the store after every run or import.

Order matters: repeat contacts change which calls count as resolved, and the
scorecards compare agents on the mined patterns.
"""

from __future__ import annotations

import time

from .config import Config


def refresh(store, cfg: Config) -> dict[str, float]:
    """Repeat contacts, sequential patterns, the suggest index, call drivers and agent scorecards.

    Returns the seconds each step took."""
    from .drivers import drivers_from_store
    from .scorecards import scorecards_from_store
    from .scoring import repeat_contacts
    from .sequences import mine_store
    from .suggest import save_index

    took: dict[str, float] = {}
    start = time.perf_counter()
    store.save_repeat_contacts(repeat_contacts(store.outcome_rows(), cfg.scoring.repeat_contact_days))
    took["repeat_contacts"] = time.perf_counter() - start
    start = time.perf_counter()
    store.save_sequence_patterns(mine_store(store, cfg))
    took["patterns"] = time.perf_counter() - start
    start = time.perf_counter()
    save_index(store, cfg.suggest)
    took["suggest_index"] = time.perf_counter() - start
    start = time.perf_counter()
    store.save_drivers(drivers_from_store(store, cfg.drivers))
    took["drivers"] = time.perf_counter() - start
    start = time.perf_counter()
    store.save_scorecards(list(scorecards_from_store(store, cfg.scorecards).values()))
    took["scorecards"] = time.perf_counter() - start
    return {k: round(v, 3) for k, v in took.items()}
