"""Typed keys of the application state (``app[STORE]``)."""

from aiohttp import web

from .config import Config
from .store import Store

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
