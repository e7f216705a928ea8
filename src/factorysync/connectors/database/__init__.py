"""Relational database sources through SQLAlchemy.

dialect     drivers (first is the default)      install (``pip install 'factorysync[x]'``)
postgresql  psycopg                             (included)
mysql       pymysql, mysqldb                    extra mysql / extra mysqlclient
mariadb     pymysql, mysqldb                    extra mysql / extra mysqlclient
mssql       pymssql                             extra mssql
sqlite      pysqlite (``database`` is a file inside the data roots)

module      holds
config      the connection_config model, the dialects' drivers and default ports
engine      pooled engines shared in the process; driver errors as connector errors
reader      DatabaseConnector: check, discover, read, the key scan, the relay
pg_copy     PostgreSQL COPY: Arrow batches, and the binary stream a relay hands on
"""

from factorysync.connectors.database.config import DatabaseConfig
from factorysync.connectors.database.engine import dispose_pools, engine_for
from factorysync.connectors.database.reader import DatabaseConnector

__all__ = ["DatabaseConfig", "DatabaseConnector", "dispose_pools", "engine_for"]
