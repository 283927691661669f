"""The fault suite: crashes, contention and bad input (`pytest -m fault`)."""
