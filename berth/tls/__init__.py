"""Certificates: the CA Berth issues from, server certificates, and what a server really serves."""
