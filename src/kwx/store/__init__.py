"""The PostgreSQL store: embedded or external server, migrations, bulk COPY, queries."""
