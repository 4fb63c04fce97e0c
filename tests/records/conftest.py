from collections.abc import Iterator

import psycopg
import pytest

from tests.records.postgres import PostgresCluster


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.create()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres(postgres_cluster: PostgresCluster) -> Iterator[PostgresCluster]:
    """The running cluster with no decision table (each test starts from a missing table)."""
    if not postgres_cluster.running():
        postgres_cluster.start()  # a test stopped it
    with psycopg.connect(postgres_cluster.dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS credit_risk_decisions")
    yield postgres_cluster
