"""Bytes in and out: landing folders, SFTP, ODBC, the store, delivery."""
