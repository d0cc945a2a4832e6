"""A local Azure Functions host for the v2 Python programming model (the Core Tools cannot run here).

See `LocalFunctionsHost`: HTTP routes with function keys, NCRONTAB timers and Storage queue triggers.
"""

from devstack.host.host import LocalFunctionsHost

__all__ = ["LocalFunctionsHost"]
