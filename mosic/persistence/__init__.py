"""Persistence: database connections and pools, the models, migrations, kept secrets."""
