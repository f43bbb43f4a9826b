"""data-cache: POST /predict {"ids": [...]} with a skewed (Zipf) id popularity.

Every user draws ids from the same ranking of the ``ITEMS`` ids (1797 digits),
the id of rank k with weight 1/k^``ZIPF_S`` (see
:class:`loadtests.payloads.ItemIdPayloads`), so a few items are popular and
most are rare, and the hit ratio is what such traffic gives rather than what a
fixed pool would. As in prediction-cache, each request is filed under its
``X-Cache`` answer (``POST /predict [hit]``, ``[miss]``, ...), and the report
ends with the hit ratio.

    make load PATTERN=data-cache [ZIPF_S=1.0] [CACHE_VARIANT=raw|tensor]
"""

from __future__ import annotations

from loadtests.config import load_settings
from loadtests.payloads import ItemIdPayloads
from loadtests.scenarios.common import user_seed
from loadtests.scenarios.prediction_cache import CachedPredictUser

SETTINGS = load_settings()


class ItemIdUser(CachedPredictUser):
    """POSTs item ids, popular ones more often, and files each answer under its X-Cache."""

    def on_start(self) -> None:
        """This user's id stream over the ranking every user shares."""
        self.payloads = ItemIdPayloads(
            user_seed(SETTINGS.seed, self.environment),
            SETTINGS.batch_size,
            items=SETTINGS.items,
            zipf_s=SETTINGS.zipf_s,
            pool_seed=SETTINGS.seed,
        )
