// Preloaded into Azurite's table and queue processes (node --require) by devstack/azurite.py.
//
// Azurite closes a keep-alive connection after 5 s idle. A client that takes such a connection from its pool just
// as Azurite closes it loses the request with RemoteDisconnected (azure-core: ServiceResponseError), which the
// SDKs do not retry for a POST such as a table transaction. The local stand-in keeps them for two minutes (Azure's
// idle limits are of minutes: its load balancers' 4, by third-party reports). Azurite's own setting cannot do it:
// the table service reads its --tableKeepAliveTimeout flag under a misspelt name, the queue service declares none.
"use strict";
const http = require("http");

const KEEP_ALIVE_MS = 120000;
Object.defineProperty(http.Server.prototype, "keepAliveTimeout", {
  configurable: true,
  get() {
    return KEEP_ALIVE_MS;
  },
  set(_ignored) {},
});
