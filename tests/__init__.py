"""The test suite: real dumps, real Spark, real MariaDB and a real search server."""
