"""Run a multi-statement SQL script inside Alembic's transaction.

asyncpg prepares every statement it is given, and a prepared statement holds one
command; the simple-query protocol of the driver connection takes a whole script.
"""

from alembic import op
from sqlalchemy.util import await_


def execute_script(sql: str) -> None:
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    await_(driver_connection.execute(sql))
