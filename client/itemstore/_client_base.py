"""What the sync and the async client share: their settings and their core."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from ._protocol import DEFAULT_URL, Core
from ._retry import RetryPolicy

TransportT = TypeVar("TransportT")


class BaseClient(Generic[TransportT]):
    """A connection to one itemstore service at ``url`` (``token``: the bearer
    token). ``timeout`` is per attempt; retries are bounded by ``retry``;
    ``pool_size`` keep-alive connections at most (``default_pool_size`` unless told)."""

    default_pool_size: ClassVar[int]

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        pool_size: int | None = None,
    ) -> None:
        self._core = Core(url, token)
        self._transport = self._open_transport(
            timeout=timeout,
            retry=retry or RetryPolicy(),
            pool_size=pool_size or self.default_pool_size,
        )

    def _open_transport(self, **options: Any) -> TransportT:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self._core.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
