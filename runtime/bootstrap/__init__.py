"""The bootstrap: everything the UI needs for its first screen, read in a fixed number of queries.

- `response`: the typed response (dataclasses); configuration entries hold core's contracts.
- `compose`: `bootstrap_read()`, reading each app through its selectors only.
- `entries`: each configuration record with its readiness (no query).
- `config_file`: the configuration file compared with the database.
- `rules`: `VIEW_RULES`, one pure function per view.
- `serializers` and `api`: the documented body and `GET /api/bootstrap/` (conditional GET).
"""
