"""The analyses on a store: read the layers each needs, call the pure ``geo`` functions.

Used through :mod:`api.service`, which applies the district's rules and caches every result
per (store version, rules version); nothing here reads settings or prints.
"""
