"""The results store: one SQLite file per results folder, its schema and migrations, and the key of a row."""

from .key import (CURVE, GROUP, KEY, ResultKey, device_kind, file_stem, options_dict,  # noqa: F401
                  quality_text)
from .results import CSV_NAME, DB_NAME, ResultsStore, recon_path, recon_path_for  # noqa: F401
