"""The store backends' fixtures, for the flusher's tests (every backend)."""

from tests.redis_server import redis_namespace, redis_server  # noqa: F401
from tests.store.conftest import make_store, store  # noqa: F401
