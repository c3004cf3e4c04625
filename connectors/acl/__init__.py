"""Least-privilege Kafka ACLs for each stage's and each utility's principal (``ubridge acl plan|apply``)."""
