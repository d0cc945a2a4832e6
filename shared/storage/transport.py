"""One HTTP transport for the storage SDK clients of a process.

The SDKs' default transport keeps a pool of 10 connections per host and consults proxy environment variables on
every request; a bulk export runs 16 workers against one storage account, so connections were dropped and
reopened and time went into environment scans. A shared session with a larger pool and `trust_env` off (no
proxy is used to reach Azure Storage from a Function App) avoids both.
"""

from __future__ import annotations

import functools

import requests
from azure.core.pipeline.transport import RequestsTransport

POOL_SIZE = 64


@functools.cache
def storage_transport() -> RequestsTransport:
    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(session=session, session_owner=False)
