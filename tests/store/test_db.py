from __future__ import annotations

from botwarden.store.db import make_engine


def test_the_pool_hands_out_the_connection_returned_last(database_url: str) -> None:
    """A runner's transactions come back to the connection its last one used (its page
    cache, its prepared statements), not to the one idle longest."""
    engine = make_engine(database_url)
    try:
        first, second = engine.connect(), engine.connect()
        first_raw = first.connection.dbapi_connection
        second_raw = second.connection.dbapi_connection
        first.close()
        second.close()  # returned last
        with engine.connect() as again:
            assert again.connection.dbapi_connection is second_raw
            assert again.connection.dbapi_connection is not first_raw
    finally:
        engine.dispose()
