"""The sync wire format, which the server and the field toolkit share.

``payloads`` turns records into canonical JSON and hashes transactions,
``crypto`` seals payloads with a device key, ``signing`` holds the producers'
Ed25519 credentials, and ``bundles`` is the signed unit transactions travel in.
Plain functions over JSON and bytes: importing them registers no hook and
touches no database.
"""
