"""The stores: Redis (:mod:`shared.stores.redis_client`), PostgreSQL
(:mod:`shared.stores.postgres`) and the read-through cache in Redis (:mod:`shared.stores.cache`).
"""
