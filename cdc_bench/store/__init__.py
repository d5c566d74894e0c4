"""The results store: one SQLite file per results folder, its schema and migrations, and the key of a row."""

from .results import (CSV_NAME, DB_NAME, ResultsStore, device_kind, file_name, quality_text,  # noqa: F401
                      recon_path, recon_path_for)
